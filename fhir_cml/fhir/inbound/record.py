"""One patient's resources to one :class:`PatientRecord`.

Each resource is mapped on its own: a resource that breaks the mapper becomes an error issue for
that resource, and the rest of the patient (and every other patient) is still read.
"""

from __future__ import annotations

from datetime import date
from operator import attrgetter
from typing import Any

from fhir_cml.domain.model import (
    AdherenceAssessment,
    AdverseEvent,
    BcrAbl1Result,
    CytogeneticResult,
    Diagnosis,
    HematologicResponse,
    LabValue,
    MutationResult,
    OtherMedication,
    PatientRecord,
    TkiStatement,
    TroughLevel,
)
from fhir_cml.domain.vocabulary import IssueCode, Severity
from fhir_cml.fhir.inbound.adverse_events import map_adverse_event
from fhir_cml.fhir.inbound.context import MappingContext
from fhir_cml.fhir.inbound.identity import Candidate, latest_versions, resolve
from fhir_cml.fhir.inbound.loader import Entry
from fhir_cml.fhir.inbound.medications import MedicationIndex, map_statement
from fhir_cml.fhir.inbound.observations import LOCAL_CODE, TranscriptFinding, map_observation
from fhir_cml.fhir.inbound.options import MappingOptions
from fhir_cml.fhir.inbound.patients import birth_date, map_condition
from fhir_cml.fhir.inbound.references import ref_of
from fhir_cml.fhir.inbound.supplies import SUPPLY_TYPES, Supply, courses, map_supply

INTERNAL_ERROR = "internal error"
_BY_DATE = attrgetter("date", "ref")
_MAX_LISTED = 10


