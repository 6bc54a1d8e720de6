"""The suggestions as a CarePlan (profile cml-care-plan, docs/outbound.md).

Always ``status = draft`` and ``intent = proposal``: fhir-cml proposes, a clinician decides. Each
activity names its recommendation code, its reasons in words and the rules (PlanDefinitions) and
evidence they rest on, so a suggestion can be checked without trusting the software.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from fhir_cml.domain.results import Assessment, Suggestion
from fhir_cml.fhir.canonical import (
    CML_SUGGESTIONS,
    CS_CML,
    CS_RECOMMENDATION,
    PROFILE_CARE_PLAN,
    plan_definition,
)
from fhir_cml.fhir.outbound.elements import (
    as_of_extension,
    basis_extension,
    coding,
    concept,
    day,
    unique,
)
from fhir_cml.fhir.outbound.identifiers import (
    OutboundIds,
    input_reference,
    reference,
    resource_type,
    software,
)
from fhir_cml.fhir.outbound.narrative import NOT_ORDERS, care_plan_text, reading_summary
from fhir_cml.fhir.outbound.provenance import instant
from fhir_cml.fhir.outbound.risk_assessment import cml_condition
from fhir_cml.reporting import say, suggestion_text

__all__ = ["NOT_ORDERS", "activity", "build_care_plan", "describe"]
# CarePlan.activity.detail.reasonReference may point at these types only (FHIR R4).
_REASON_TYPES: Final = frozenset(
    {"Condition", "Observation", "DiagnosticReport", "DocumentReference"}
)


def build_care_plan(
    assessment: Assessment,
    risk_assessment_ref: str,
    recorded: datetime,
    ids: OutboundIds | None = None,
) -> dict[str, Any]:
    """The CarePlan for one assessment; ``risk_assessment_ref`` is where its reading lives and
    ``recorded`` the moment of writing (``created``; the as-of date is in the title and the
    RiskAssessment)."""
    a = assessment
    ids = ids or OutboundIds.of(a)
    resource: dict[str, Any] = {
        "resourceType": "CarePlan",
        "meta": {"profile": [PROFILE_CARE_PLAN]},
        "text": care_plan_text(a),
        "extension": [as_of_extension(a)],
        "identifier": [ids.care_plan_identifier],
        "status": "draft",
        "intent": "proposal",
        "category": [concept(CS_CML, CML_SUGGESTIONS, "CML suggestions")],
        "title": f"CML suggestions ({a.guideline.label}) as of {day(a.as_of)}",
        "description": describe(a),
        "subject": input_reference(a.patient),
        "created": instant(recorded),
        "author": software(a.ruleset_version),
    }
    condition = cml_condition(a)
    if condition is not None:
        resource["addresses"] = [input_reference(condition)]
    resource["supportingInfo"] = [reference(risk_assessment_ref)]
    if a.recommendations:
        resource["activity"] = [activity(s) for s in a.recommendations]
    resource["note"] = [{"text": NOT_ORDERS}]
    return resource


def activity(suggestion: Suggestion) -> dict[str, Any]:
    bases = unique(suggestion.basis)
    detail: dict[str, Any] = {}
    if bases:
        detail["extension"] = [basis_extension(b) for b in bases]
        detail["instantiatesCanonical"] = list(
            dict.fromkeys(plan_definition(b.rule.id) for b in bases)
        )
    detail["code"] = {"coding": [coding(CS_RECOMMENDATION, suggestion.code.value)]}
    if bases:
        detail["reasonCode"] = [{"text": say(b)} for b in bases]
    reasons = [
        ref
        for ref in dict.fromkeys(ref for b in bases for ref in b.evidence)
        if resource_type(ref) in _REASON_TYPES
    ]
    if reasons:
        detail["reasonReference"] = [input_reference(ref) for ref in reasons]
    detail["status"] = "not-started"
    detail["description"] = suggestion_text(suggestion)
    return {"detail": detail}


def describe(a: Assessment) -> str:
    """One sentence: the reading behind the suggestions."""
    return reading_summary(a)
