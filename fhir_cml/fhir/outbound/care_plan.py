"""The suggestions as a CarePlan (profile cml-care-plan, docs/outbound.md).

Always ``status = draft`` and ``intent = proposal``: fhir-cml proposes, a clinician decides. One
activity per suggestion. A suggestion a request resource carries out (a test, a TKI change:
:mod:`fhir_cml.fhir.outbound.requests`) is an ``activity.reference`` to that proposal, with the
recommendation code in an extension and the suggestion in words as the reference's display; the
others are an ``activity.detail`` naming the recommendation code, the reasons in words and the
rules (PlanDefinitions) and evidence they rest on, so a suggestion can be checked without
trusting the software.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Final

from fhir_cml.domain.results import Assessment, Suggestion
from fhir_cml.fhir.canonical import (
    CML_SUGGESTIONS,
    CS_CML,
    CS_RECOMMENDATION,
    EXT_RECOMMENDATION,
    ID_REQUEST,
    PROFILE_CARE_PLAN,
    plan_definition,
)
from fhir_cml.fhir.outbound.elements import (
    as_of_extension,
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
    reference,
    resource_type,
    software,
)
from fhir_cml.fhir.outbound.narrative import NOT_ORDERS, care_plan_text, reading_summary
from fhir_cml.fhir.outbound.provenance import instant
from fhir_cml.fhir.outbound.requests import Proposed, request_key
from fhir_cml.fhir.outbound.risk_assessment import cml_condition
from fhir_cml.reporting import suggestion_text

__all__ = [
    "NOT_ORDERS",
    "activity",
    "build_care_plan",
    "describe",
    "proposal_keys",
    "proposals_of",
    "proposed_requests",
    "recommendation_code",
]
# CarePlan.activity.detail.reasonReference may point at these types only (FHIR R4).
_REASON_TYPES: Final = frozenset(
    {"Condition", "Observation", "DiagnosticReport", "DocumentReference"}
)


def build_care_plan(
    assessment: Assessment,
    risk_assessment_ref: str,
    recorded: datetime,
    ids: OutboundIds | None = None,
    requests: Sequence[Proposed] = (),
) -> dict[str, Any]:
    """The CarePlan for one assessment; ``risk_assessment_ref`` is where its reading lives,
    ``recorded`` the moment of writing (``created``; the as-of date is in the title and the
    RiskAssessment) and ``requests`` the proposals its activities refer to."""
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
        proposed = {code: r.url for r in requests for code in r.codes}
        resource["activity"] = [
            proposal_activity(s, proposed[s.code]) if s.code in proposed else activity(s)
            for s in a.recommendations
        ]
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
    detail.update(reasons(bases, _REASON_TYPES))
    detail["status"] = "not-started"
    detail["description"] = suggestion_text(suggestion)
    return {"detail": detail}


def proposal_activity(suggestion: Suggestion, request: str) -> dict[str, Any]:
    """An activity that refers to the request carrying the suggestion out."""
    return {
        "extension": [
            {
                "url": EXT_RECOMMENDATION,
                "valueCoding": coding(CS_RECOMMENDATION, suggestion.code.value),
            }
        ],
        "reference": {"reference": request, "display": suggestion_text(suggestion)},
    }


def recommendation_code(activity: dict[str, Any]) -> str | None:
    """The recommendation code of a CarePlan activity fhir-cml wrote, either kind."""
    for coding_ in (activity.get("detail") or {}).get("code", {}).get("coding", []):
        if coding_.get("system") == CS_RECOMMENDATION:
            return str(coding_.get("code"))
    for ext in activity.get("extension") or []:
        if ext.get("url") == EXT_RECOMMENDATION:
            return str((ext.get("valueCoding") or {}).get("code"))
    return None


def proposals_of(care_plan: dict[str, Any]) -> list[str]:
    """The requests a CarePlan read from a server refers to (``Type/id``), in activity order."""
    out: list[str] = []
    for ref in _activity_references(care_plan):
        target = ref.get("reference")
        if isinstance(target, str) and resource_type(target) is not None:
            parts = [p for p in target.split("/_history/")[0].split("/") if p]
            out.append("/".join(parts[-2:]))
    return list(dict.fromkeys(out))


def proposal_keys(care_plan: dict[str, Any]) -> list[tuple[str, str]]:
    """(type, identifier value) of the requests a CarePlan names by identifier only: one a CDS
    client created from a card (:func:`fhir_cml.fhir.outbound.standalone`)."""
    out = []
    for ref in _activity_references(care_plan):
        ident = ref.get("identifier")
        kind = ref.get("type")
        if "reference" not in ref and isinstance(ident, dict) and isinstance(kind, str):
            value = ident.get("value")
            if ident.get("system") == ID_REQUEST and isinstance(value, str):
                out.append((kind, value))
    return list(dict.fromkeys(out))


def proposed_requests(
    care_plan: dict[str, Any], candidates: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Those of ``candidates`` (requests read from a server) the CarePlan proposes, named by
    ``Type/id`` or by identifier."""
    refs = set(proposals_of(care_plan))
    keys = set(proposal_keys(care_plan))
    return [
        r
        for r in candidates
        if r.get("id")
        and (
            f"{r.get('resourceType')}/{r['id']}" in refs
            or (r.get("resourceType"), request_key(r)) in keys
        )
    ]


def _activity_references(care_plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for act in care_plan.get("activity") or []:
        ref = act.get("reference") if isinstance(act, dict) else None
        if isinstance(ref, dict):
            yield ref


def describe(a: Assessment) -> str:
    """One sentence: the reading behind the suggestions."""
    return reading_summary(a)
