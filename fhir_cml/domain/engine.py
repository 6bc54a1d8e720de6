"""The response model: one patient's record and an as-of date in, an :class:`Assessment` out.

A pure function of its arguments: no clock, no I/O. Everything dated after the as-of date is left
out (and said so), so assessing the same record as of an earlier date reproduces what could have
been concluded then.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from operator import attrgetter

from fhir_cml.domain.basis import basis
from fhir_cml.domain.config import DEFAULT_CONFIG, RuleConfig
from fhir_cml.domain.findings import Finding
from fhir_cml.domain.model import BcrAbl1Result, Issue, PatientRecord
from fhir_cml.domain.results import Assessment, Gap, MolecularResponse, Therapy
from fhir_cml.domain.rules import milestones
from fhir_cml.domain.rules.catalogue import DEPTH, RULESET_VERSION, input_issue
from fhir_cml.domain.rules.common import age_on, months_between
from fhir_cml.domain.rules.hematology import chr_assessments
from fhir_cml.domain.rules.interactions import current_interactions
from fhir_cml.domain.rules.loss import loss_of_mmr
from fhir_cml.domain.rules.monitoring import schedule
from fhir_cml.domain.rules.prognosis import predictions
from fhir_cml.domain.rules.recommend import Context, recommend
from fhir_cml.domain.rules.response_depth import DEEP, DepthCall, classify
from fhir_cml.domain.rules.risk_scores import baseline_scores
from fhir_cml.domain.rules.tdm import read_tdm
from fhir_cml.domain.rules.tfr import latest_run, read_tfr
from fhir_cml.domain.rules.therapy import build_therapy
from fhir_cml.domain.vocabulary import (
    ElnStatus,
    Guideline,
    IssueCode,
    MedicationStatus,
    Phase,
    ResponseDepth,
    RiskCategory,
    Severity,
    StopReason,
    TherapyStatus,
    Transcript,
)

Calls = list[tuple[BcrAbl1Result, DepthCall]]
_NOT_USED = {
    MedicationStatus.ENTERED_IN_ERROR,
    MedicationStatus.NOT_TAKEN,
    MedicationStatus.INTENDED,
}


def assess(
    record: PatientRecord,
    as_of: date,
    guideline: Guideline = Guideline.ELN2020,
    config: RuleConfig = DEFAULT_CONFIG,
) -> Assessment:
    issues: list[Issue] = list(record.issues)
    rec = _up_to(record, as_of, issues)
    therapy, therapy_issues = build_therapy(rec.tki, as_of)
    issues.extend(therapy_issues)

    calls: Calls = [(r, classify(r)) for r in rec.bcr_abl1]
    for result, call in calls:
        if call.problem is not None:
            severity = Severity.INFORMATION if call.evaluable else Severity.WARNING
            issues.append(Issue(severity, call.problem, "", result.ref, call.basis))

    therapy = _infer_tfr(therapy, calls, issues)
    response = _response(calls)
    chr_calls = chr_assessments(rec.labs, rec.hematologic)
    onset = min((d.onset for d in rec.diagnoses if d.onset is not None), default=None)
    scores = baseline_scores(
        rec.labs,
        rec.birth_date,
        rec.patient if rec.birth_date else None,
        therapy.start or onset,
        config,
    )
    elts = next(s for s in scores if s.name == "elts")
    # After a TFR stop this is the molecular relapse itself; after a restart for a relapse, only
    # the results since the restart count (the relapse is not lost again on treatment).
    restarted = therapy.restarted
    loss = loss_of_mmr(calls if restarted is None else [c for c in calls if c[0].date >= restarted])
    evidence = milestones.Evidence(
        calls,
        rec.cytogenetics,
        chr_calls,
        rec.mutations,
        loss,
        elts.category
        if elts.category is not RiskCategory.NOT_EVALUABLE
        else RiskCategory.NOT_EVALUABLE,
        elts.basis,
    )
    eln = milestones.read(guideline, therapy, evidence, as_of, config)
    eln2020 = (
        eln
        if guideline is Guideline.ELN2020
        else milestones.read(Guideline.ELN2020, therapy, evidence, as_of, config)
    )
    tfr = read_tfr(
        therapy,
        calls,
        eln2020.history,
        rec.diagnoses,
        _transcript(rec),
        rec.adherence,
        as_of,
        config,
        rec.birth_date,
    )
    tdm = read_tdm(rec.troughs, therapy, config)
    taking = (
        therapy.drug
        if therapy.status in (TherapyStatus.ACTIVE, TherapyStatus.INTERRUPTED)
        else None
    )
    interactions = current_interactions(rec.other_medications, taking, as_of)
    monitoring = schedule(therapy, rec.bcr_abl1, tfr, as_of, config, rec.unread_bcr_abl1)
    suggestions = recommend(
        Context(
            as_of,
            therapy,
            response,
            calls,
            eln,
            loss,
            tdm,
            tfr,
            interactions,
            monitoring,
            rec.mutations,
            rec.adherence,
            rec.adverse_events,
            config,
        )
    )
    age = age_on(rec.birth_date, as_of)
    since = therapy.current_start or therapy.start or date.min
    evidence_preds = predictions(
        therapy,
        _twelve_month(therapy, calls, config),
        tfr,
        child=age is not None and age < config.adult_age_years,
        resistant=any(m.detected and m.date >= since for m in rec.mutations),
        advanced=any(d.phase in (Phase.ACCELERATED, Phase.BLAST) for d in rec.diagnoses),
        failing=eln2020.status is ElnStatus.FAILURE,
    )
    return Assessment(
        patient=record.patient,
        as_of=as_of,
        guideline=guideline,
        ruleset_version=RULESET_VERSION,
        therapy=therapy,
        latest_bcr_abl1=response.result,
        molecular_response=response,
        loss_of_mmr=loss,
        eln=eln,
        tfr=tfr,
        tdm=tdm,
        risk_scores=scores,
        interactions=tuple(interactions),
        monitoring=monitoring,
        recommendations=suggestions,
        predictions=evidence_preds,
        issues=tuple(issues),
        inputs=_inputs(rec),
        config=config,
    )


_DATED = (
    "bcr_abl1",
    "cytogenetics",
    "labs",
    "hematologic",
    "troughs",
    "mutations",
    "adherence",
    "adverse_events",
)


def _any_later(record: PatientRecord, as_of: date) -> bool:
    for name in _DATED:
        for item in getattr(record, name):
            if not item.date <= as_of:
                return True
    return False


def _up_to(record: PatientRecord, as_of: date, issues: list[Issue]) -> PatientRecord:
    """The record without anything dated after the as-of date."""
    if not _any_later(record, as_of):
        return record  # the usual case: nothing to leave out, nothing to copy
    later: list[str] = []

    def keep(items: tuple, attr: str = "date") -> tuple:  # type: ignore[type-arg]
        kept = []
        for item in items:
            if getattr(item, attr) > as_of:
                later.append(item.ref)
            else:
                kept.append(item)
        return tuple(kept)

    rec = replace(
        record,
        bcr_abl1=keep(record.bcr_abl1),
        cytogenetics=keep(record.cytogenetics),
        labs=keep(record.labs),
        hematologic=keep(record.hematologic),
        troughs=keep(record.troughs),
        mutations=keep(record.mutations),
        adherence=keep(record.adherence),
        adverse_events=keep(record.adverse_events),
    )
    for ref in dict.fromkeys(later):
        issues.append(
            input_issue(
                Severity.INFORMATION,
                IssueCode.AFTER_AS_OF,
                ref,
                Finding.AFTER_AS_OF,
                (ref,),
                as_of=as_of,
            )
        )
    return rec


def _infer_tfr(therapy: Therapy, calls: Calls, issues: list[Issue]) -> Therapy:
    """A stop without a recorded reason, after > 2 years of deep response, is read as a TFR attempt."""
    if therapy.status is not TherapyStatus.STOPPED or therapy.stopped_on is None:
        return therapy
    if therapy.stop_reason not in (None, StopReason.UNKNOWN):
        return therapy
    stop = therapy.stopped_on
    run = latest_run([(r, c) for r, c in calls if r.date <= stop], DEEP)
    if run is None or run.months <= 24:
        return therapy
    ref = therapy.evidence[-1] if therapy.evidence else None
    issues.append(
        input_issue(
            Severity.WARNING,
            IssueCode.INFERRED,
            ref,
            Finding.TFR_STOP_INFERRED,
            (ref, *run.refs) if ref else run.refs,
            stopped=stop,
            first=run.first.date,
            last=run.last.date,
        )
    )
    return replace(
        therapy,
        status=TherapyStatus.TFR,
        stop_reason=StopReason.TFR,
        tfr_stops=(*therapy.tfr_stops, Gap(stop, None, ref)),
    )


def _response(calls: Calls) -> MolecularResponse:
    if not calls:
        return MolecularResponse(
            ResponseDepth.NOT_EVALUABLE, None, basis(DEPTH, Finding.DEPTH_NO_RESULT)
        )
    result, call = calls[-1]
    return MolecularResponse(call.depth, result, call.basis)


def _transcript(rec: PatientRecord) -> tuple[Transcript | None, str | None]:
    if rec.transcript is not None:
        return rec.transcript, rec.transcript_ref
    for result in reversed(rec.bcr_abl1):
        if result.transcript is not None:
            return result.transcript, result.ref
    return None, None


def _twelve_month(therapy: Therapy, calls: Calls, cfg: RuleConfig) -> tuple[float, str] | None:
    """The readable result closest to 12 months on first-line TKI, within the milestone window."""
    if therapy.start is None:
        return None
    best: tuple[float, float, str] | None = None
    for result, call in calls:
        if call.value is None:
            continue
        months = months_between(therapy.start, result.date)
        distance = abs(months - 12)
        if distance <= cfg.milestone_tolerance_months and (best is None or distance < best[0]):
            best = (distance, call.value, result.ref)
    return (best[1], best[2]) if best else None


_REF = attrgetter("ref")


def _inputs(rec: PatientRecord) -> tuple[str, ...]:
    refs: list[str] = [rec.patient]
    for group in (
        rec.diagnoses,
        rec.bcr_abl1,
        rec.cytogenetics,
        rec.labs,
        rec.hematologic,
        rec.troughs,
        rec.mutations,
        rec.adherence,
        rec.adverse_events,
        rec.other_medications,
    ):
        refs.extend(map(_REF, group))
    refs.extend(st.ref for st in rec.tki if st.status not in _NOT_USED)
    if rec.transcript_ref:
        refs.append(rec.transcript_ref)
    return tuple(dict.fromkeys(refs))