def map_entries(
    patient: str, entries: list[Entry], options: MappingOptions
) -> tuple[PatientRecord, list[dict[str, Any]]]:
    """The record, and the resources it was read from (one version of each)."""
    ctx = MappingContext(options)
    refs: list[str] = []
    for entry in entries:  # ref_of, with its common case (a string id) inline
        rid = entry.resource.get("id")
        refs.append(f"{entry.rtype}/{rid}" if type(rid) is str and rid else ref_of(entry))
    medications = MedicationIndex()
    if len(set(refs)) == len(refs):
        keep: list[int] | range = range(len(entries))
        for entry in entries:
            if entry.rtype == "Medication":
                medications.add(entry)
    else:
        keep = latest_versions(entries, refs, ctx)
        for index in keep:
            if entries[index].rtype == "Medication":
                medications.add(entries[index])

    births: list[tuple[date, str]] = []
    diagnoses: list[Diagnosis] = []
    candidates: list[Candidate] = []
    tki: list[TkiStatement] = []
    others: list[OtherMedication] = []
    supplies: list[Supply] = []
    events: list[AdverseEvent] = []
    for index in keep:
        entry = entries[index]
        res = entry.resource
        ref = refs[index]
        rtype = entry.rtype
        try:
            if rtype == "Observation":
                candidate = map_observation(res, ref, ctx, index)
                if candidate is not None:
                    candidates.append(candidate)
            elif rtype == "MedicationStatement":
                statement = map_statement(res, ref, ctx, medications)
                if isinstance(statement, TkiStatement):
                    tki.append(statement)
                elif statement is not None:
                    others.append(statement)
            elif rtype in SUPPLY_TYPES:
                supply = map_supply(res, rtype, ref, ctx, medications)
                if isinstance(supply, Supply):
                    supplies.append(supply)
                elif supply is not None:
                    others.append(supply)
            elif rtype == "Condition":
                diagnosis = map_condition(res, ref, ctx)
                if diagnosis is not None:
                    diagnoses.append(diagnosis)
            elif rtype == "AdverseEvent":
                event = map_adverse_event(res, ref, ctx)
                if event is not None:
                    events.append(event)
            elif rtype == "Patient":
                born = birth_date(res, ref, ctx)
                if born is not None:
                    births.append((born, ref))
            elif rtype != "Medication":
                ctx.count_not_read(f"{rtype} resources")
        except Exception as err:  # one malformed resource must not cost the patient's others
            ctx.issue(
                Severity.ERROR,
                IssueCode.UNREADABLE,
                f"{rtype} could not be read ({INTERNAL_ERROR}: {type(err).__name__}: "
                f"{str(err)[:200]}); please report it together with the resource.",
                ref,
            )

    bcr: list[BcrAbl1Result] = []
    cyto: list[CytogeneticResult] = []
    labs: list[LabValue] = []
    chr_: list[HematologicResponse] = []
    troughs: list[TroughLevel] = []
    mutations: list[MutationResult] = []
    adherence: list[AdherenceAssessment] = []
    transcripts: list[TranscriptFinding] = []
    lists: dict[type, list[Any]] = {
        BcrAbl1Result: bcr,
        CytogeneticResult: cyto,
        LabValue: labs,
        HematologicResponse: chr_,
        TroughLevel: troughs,
        MutationResult: mutations,
        AdherenceAssessment: adherence,
        TranscriptFinding: transcripts,
    }
    for candidate in resolve(candidates, ctx) if candidates else ():
        lists[type(candidate.item)].append(candidate.item)
    for values in lists.values():
        values.sort(key=_BY_DATE)
    events.sort(key=_BY_DATE)
    if supplies:
        tki = courses(tki, supplies, ctx)
    tki.sort(key=_by_start)
    others.sort(key=_by_start)
    diagnoses.sort(key=lambda d: (d.onset or date.min, d.ref))
    _not_read_summary(ctx)
    transcript = transcripts[-1] if transcripts else None
    record = PatientRecord(
        patient=patient,
        birth_date=_birth(births, ctx),
        diagnoses=tuple(diagnoses),
        bcr_abl1=tuple(bcr),
        cytogenetics=tuple(cyto),
        labs=tuple(labs),
        hematologic=tuple(chr_),
        troughs=tuple(troughs),
        mutations=tuple(mutations),
        adherence=tuple(adherence),
        adverse_events=tuple(events),
        tki=tuple(tki),
        other_medications=tuple(others),
        issues=tuple(ctx.issues),
        transcript=transcript.transcript if transcript else None,
        transcript_ref=transcript.ref if transcript else None,
        unread_bcr_abl1=tuple(sorted(ctx.unread, key=lambda u: (u.date or date.min, u.ref))),
    )
    return record, [entries[index].resource for index in keep]


def _by_start(item: TkiStatement | OtherMedication) -> tuple[date, str]:
    return item.start or date.min, item.ref


def _birth(births: list[tuple[date, str]], ctx: MappingContext) -> date | None:
    if not births:
        return None
    days = {day for day, _ in births}
    if len(days) > 1:
        ctx.warn(
            IssueCode.AMBIGUOUS,
            "The patient's records give different birth dates ("
            + ", ".join(sorted(day.isoformat() for day in days))
            + "): none is used, so age-based risk scores are not evaluable.",
            births[0][1],
        )
        return None
    return births[0][0]


def _not_read_summary(ctx: MappingContext) -> None:
    if not ctx.not_read:
        return
    ranked = sorted(ctx.not_read.items(), key=lambda item: (-item[1], item[0]))
    listed = "; ".join(f"{label} ({n})" for label, n in ranked[:_MAX_LISTED])
    more = len(ranked) - _MAX_LISTED
    if more > 0:
        listed += f"; and {more} other kinds"
    hint = ""
    if any(label.startswith(LOCAL_CODE) for label in ctx.not_read):
        hint = (
            " A site's own code is read once its ConceptMap maps it (equivalent) to a code "
            "fhir-cml reads, e.g. LOINC 69380-4 for BCR::ABL1 on the IS (docs/inbound.md, "
            '"Local codes and units"; `fhir-cml survey` drafts the ConceptMap).'
        )
    ctx.info(
        IssueCode.UNKNOWN_CODE,
        f"Not used (not read by fhir-cml's CML rules): {listed}.{hint}",
        None,
    )
