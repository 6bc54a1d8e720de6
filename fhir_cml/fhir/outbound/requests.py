"""Suggestions a clinician can act on, as request resources (docs/outbound.md, "Proposed requests").

The FHIR workflow request pattern as the Clinical Practice Guidelines IG applies it: a
recommendation is a request with ``intent = proposal`` and ``status = draft``, which a clinician
may turn into an order (or not), and the CarePlan's activity refers to it
(``CarePlan.activity.reference``). What becomes a request:

- a test, as a ServiceRequest (profile cml-service-request): the BCR::ABL1 RQ-PCR (LOINC 69380-4)
  for ``pcr-overdue``, ``repeat-pcr`` and ``schedule-pcr`` (one request for them: one sample); the
  kinase-domain mutation analysis (the cml code, and LOINC 69548-6 "Genetic variant assessment",
  the result the Genomics Reporting IG reports a variant with); the imatinib trough level (LOINC
  103609-4, 24 hours post dose, only when imatinib is known to be taken once daily);
- a change of TKI therapy, as a MedicationRequest (profile cml-medication-request):
  ``escalate-dose`` with the next step the guideline gives (600 mg/day; 800 mg/day as 400 mg
  twice daily); ``consider-dose-reduction`` and ``restart-tki`` without a dose, as the guideline
  gives none;
- a switch to one of the TKIs the rules name as options (``options``: after T315I ponatinib or
  asciminib; otherwise the second-generation TKIs the mutations leave effective, and the third
  generation after a second-generation TKI), as a RequestGroup (profile cml-request-group) whose
  one action holds them (``selectionBehavior = exactly-one``), each a contained MedicationRequest
  proposal without a dose. A switch without named options stays a described activity.

Continuing therapy, checking adherence, discussing TFR, intensified monitoring and reviewing
interactions stay ``CarePlan.activity.detail``: no request resource says them better.

Each request is identified by ``<fingerprint>-<what>`` (``ID_REQUEST``), so writing the same
assessment twice creates it once; it refers to no other written resource (the CarePlan refers to
it, the Provenance names it), so a server that caps transactions can take it in the first batch.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from fhir_cml.domain.basis import Basis
from fhir_cml.domain.results import Assessment, Suggestion
from fhir_cml.domain.rules.policies import MAX_IMATINIB_MG
from fhir_cml.domain.vocabulary import Recommendation, Tki
from fhir_cml.fhir import terminology
from fhir_cml.fhir.canonical import (
    ATC,
    CS_CML,
    CS_RECOMMENDATION,
    ID_REQUEST,
    LOINC,
    MUTATION_ANALYSIS,
    PROFILE_MEDICATION_REQUEST,
    PROFILE_REQUEST_GROUP,
    PROFILE_SERVICE_REQUEST,
    RXNORM,
    TROUGH_LEVEL,
    UCUM,
    plan_definition,
)
from fhir_cml.fhir.inbound.medications import TKI_ATC, TKI_RXNORM
from fhir_cml.fhir.outbound.elements import (
    basis_extension,
    coding,
    concept,
    day,
    reasons,
    unique,
)
from fhir_cml.fhir.outbound.identifiers import (
    OutboundIds,
    input_reference,
    software,
)
from fhir_cml.fhir.outbound.narrative import PROPOSAL, request_text, superseded
from fhir_cml.fhir.outbound.provenance import instant
from fhir_cml.reporting import suggestion_text

R = Recommendation

PCR_LOINC: Final = "69380-4"
VARIANT_LOINC: Final = "69548-6"  # Genetic variant assessment (what the Genomics IG reports)
TROUGH_LOINC: Final = "103609-4"  # imatinib, 24 hours post dose: a trough of once-daily dosing
NO_DOSE: Final = "No dose proposed: the guideline gives none here; the clinician sets the dose."


@dataclass(frozen=True, slots=True)
class Kind:
    """What one kind of request proposes: ``what`` ends its identifier, ``codes`` are the codes
    it carries (what to test; none for a TKI change, whose drug is the patient's)."""

    what: str
    resource_type: str
    title: str
    codes: tuple[tuple[str, str], ...] = ()


PCR: Final = Kind(
    "bcr-abl1-pcr",
    "ServiceRequest",
    "BCR::ABL1 RQ-PCR (International Scale)",
    ((LOINC, PCR_LOINC),),
)
MUTATIONS: Final = Kind(
    MUTATION_ANALYSIS,
    "ServiceRequest",
    "BCR::ABL1 kinase-domain mutation analysis",
    ((CS_CML, MUTATION_ANALYSIS), (LOINC, VARIANT_LOINC)),
)
TROUGH: Final = Kind(
    TROUGH_LEVEL,
    "ServiceRequest",
    "Imatinib trough level",
    ((CS_CML, TROUGH_LEVEL), (LOINC, TROUGH_LOINC)),
)
# The recommendations a request carries out; the others stay CarePlan.activity.detail.
REQUESTS: Final[dict[Recommendation, Kind]] = {
    R.PCR_OVERDUE: PCR,
    R.REPEAT_PCR: PCR,
    R.SCHEDULE_PCR: PCR,
    R.MUTATION_ANALYSIS: MUTATIONS,
    R.MEASURE_TROUGH_LEVEL: TROUGH,
    R.ESCALATE_DOSE: Kind("escalate-dose", "MedicationRequest", "Imatinib dose escalation"),
    R.CONSIDER_DOSE_REDUCTION: Kind(
        "consider-dose-reduction", "MedicationRequest", "TKI dose reduction"
    ),
    R.RESTART_TKI: Kind("restart-tki", "MedicationRequest", "TKI restart"),
    R.SWITCH_TKI: Kind("switch-tki", "RequestGroup", "TKI switch"),
}
PROFILES: Final = {
    "ServiceRequest": PROFILE_SERVICE_REQUEST,
    "MedicationRequest": PROFILE_MEDICATION_REQUEST,
    "RequestGroup": PROFILE_REQUEST_GROUP,
}
# Status of a proposal no longer current: MedicationRequest has no "revoked" (FHIR R4).
WITHDRAWN_STATUS: Final = {"MedicationRequest": "cancelled"}
# reasonReference may point at these types only (FHIR R4).
_REASON_TYPES: Final = {
    "ServiceRequest": frozenset(
        {"Condition", "Observation", "DiagnosticReport", "DocumentReference"}
    ),
    "MedicationRequest": frozenset({"Condition", "Observation"}),
    "RequestGroup": frozenset(
        {"Condition", "Observation", "DiagnosticReport", "DocumentReference"}
    ),
}
# TKIs as written in a MedicationRequest: the ATC code and the RxNorm ingredient (TkiVS).
_ATC_OF: Final = {tki: code for code, tki in TKI_ATC.items()}
_RXNORM_OF: Final = {
    tki: code
    for code, tki in TKI_RXNORM.items()
    if terminology.has_display(RXNORM, code) and terminology.display(RXNORM, code) == tki.value
}


@dataclass(frozen=True, slots=True)
class Proposed:
    """One request resource, its fullUrl and the recommendations it carries out."""

    url: str
    resource: dict[str, Any]
    codes: tuple[Recommendation, ...]


def withdrawn_status(kind: str) -> str:
    """The status of a proposal no longer current, for its resource type."""
    return WITHDRAWN_STATUS.get(kind, "revoked")


def with_status(request: dict[str, Any], status: str, why: str) -> dict[str, Any]:
    """A copy of a proposal read from the server in a new status, its narrative saying why
    (``status`` "withdrawn" is the type's own: revoked, or cancelled for a MedicationRequest)."""
    changed = copy.deepcopy(request)
    kind = str(changed.get("resourceType"))
    changed["status"] = withdrawn_status(kind) if status == "withdrawn" else status
    superseded(changed, why)
    return changed


def kind_of(a: Assessment, s: Suggestion) -> Kind | None:
    """The request a suggestion becomes, or None where it stays a described activity: a TKI
    change needs the drug, a switch the options the guideline names."""
    kind = REQUESTS.get(s.code)
    if kind is None:
        return None
    if kind.resource_type == "MedicationRequest" and _drug(a, s) is None:
        return None
    if s.code is R.SWITCH_TKI and not switch_options(s):
        return None
    return kind


def switch_options(s: Suggestion) -> tuple[Tki, ...]:
    """The TKIs a switch suggestion names as options (the domain's, per mutation and line)."""
    options = dict(s.params).get("options")
    return tuple(o for o in options if isinstance(o, Tki)) if isinstance(options, tuple) else ()


def request_key(resource: dict[str, Any]) -> str | None:
    """A proposed request's identifier value, ``<fingerprint>-<what>``; None if not fhir-cml's."""
    for ident in resource.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") == ID_REQUEST:
            value = ident.get("value")
            return value if isinstance(value, str) else None
    return None


def title_of(resource: dict[str, Any]) -> str:
    """What a request fhir-cml built proposes, in words ("BCR::ABL1 RQ-PCR ...")."""
    what = (request_key(resource) or "").partition("-")[2]
    return next((k.title for k in REQUESTS.values() if k.what == what), "a request")


def key_fingerprint(key: str) -> str:
    """The assessment fingerprint a request key starts with."""
    return key.partition("-")[0]


def build_requests(a: Assessment, ids: OutboundIds, recorded: datetime) -> tuple[Proposed, ...]:
    """The requests of an assessment's suggestions, in the suggestions' order (one per kind)."""
    grouped: dict[Kind, list[Suggestion]] = {}
    for s in a.recommendations:
        kind = kind_of(a, s)
        if kind is not None:
            grouped.setdefault(kind, []).append(s)
    return tuple(
        Proposed(
            ids.request(kind.what),
            _BUILDERS[kind.resource_type](a, ids, kind, said, recorded),
            tuple(s.code for s in said),
        )
        for kind, said in grouped.items()
    )


def service_request(
    a: Assessment, ids: OutboundIds, kind: Kind, said: Sequence[Suggestion], recorded: datetime
) -> dict[str, Any]:
    codings = [coding(system, code, _display(system, code)) for system, code in kind.codes]
    if kind is TROUGH and not _once_daily(a):
        # LOINC 103609-4 is the level 24 hours post dose: a trough only for once-daily dosing.
        codings = [x for x in codings if x["system"] != LOINC]
    due = _scheduled(said)
    resource = _proposal(a, ids, kind, said, [f"Due by {day(due)}."] if due else [])
    resource["category"] = [concept(CS_RECOMMENDATION, s.code.value) for s in said]
    resource["code"] = {"coding": codings, "text": kind.title}
    if due is not None:
        resource["occurrencePeriod"] = {"end": day(due)}
    resource["subject"] = input_reference(a.patient)
    _request_tail(resource, a, said, recorded, "requester")
    return resource


def medication_request(
    a: Assessment, ids: OutboundIds, kind: Kind, said: Sequence[Suggestion], recorded: datetime
) -> dict[str, Any]:
    [s] = said
    drug = _drug(a, s)
    assert drug is not None  # kind_of made sure
    dosage = _dosage(s)
    resource = _proposal(a, ids, kind, said, [f"{drug.value}: {dosage['text']}"])
    resource["category"] = [concept(CS_RECOMMENDATION, s.code.value)]
    resource["medicationCodeableConcept"] = tki_concept(drug)
    resource["subject"] = input_reference(a.patient)
    _request_tail(resource, a, said, recorded, "requester")
    resource["dosageInstruction"] = [dosage]
    return resource


def request_group(
    a: Assessment, ids: OutboundIds, kind: Kind, said: Sequence[Suggestion], recorded: datetime
) -> dict[str, Any]:
    [s] = said
    options = switch_options(s)
    names = " or ".join(d.value for d in options)
    resource = _proposal(a, ids, kind, said, [f"Options (one of): {names}. {NO_DOSE}"])
    resource["contained"] = [
        {
            "resourceType": "MedicationRequest",
            "id": drug.value,
            "status": "draft",
            "intent": "proposal",
            "medicationCodeableConcept": tki_concept(drug),
            "subject": input_reference(a.patient),
            "authoredOn": instant(recorded),
            "requester": software(a.ruleset_version),
            "dosageInstruction": [{"text": NO_DOSE}],
        }
        for drug in options
    ]
    resource["code"] = concept(CS_RECOMMENDATION, s.code.value)
    resource["subject"] = input_reference(a.patient)
    _request_tail(resource, a, said, recorded, "author")
    resource["action"] = [
        {
            "title": "Switch to one of these TKIs",
            "description": suggestion_text(s),
            "selectionBehavior": "exactly-one",
            "action": [
                {"title": drug.value, "resource": {"reference": f"#{drug.value}"}}
                for drug in options
            ],
        }
    ]
    return resource


_BUILDERS: Final = {
    "ServiceRequest": service_request,
    "MedicationRequest": medication_request,
    "RequestGroup": request_group,
}


def tki_concept(drug: Tki) -> dict[str, Any]:
    """A TKI by ATC and RxNorm ingredient, with its name as text."""
    codings = [coding(ATC, _ATC_OF[drug], terminology.atc_display(_ATC_OF[drug], drug.value))]
    if drug in _RXNORM_OF:
        codings.append(coding(RXNORM, _RXNORM_OF[drug], drug.value))
    return {"coding": codings, "text": drug.value}


def _proposal(
    a: Assessment, ids: OutboundIds, kind: Kind, said: Sequence[Suggestion], details: list[str]
) -> dict[str, Any]:
    """What every proposal starts with: profile, narrative, basis, identifier, rules, status,
    intent."""
    bases = _bases(said)
    resource: dict[str, Any] = {
        "resourceType": kind.resource_type,
        "meta": {"profile": [PROFILES[kind.resource_type]]},
        "text": request_text(
            a, f"Proposed: {kind.title}", [suggestion_text(s) for s in said], details, bases
        ),
    }
    if bases:
        resource["extension"] = [basis_extension(b) for b in bases]
    resource["identifier"] = [ids.request_identifier(kind.what)]
    if bases:
        resource["instantiatesCanonical"] = list(
            dict.fromkeys(plan_definition(b.rule.id) for b in bases)
        )
    resource["status"] = "draft"
    resource["intent"] = "proposal"
    return resource


def _request_tail(
    resource: dict[str, Any],
    a: Assessment,
    said: Sequence[Suggestion],
    recorded: datetime,
    who: str,
) -> None:
    """When and by whom it was proposed, why, and the words."""
    resource["authoredOn"] = instant(recorded)
    resource[who] = software(a.ruleset_version)
    resource.update(reasons(_bases(said), _REASON_TYPES[resource["resourceType"]]))
    resource["note"] = [{"text": suggestion_text(s)} for s in said] + [{"text": PROPOSAL}]


def _bases(said: Sequence[Suggestion]) -> list[Basis]:
    return unique(b for s in said for b in s.basis)


def _display(system: str, code: str) -> str | None:
    if system == CS_CML:
        return {MUTATION_ANALYSIS: MUTATIONS.title, TROUGH_LEVEL: TROUGH.title}.get(code)
    return terminology.display(system, code) if terminology.has_display(system, code) else None


def _drug(a: Assessment, s: Suggestion) -> Tki | None:
    named = dict(s.params).get("drug")
    if isinstance(named, Tki):
        return named
    if s.code is R.ESCALATE_DOSE:
        return Tki.IMATINIB  # escalation steps are imatinib's
    return a.therapy.drug


def _once_daily(a: Assessment) -> bool:
    segments = a.therapy.segments
    return bool(segments) and segments[-1].drug is Tki.IMATINIB and segments[-1].doses_per_day == 1


def _scheduled(said: Sequence[Suggestion]) -> date | None:
    """The due date of a scheduled PCR, when scheduling is all the request is for."""
    due = dict(said[0].params).get("due")
    return due if [s.code for s in said] == [R.SCHEDULE_PCR] and isinstance(due, date) else None


def _dosage(s: Suggestion) -> dict[str, Any]:
    """The dose the guideline gives for an escalation step; otherwise none, and saying so."""
    step = dict(s.params).get("next") if s.code is R.ESCALATE_DOSE else None
    if not isinstance(step, float):
        by = dict(s.params).get("by") if s.code is R.RESTART_TKI else None
        return {"text": NO_DOSE + (f" Restart by {day(by)}." if isinstance(by, date) else "")}
    daily = {
        "numerator": _mg(step),
        "denominator": {"value": 1, "unit": "d", "system": UCUM, "code": "d"},
    }
    if step >= MAX_IMATINIB_MG:
        # The highest step is given as two doses a day (the escalation rule's own words).
        return {
            "text": f"{step:g} mg per day, as {step / 2:g} mg twice daily (the next escalation step)",
            "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": _mg(step / 2)}],
            "maxDosePerPeriod": daily,
        }
    return {
        "text": f"{step:g} mg per day (the next escalation step; the schedule is the clinician's)",
        "maxDosePerPeriod": daily,
    }


def _mg(value: float) -> dict[str, Any]:
    # A plain float: the domain's Dose is one in kind but no JSON encoder need know it.
    return {"value": float(value), "unit": "mg", "system": UCUM, "code": "mg"}
