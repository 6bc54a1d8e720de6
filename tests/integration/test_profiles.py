"""Resources against fhir-cml's profiles (tests/support/profile_validator.py).

- The shapes EHRs send that docs/inbound.md reads are accepted, and so is what fhir-cml writes.
- Deliberately broken resources are rejected, each at the element path that is wrong.
- Every resource in examples/ that claims one of our profiles conforms to it.
- Every resource the engine writes (outbound builders over the test cases, and the example
  patients read with the inbound mapper) conforms to the profile it claims.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fhir_cml import conformance
from fhir_cml.fhir import canonical as c
from tests.support.profile_validator import ProfileValidator, Result, validator

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
RECORDED = datetime(2025, 6, 30, 14, 5, 9, tzinfo=UTC)
LOINC, SCT, UCUM = c.LOINC, c.SNOMED, c.UCUM

Resource = dict[str, Any]


@pytest.fixture(scope="module")
def v() -> ProfileValidator:
    return validator()


def coding(system: str, code: str) -> Resource:
    return {"coding": [{"system": system, "code": code}]}


def software() -> Resource:
    return {
        "identifier": {"system": c.DEVICE_IDENTIFIER, "value": "fhir-cml"},
        "display": "fhir-cml 0.1.0 (rules 1.0.0)",
    }


def basis(rule: str, evidence: str | None = "Observation/pcr-1") -> Resource:
    parts: list[Resource] = [
        {"url": "rule", "valueCanonical": c.plan_definition(rule)},
        {"url": "statement", "valueString": "BCR::ABL1 0.05 % (IS) on 2025-06-01: MMR."},
    ]
    if evidence:
        parts.append({"url": "evidence", "valueReference": {"reference": evidence}})
    return {"url": c.EXT_BASIS, "extension": parts}


# --- What fhir-cml writes --------------------------------------------------------------------


def risk_assessment() -> Resource:
    return {
        "resourceType": "RiskAssessment",
        "meta": {"profile": [c.PROFILE_RISK_ASSESSMENT]},
        "extension": [
            {"url": c.EXT_AS_OF, "valueDate": "2025-06-30"},
            {"url": c.EXT_RULESET_VERSION, "valueString": "1.0.0"},
            {
                "url": c.EXT_MOLECULAR_RESPONSE,
                "valueCodeableConcept": coding(c.CS_MOLECULAR_RESPONSE, "MMR"),
            },
            {
                "url": c.EXT_ELN_RESPONSE,
                "extension": [
                    {
                        "url": "status",
                        "valueCoding": {"system": c.CS_ELN_RESPONSE, "code": "optimal"},
                    },
                    {
                        "url": "milestone",
                        "valueCoding": {"system": c.CS_ELN_MILESTONE, "code": "any"},
                    },
                    {
                        "url": "guideline",
                        "valueCoding": {"system": c.CS_GUIDELINE, "code": "eln2020"},
                    },
                ],
            },
            {
                "url": c.EXT_TFR_STATUS,
                "valueCodeableConcept": coding(c.CS_TFR_STATUS, "not-eligible"),
            },
            {"url": c.EXT_TDM_STATUS, "valueCodeableConcept": coding(c.CS_TDM_STATUS, "none")},
            {"url": c.EXT_NEXT_PCR_DUE, "valueDate": "2025-09-30"},
            {
                "url": c.EXT_RISK_SCORE,
                "extension": [
                    {"url": "score", "valueCoding": {"system": c.CS_CML, "code": c.SOKAL_SCORE}},
                    {"url": "value", "valueDecimal": 0.71},
                    {
                        "url": "category",
                        "valueCoding": {"system": c.CS_RISK_CATEGORY, "code": "low"},
                    },
                ],
            },
            basis("response-depth"),
        ],
        "identifier": [{"system": c.ID_ASSESSMENT, "value": "0f" * 32}],
        "status": "final",
        "method": {**coding(c.CS_GUIDELINE, "eln2020"), "text": "fhir-cml rules 1.0.0 - ELN 2020"},
        "code": coding(c.CS_CML, c.CML_ASSESSMENT),
        "subject": {"reference": "Patient/p1"},
        "occurrenceDateTime": "2025-06-30",
        "condition": {"reference": "Condition/cml"},
        "performer": software(),
        "basis": [{"reference": "Observation/pcr-1"}],
        "prediction": [
            {
                "outcome": coding(c.CS_CML, c.PROGRESSION_AP_BC),
                "probabilityDecimal": 0,
                "whenRange": {"high": {"value": 5, "unit": "a", "system": UCUM, "code": "a"}},
                "rationale": "IRIS: no progression with MMR at 12 months.",
            },
        ],
        "mitigation": "1. Continue imatinib 400 mg/day.",
        "note": [{"text": "Molecular response: MMR."}],
    }


def care_plan() -> Resource:
    return {
        "resourceType": "CarePlan",
        "meta": {"profile": [c.PROFILE_CARE_PLAN]},
        "extension": [{"url": c.EXT_AS_OF, "valueDate": "2025-06-30"}],
        "identifier": [{"system": c.ID_CARE_PLAN, "value": "0f" * 32}],
        "status": "draft",
        "intent": "proposal",
        "category": [coding(c.CS_CML, c.CML_SUGGESTIONS)],
        "title": "CML suggestions (ELN 2020) as of 2025-06-30",
        "description": "Molecular response MMR; ELN 2020 optimal at any.",
        "subject": {"reference": "Patient/p1"},
        "created": "2025-06-30T14:05:09+00:00",
        "author": software(),
        "addresses": [{"reference": "Condition/cml"}],
        "supportingInfo": [{"reference": "urn:uuid:6f1c4a0e-51c4-5d0e-9a43-4f3c0c7d2b11"}],
        "activity": [
            {
                "detail": {
                    "extension": [basis("continue-therapy", None)],
                    "instantiatesCanonical": [c.plan_definition("continue-therapy")],
                    "code": coding(c.CS_RECOMMENDATION, "continue-therapy"),
                    "reasonCode": [{"text": "Optimal response."}],
                    "reasonReference": [{"reference": "Observation/pcr-1"}],
                    "status": "not-started",
                    "description": "Optimal response: continue imatinib 400 mg/day.",
                }
            }
        ],
        "note": [{"text": "Suggestions from fhir-cml for a clinician to review; not orders."}],
    }


def provenance() -> Resource:
    return {
        "resourceType": "Provenance",
        "meta": {"profile": [c.PROFILE_PROVENANCE]},
        "extension": [{"url": c.EXT_AS_OF, "valueDate": "2025-06-30"}],
        "target": [
            {"reference": "urn:uuid:6f1c4a0e-51c4-5d0e-9a43-4f3c0c7d2b11"},
            {"reference": "urn:uuid:7a2d5b1f-62d5-5e1f-8b54-503d1d8e3c22"},
        ],
        "occurredDateTime": "2025-06-30T14:05:09+00:00",
        "recorded": "2025-06-30T14:05:09+00:00",
        "activity": coding(c.PROVENANCE_ACTIVITY, "CREATE"),
        "agent": [{"type": coding(c.PROVENANCE_PARTICIPANT, "assembler"), "who": software()}],
        "entity": [{"role": "source", "what": {"reference": "Observation/pcr-1"}}],
    }


# --- What fhir-cml reads ---------------------------------------------------------------------


def bcr_abl1() -> Resource:
    return {
        "resourceType": "Observation",
        "meta": {"profile": [c.PROFILE_BCR_ABL1]},
        "status": "final",
        "category": [coding(c.OBSERVATION_CATEGORY, "laboratory")],
        "code": coding(LOINC, "69380-4"),
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2025-06-01",
        "valueQuantity": {"value": 0.05, "unit": "%", "system": UCUM, "code": "%"},
        "component": [
            {
                "code": coding(c.CS_CML, c.ABL1_COPIES),
                "valueQuantity": {
                    "value": 45000,
                    "unit": "{copies}",
                    "system": UCUM,
                    "code": "{copies}",
                },
            },
            {
                "code": coding(c.CS_CML, c.TRANSCRIPT_TYPE),
                "valueCodeableConcept": coding(c.CS_TRANSCRIPT, "e14a2"),
            },
        ],
    }


def trough() -> Resource:
    return {
        "resourceType": "Observation",
        "meta": {"profile": [c.PROFILE_TROUGH]},
        "status": "final",
        "code": coding(LOINC, "103609-4"),
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2025-05-20T08:00:00Z",
        "valueQuantity": {"value": 850, "unit": "ng/mL", "system": UCUM, "code": "ng/mL"},
        "component": [
            {
                "code": coding(LOINC, "45359-7"),
                "valueQuantity": {"value": 24, "unit": "h", "system": UCUM, "code": "h"},
            }
        ],
    }


def mutation() -> Resource:
    return {
        "resourceType": "Observation",
        "meta": {"profile": [c.PROFILE_MUTATION]},
        "status": "final",
        "code": coding(LOINC, "69548-6"),
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2025-04-02",
        "valueCodeableConcept": coding(LOINC, "LA9633-4"),
        "component": [
            {
                "code": coding(LOINC, "48005-3"),
                "valueCodeableConcept": coding(c.HGVS, "NP_005148.2:p.Thr315Ile"),
            },
            {"code": coding(LOINC, "48018-6"), "valueCodeableConcept": coding(c.HGNC, "HGNC:76")},
        ],
    }


def tki_statement() -> Resource:
    return {
        "resourceType": "MedicationStatement",
        "meta": {"profile": [c.PROFILE_TKI_STATEMENT]},
        "status": "active",
        "medicationCodeableConcept": coding(c.RXNORM, "282388"),
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": "2023-01-10"},
        "dosage": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [
                    {"doseQuantity": {"value": 400, "unit": "mg", "system": UCUM, "code": "mg"}}
                ],
            }
        ],
    }


def tki_request() -> Resource:
    """A TKI order shaped as US Core sends it (its required elements and must-supports)."""
    return {
        "resourceType": "MedicationRequest",
        "meta": {"profile": [c.PROFILE_TKI_REQUEST]},
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": coding(c.RXNORM, "799047"),
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2024-01-08",
        "requester": {"reference": "Practitioner/dr"},
        "dosageInstruction": [
            {
                "timing": {
                    "repeat": {
                        "boundsPeriod": {"start": "2024-01-10"},
                        "frequency": 1,
                        "period": 1,
                        "periodUnit": "d",
                    }
                },
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
            }
        ],
        "dispenseRequest": {
            "validityPeriod": {"start": "2024-01-08", "end": "2025-01-08"},
            "numberOfRepeatsAllowed": 3,
            "expectedSupplyDuration": {
                "value": 90,
                "unit": "days",
                "system": UCUM,
                "code": "d",
            },
        },
    }


def proposed(case: str, kind: str) -> Callable[[], Resource]:
    """A request fhir-cml proposes for a test case, as built (it refers to inputs only)."""

    def made() -> Resource:
        from fhir_cml.fhir.outbound import build
        from tests.unit.cases import assessment

        written = build(assessment(case), RECORDED)
        [found] = [r.resource for r in written.requests if r.resource["resourceType"] == kind]
        return copy.deepcopy(found)

    return made


service_request = proposed("t315i", "ServiceRequest")
medication_request = proposed("tfr-relapse", "MedicationRequest")
request_group = proposed("t315i", "RequestGroup")


BASELINES: dict[str, Callable[[], Resource]] = {
    "service-request": service_request,
    "medication-request": medication_request,
    "request-group": request_group,
    "risk-assessment": risk_assessment,
    "care-plan": care_plan,
    "provenance": provenance,
    "bcr-abl1": bcr_abl1,
    "trough": trough,
    "mutation": mutation,
    "tki-statement": tki_statement,
    "tki-request": tki_request,
}

Change = Callable[[Resource], object]


def changed(base: Callable[[], Resource], *changes: Change) -> Resource:
    resource = base()
    for change in changes:
        change(resource)
    return resource


def put(key: str, value: Any) -> Change:
    return lambda r: r.__setitem__(key, value)


def drop(key: str) -> Change:
    return lambda r: r.pop(key)


def at(
    path: Callable[[Resource], Resource], key: str, value: Any = None, remove: bool = False
) -> Change:
    def change(r: Resource) -> None:
        target = path(r)
        if remove:
            target.pop(key)
        else:
            target[key] = value

    return change


def problems(result: Result) -> str:
    return "\n".join(str(i) for i in result.issues) or "no issues"


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_conforms(v: ProfileValidator, name: str) -> None:
    result = v.validate(BASELINES[name]())
    assert result.valid, problems(result)
    assert not result.unchecked


# Shapes EHRs send (docs/inbound.md): permissive where EHRs vary.
ACCEPTED: dict[str, Resource] = {
    "bcr-undetectable-coded": changed(
        bcr_abl1, drop("valueQuantity"), put("valueCodeableConcept", coding(SCT, "260415000"))
    ),
    "bcr-undetectable-interpretation-only": changed(
        bcr_abl1,
        drop("valueQuantity"),
        put("interpretation", [coding(c.V3_INTERPRETATION, "ND")]),
    ),
    "bcr-undetectable-data-absent-text": changed(
        bcr_abl1, drop("valueQuantity"), put("dataAbsentReason", {"text": "Not detected"})
    ),
    "bcr-below-limit-comparator": changed(
        bcr_abl1,
        put(
            "valueQuantity",
            {"value": 0.0032, "comparator": "<", "unit": "%", "system": UCUM, "code": "%"},
        ),
    ),
    "bcr-ratio-of-copies": changed(
        bcr_abl1,
        drop("valueQuantity"),
        put("valueRatio", {"numerator": {"value": 12}, "denominator": {"value": 45000}}),
    ),
    "bcr-log-reduction": changed(
        bcr_abl1, put("code", coding(LOINC, "50195-7")), put("valueQuantity", {"value": 3.4})
    ),
    "bcr-not-is-with-factor-and-gusb": changed(
        bcr_abl1,
        put(
            "code",
            {
                "coding": [
                    {"system": LOINC, "code": "55147-3"},
                    {"system": "urn:lab", "code": "BCRABL"},
                ]
            },
        ),
        put(
            "component",
            [
                {"code": coding(c.CS_CML, c.GUSB_COPIES), "valueInteger": 120000},
                {
                    "code": coding(c.CS_CML, c.CONVERSION_FACTOR),
                    "valueQuantity": {"value": 0.8, "unit": "1", "system": UCUM, "code": "1"},
                },
                {"code": coding(c.CS_CML, c.TRANSCRIPT_TYPE), "valueString": "e13a2"},
                {"code": {"text": "lab's own component"}, "valueString": "anything"},
            ],
        ),
    ),
    "bcr-effective-period-no-category": changed(
        bcr_abl1,
        drop("effectiveDateTime"),
        drop("category"),
        put("effectivePeriod", {"start": "2025-06-01T08:00:00Z"}),
    ),
    "trough-local-time-code-umol": changed(
        trough,
        put("code", coding(LOINC, "57844-3")),
        put("valueQuantity", {"value": 1.9, "unit": "umol/L", "system": UCUM, "code": "umol/L"}),
        put(
            "component",
            [
                {
                    "code": coding(c.CS_CML, c.TIME_SINCE_DOSE),
                    "valueQuantity": {"value": 23.5, "unit": "h"},
                }
            ],
        ),
    ),
    "bcr-value-as-text": changed(bcr_abl1, drop("valueQuantity"), put("valueString", "< 0,0032 %")),
    "bcr-free-text-unit": changed(bcr_abl1, put("valueQuantity", {"value": 0.05, "unit": "% IS"})),
    "trough-value-as-text": changed(trough, drop("valueQuantity"), put("valueString", "850 ng/mL")),
    "tki-request-stopped-with-reason": changed(
        tki_request,
        put("status", "stopped"),
        put("statusReason", {"text": "Stopped to attempt treatment-free remission"}),
        drop("dispenseRequest"),
    ),
    "mutation-coded-finding": changed(
        mutation, put("valueCodeableConcept", {"text": "T315I"}), drop("component")
    ),
    "mutation-negative": changed(
        mutation, put("valueCodeableConcept", coding(SCT, "260415000")), drop("component")
    ),
    "tki-referenced-medication-stopped": changed(
        tki_statement,
        drop("medicationCodeableConcept"),
        put("medicationReference", {"reference": "#med"}),
        put(
            "contained",
            [{"resourceType": "Medication", "id": "med", "code": coding(c.ATC, "L01EA01")}],
        ),
        put("status", "stopped"),
        put("statusReason", [{"text": "Stopped to attempt treatment-free remission"}]),
        put("effectiveDateTime", "2021-03-01"),
        drop("effectivePeriod"),
        put(
            "dosage",
            [{"text": "400 mg twice daily", "timing": {"code": coding(c.V3_TIMING, "BID")}}],
        ),
    ),
    "tki-text-only-no-dates": changed(
        tki_statement,
        put("medicationCodeableConcept", {"text": "Glivec 400 mg"}),
        drop("effectivePeriod"),
        drop("dosage"),
    ),
    "risk-assessment-superseded": changed(
        risk_assessment,
        lambda r: r["extension"].append(
            {"url": c.EXT_REPLACED_BY, "valueReference": {"reference": "RiskAssessment/new"}}
        ),
    ),
    "risk-assessment-minimal": changed(
        risk_assessment,
        lambda r: r.__setitem__("extension", r["extension"][:6]),
        drop("condition"),
        drop("basis"),
        drop("prediction"),
        drop("mitigation"),
    ),
    "care-plan-revoked-no-activity": changed(
        care_plan,
        put("status", "revoked"),
        drop("activity"),
        drop("addresses"),
        put("replaces", [{"reference": "CarePlan/old"}]),
    ),
    "provenance-without-entities": changed(provenance, drop("entity")),
    "provenance-with-the-clinician-who-accepted": changed(
        provenance,
        lambda r: r["agent"].append(
            {
                "type": coding(c.PROVENANCE_PARTICIPANT, "verifier"),
                "who": {"reference": "Practitioner/dr-a", "display": "Dr A"},
            }
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted_shape(v: ProfileValidator, name: str) -> None:
    result = v.validate(ACCEPTED[name])
    assert result.valid, problems(result)


def first_component(r: Resource) -> Resource:
    return r["component"][0]  # type: ignore[no-any-return]


def first_detail(r: Resource) -> Resource:
    return r["activity"][0]["detail"]  # type: ignore[no-any-return]


def ext(index: int) -> Callable[[Resource], Resource]:
    return lambda r: r["extension"][index]


# (resource, the element path that must be named)
BROKEN: dict[str, tuple[Resource, str]] = {
    # CarePlan
    "care-plan-status-completed": (
        changed(care_plan, put("status", "completed")),
        "CarePlan.status",
    ),
    "care-plan-activity-both-reference-and-detail": (  # cml-cp-1
        changed(
            care_plan,
            lambda r: r["activity"][0].__setitem__("reference", {"reference": "ServiceRequest/1"}),
        ),
        "CarePlan.activity[0]",
    ),
    "care-plan-reference-without-its-recommendation": (  # cml-cp-2
        changed(care_plan, put("activity", [{"reference": {"reference": "ServiceRequest/1"}}])),
        "CarePlan.activity[0]",
    ),
    # Proposed requests
    "service-request-an-order": (
        changed(service_request, put("intent", "order")),
        "ServiceRequest.intent",
    ),
    "service-request-completed": (
        changed(service_request, put("status", "completed")),
        "ServiceRequest.status",
    ),
    "service-request-without-identifier": (
        changed(service_request, drop("identifier")),
        "ServiceRequest.identifier",
    ),
    "service-request-do-not-perform": (
        changed(service_request, put("doNotPerform", True)),
        "ServiceRequest.doNotPerform",
    ),
    "medication-request-revoked": (  # MedicationRequest is cancelled, never revoked
        changed(medication_request, put("status", "revoked")),
        "MedicationRequest.status",
    ),
    "medication-request-without-dosage": (
        changed(medication_request, drop("dosageInstruction")),
        "MedicationRequest.dosageInstruction",
    ),
    "medication-request-not-a-tki": (
        changed(
            medication_request,
            put("medicationCodeableConcept", coding(c.ATC, "J01FA09")),
        ),
        "MedicationRequest.medication[x]",
    ),
    "medication-request-an-order": (
        changed(medication_request, put("intent", "order")),
        "MedicationRequest.intent",
    ),
    "request-group-any-option": (
        changed(
            request_group,
            lambda r: r["action"][0].__setitem__("selectionBehavior", "any"),
        ),
        "RequestGroup.action.selectionBehavior",
    ),
    "request-group-without-author": (
        changed(request_group, drop("author")),
        "RequestGroup.author",
    ),
    "care-plan-intent-order": (changed(care_plan, put("intent", "order")), "CarePlan.intent"),
    "care-plan-unknown-activity-code": (
        changed(care_plan, at(first_detail, "code", coding(c.CS_RECOMMENDATION, "do-something"))),
        "CarePlan.activity[0].detail.code",
    ),
    "care-plan-activity-code-other-system": (
        changed(care_plan, at(first_detail, "code", coding(SCT, "182840001"))),
        "CarePlan.activity[0].detail.code",
    ),
    "care-plan-activity-without-code": (
        changed(care_plan, at(first_detail, "code", remove=True)),
        "CarePlan.activity[0].detail.code",
    ),
    "care-plan-activity-reference-and-detail": (
        changed(
            care_plan,
            lambda r: r["activity"][0].__setitem__("reference", {"reference": "ServiceRequest/1"}),
        ),
        "CarePlan.activity[0]",
    ),
    "care-plan-without-as-of": (changed(care_plan, drop("extension")), "CarePlan.extension"),
    "care-plan-no-suggestions-category": (
        changed(care_plan, put("category", [coding(c.CS_CML, c.CML_ASSESSMENT)])),
        "CarePlan.category",
    ),
    "care-plan-identifier-system": (
        changed(care_plan, put("identifier", [{"system": c.ID_ASSESSMENT, "value": "x"}])),
        "CarePlan.identifier",
    ),
    "care-plan-author-not-fhir-cml": (
        changed(care_plan, lambda r: r["author"]["identifier"].__setitem__("value", "someone")),
        "CarePlan.author.identifier.value",
    ),
    "care-plan-basis-without-statement": (
        changed(care_plan, lambda r: first_detail(r)["extension"][0]["extension"].pop(1)),
        "CarePlan.activity[0].detail.extension[0].extension",
    ),
    "care-plan-no-created": (changed(care_plan, drop("created")), "CarePlan.created"),
    # RiskAssessment
    "risk-assessment-no-subject": (
        changed(risk_assessment, drop("subject")),
        "RiskAssessment.subject",
    ),
    "risk-assessment-as-of-without-value": (
        changed(risk_assessment, at(ext(0), "valueDate", remove=True)),
        "RiskAssessment.extension[0].value[x]",
    ),
    "risk-assessment-as-of-string": (
        changed(
            risk_assessment,
            at(ext(0), "valueDate", remove=True),
            at(ext(0), "valueString", "today"),
        ),
        "RiskAssessment.extension[0].valueString",
    ),
    "risk-assessment-without-molecular-response": (
        changed(risk_assessment, lambda r: r["extension"].pop(2)),
        "RiskAssessment.extension",
    ),
    "risk-assessment-unknown-depth": (
        changed(
            risk_assessment,
            at(ext(2), "valueCodeableConcept", coding(c.CS_MOLECULAR_RESPONSE, "MR7")),
        ),
        "RiskAssessment.extension[2].value[x]",
    ),
    "risk-assessment-eln-status-unknown": (
        changed(
            risk_assessment,
            lambda r: r["extension"][3]["extension"][0].__setitem__(
                "valueCoding", {"system": c.CS_ELN_RESPONSE, "code": "excellent"}
            ),
        ),
        "RiskAssessment.extension[3].extension[0].valueCoding",
    ),
    "risk-assessment-eln-without-guideline": (
        changed(risk_assessment, lambda r: r["extension"][3]["extension"].pop(2)),
        "RiskAssessment.extension[3].extension",
    ),
    "risk-assessment-basis-without-rule": (
        changed(risk_assessment, lambda r: r["extension"][7]["extension"].pop(0)),
        "RiskAssessment.extension[7].extension",
    ),
    "risk-assessment-wrong-code": (
        changed(risk_assessment, put("code", coding(c.CS_CML, c.CML_SUGGESTIONS))),
        "RiskAssessment.code",
    ),
    "risk-assessment-preliminary": (
        changed(risk_assessment, put("status", "preliminary")),
        "RiskAssessment.status",
    ),
    "risk-assessment-unknown-guideline": (
        changed(risk_assessment, put("method", coding(c.CS_GUIDELINE, "eln2030"))),
        "RiskAssessment.method",
    ),
    "risk-assessment-outcome-not-a-prediction": (
        changed(
            risk_assessment,
            lambda r: r["prediction"][0].__setitem__("outcome", coding(c.CS_CML, c.ABL1_COPIES)),
        ),
        "RiskAssessment.prediction[0].outcome",
    ),
    "risk-assessment-unknown-risk-category": (
        changed(
            risk_assessment,
            lambda r: r["extension"][7]["extension"][2].__setitem__(
                "valueCoding", {"system": c.CS_RISK_CATEGORY, "code": "very-high"}
            ),
        ),
        "RiskAssessment.extension[7].extension[2].valueCoding",
    ),
    "risk-assessment-prediction-without-probability": (
        changed(risk_assessment, lambda r: r["prediction"][0].pop("probabilityDecimal")),
        "RiskAssessment.prediction[0].probability[x]",
    ),
    "risk-assessment-occurrence-period": (
        changed(
            risk_assessment,
            drop("occurrenceDateTime"),
            put("occurrencePeriod", {"start": "2025-06-30"}),
        ),
        "RiskAssessment.occurrencePeriod",
    ),
    "risk-assessment-no-fingerprint": (
        changed(risk_assessment, drop("identifier")),
        "RiskAssessment.identifier",
    ),
    # Provenance
    "provenance-activity-update": (
        changed(provenance, put("activity", coding(c.PROVENANCE_ACTIVITY, "UPDATE"))),
        "Provenance.activity",
    ),
    "provenance-agent-author": (  # fhir-cml must be the assembler (cml-prov-1)
        changed(
            provenance,
            lambda r: r["agent"][0].__setitem__("type", coding(c.PROVENANCE_PARTICIPANT, "author")),
        ),
        "Provenance",  # cml-prov-1: fhir-cml must be the assembler
    ),
    "provenance-two-fhir-cml-assemblers": (
        changed(provenance, lambda r: r["agent"].append(copy.deepcopy(r["agent"][0]))),
        "Provenance",
    ),
    "provenance-no-occurred": (
        changed(provenance, drop("occurredDateTime")),
        "Provenance.occurred[x]",
    ),
    "provenance-without-as-of": (changed(provenance, drop("extension")), "Provenance.extension"),
    "provenance-entity-derivation": (
        changed(provenance, lambda r: r["entity"][0].__setitem__("role", "derivation")),
        "Provenance.entity.role",
    ),
    # BCR::ABL1
    # No "wrong code" case: the code binding is extensible (a laboratory's own code, mapped by the
    # site's ConceptMap, is a valid BCR::ABL1 result); see test_a_local_code_is_accepted.
    "bcr-abl1-copies-as-text": (
        changed(
            bcr_abl1,
            at(first_component, "valueQuantity", remove=True),
            at(first_component, "valueString", "many"),
        ),
        "Observation.component[0].valueString",
    ),
    "bcr-abl1-copies-without-value": (
        changed(bcr_abl1, at(first_component, "valueQuantity", remove=True)),
        "Observation.component[0].value[x]",
    ),
    "bcr-transcript-as-boolean": (
        changed(
            bcr_abl1,
            lambda r: r["component"][1].pop("valueCodeableConcept"),
            lambda r: r["component"][1].__setitem__("valueBoolean", True),
        ),
        "Observation.component[1].valueBoolean",
    ),
    "bcr-two-abl1-copies": (
        changed(bcr_abl1, lambda r: r["component"].append(copy.deepcopy(r["component"][0]))),
        "Observation.component",
    ),
    "bcr-value-as-a-boolean": (
        changed(bcr_abl1, drop("valueQuantity"), put("valueBoolean", True)),
        "Observation.valueBoolean",
    ),
    "bcr-no-result-at-all": (changed(bcr_abl1, drop("valueQuantity")), "Observation"),
    "bcr-quantity-without-number": (
        changed(bcr_abl1, put("valueQuantity", {"unit": "%", "system": UCUM, "code": "%"})),
        "Observation",
    ),
    "bcr-ratio-without-denominator": (
        changed(bcr_abl1, drop("valueQuantity"), put("valueRatio", {"numerator": {"value": 12}})),
        "Observation",
    ),
    "bcr-no-subject": (changed(bcr_abl1, drop("subject")), "Observation.subject"),
    "bcr-no-date": (changed(bcr_abl1, drop("effectiveDateTime")), "Observation.effective[x]"),
    "bcr-status-unknown-code": (changed(bcr_abl1, put("status", "done")), "Observation.status"),
    # Trough, mutation, TKI
    "trough-value-as-a-ratio": (
        changed(trough, drop("valueQuantity"), put("valueRatio", {"numerator": {"value": 1}})),
        "Observation.valueRatio",
    ),
    "trough-no-value": (changed(trough, drop("valueQuantity")), "Observation.value[x]"),
    "trough-without-unit": (changed(trough, put("valueQuantity", {"value": 850})), "Observation"),
    "trough-hours-as-text": (
        changed(
            trough,
            at(first_component, "valueQuantity", remove=True),
            at(first_component, "valueString", "a day"),
        ),
        "Observation.component[0].valueString",
    ),
    "mutation-wrong-code": (
        changed(mutation, put("code", coding(LOINC, "69380-4"))),
        "Observation.code",
    ),
    "mutation-no-finding": (
        changed(mutation, drop("valueCodeableConcept"), lambda r: r["component"].pop(0)),
        "Observation",
    ),
    "mutation-quantity": (
        changed(mutation, drop("valueCodeableConcept"), put("valueQuantity", {"value": 1})),
        "Observation.valueQuantity",
    ),
    "mutation-gene-as-text": (
        changed(
            mutation,
            lambda r: r["component"][1].pop("valueCodeableConcept"),
            lambda r: r["component"][1].__setitem__("valueString", "ABL1"),
        ),
        "Observation.component[1].valueString",
    ),
    "tki-unknown-status": (
        changed(tki_statement, put("status", "taking")),
        "MedicationStatement.status",
    ),
    "tki-no-medication": (
        changed(tki_statement, drop("medicationCodeableConcept")),
        "MedicationStatement.medication[x]",
    ),
    "tki-subject-group": (
        changed(tki_statement, put("subject", {"reference": "Group/clinic"})),
        "MedicationStatement.subject",
    ),
}


def test_a_local_code_is_accepted(v: ProfileValidator) -> None:
    """Inbound profiles bind codes extensibly: a laboratory's own code is still a valid input."""
    local = changed(bcr_abl1, put("code", coding("https://lab.example.org/codes", "BCRABL-IS")))
    result = v.validate(local)
    assert result.valid, problems(result)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_resource_is_rejected_at_its_path(v: ProfileValidator, name: str) -> None:
    resource, path = BROKEN[name]
    result = v.validate(resource)
    assert not result.valid, f"{name} was accepted"
    assert path in result.paths(), f"{name}: expected an error at {path}, got:\n{problems(result)}"


# --- The published conformance resources themselves -----------------------------------------


@pytest.mark.parametrize(
    "resource", conformance.all_resources(), ids=lambda r: f"{r['resourceType']}/{r['id']}"
)
def test_conformance_resource_is_valid_r4(v: ProfileValidator, resource: Resource) -> None:
    result = v.validate(resource)
    assert result.valid, problems(result)


def test_base_invariants_are_checked(v: ProfileValidator) -> None:
    capability = conformance.load("CapabilityStatement", "fhir-cml")
    del capability["implementation"]  # cpb-15: an instance statement names its implementation
    result = v.validate(capability)
    assert not result.valid
    assert any("cpb" in i.message for i in result.errors), problems(result)


# --- examples/ -------------------------------------------------------------------------------


def example_resources() -> Iterator[tuple[str, Resource]]:
    for path in sorted(EXAMPLES.glob("**/*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        resources = (
            [e["resource"] for e in data.get("entry", [])]
            if data.get("resourceType") == "Bundle"
            else [data]
        )
        for resource in resources:
            yield f"{path.name}:{resource['resourceType']}/{resource.get('id')}", resource


CLAIMING = [(n, r) for n, r in example_resources() if r.get("meta", {}).get("profile")]


def test_examples_claim_our_profiles() -> None:
    claimed = {p for _, r in CLAIMING for p in r["meta"]["profile"]}
    assert {c.PROFILE_BCR_ABL1, c.PROFILE_TKI_STATEMENT} <= claimed


@pytest.mark.parametrize("name", [n for n, _ in CLAIMING])
def test_example_conforms_to_the_profiles_it_claims(v: ProfileValidator, name: str) -> None:
    resource = dict(CLAIMING)[name]
    ours = [p for p in resource["meta"]["profile"] if p in v.profiles]
    foreign = [p for p in resource["meta"]["profile"] if p not in v.profiles]
    # Profiles of other guides (Genomics Reporting's variant) are not loaded here; a resource
    # claiming one must also claim ours, so that it is checked.
    assert ours or not foreign, f"{name} claims only profiles not loaded here: {foreign}"
    for profile in ours:
        result = v.validate(resource, profile)
        assert result.valid, f"{name} against {profile}:\n{problems(result)}"


def test_every_example_resource_is_valid_r4(v: ProfileValidator) -> None:
    failures = {}
    for name, resource in example_resources():
        result = v.check(resource, None)
        if not result.valid:
            failures[name] = problems(result)
    assert not failures, failures


# --- The package's examples (profiles/examples) -----------------------------------------------


PACKAGE_EXAMPLES = sorted((ROOT / "profiles" / "examples").glob("*.json"))


@pytest.mark.parametrize("path", PACKAGE_EXAMPLES, ids=lambda p: p.stem)
def test_package_example_conforms_to_its_profiles(v: ProfileValidator, path: Path) -> None:
    resource = json.loads(path.read_text(encoding="utf-8"))
    assert resource["meta"]["profile"]
    for profile in resource["meta"]["profile"]:
        assert profile in v.profiles, profile
        result = v.validate(resource, profile)
        assert result.valid, f"{path.name}:\n{problems(result)}"
    if resource["resourceType"] == "Bundle":
        for entry in resource["entry"]:
            result = v.validate(entry["resource"])
            assert result.valid, f"{path.name} {entry['fullUrl']}:\n{problems(result)}"


# --- What the engine writes ------------------------------------------------------------------


def written_for_cases() -> Iterator[tuple[str, Resource]]:
    from fhir_cml.fhir.outbound import (
        Successor,
        build,
        result_bundle,
        standalone,
        supersede,
        transaction_bundle,
    )
    from fhir_cml.fhir.outbound.narrative import SUPERSEDED
    from fhir_cml.fhir.outbound.requests import with_status
    from tests.unit.cases import RECORDS, assessment

    for name in sorted(RECORDS):
        a = assessment(name)
        for entry in (
            transaction_bundle([a], RECORDED)["entry"] + result_bundle([a], RECORDED)["entry"]
        ):
            resource = entry["resource"]
            yield f"{name}:{resource['resourceType']}", resource
        written = build(a, RECORDED)
        old_plan = {**written.care_plan, "id": "old-plan"}
        old_risk = {**written.risk_assessment, "id": "old-risk"}
        successor = Successor("RiskAssessment/new", "CarePlan/new")
        for resource in supersede(old_plan, old_risk, successor, written.care_plan):
            yield f"{name}:superseded:{resource['resourceType']}", resource
        for request in written.requests:
            for status in ("active", "withdrawn"):
                changed_ = with_status({**request.resource, "id": "old"}, status, SUPERSEDED)
                yield f"{name}:{status}:{request.resource['resourceType']}", changed_
        for resource in standalone(written):  # a CDS card's create actions
            yield f"{name}:card:{resource['resourceType']}", resource


@pytest.mark.parametrize("written", list(written_for_cases()), ids=lambda w: w[0])
def test_what_the_builders_write_conforms(
    v: ProfileValidator, written: tuple[str, Resource]
) -> None:
    name, resource = written
    if resource["resourceType"] in (
        "RiskAssessment",
        "CarePlan",
        "ServiceRequest",
        "MedicationRequest",
        "RequestGroup",
        "Provenance",
    ):
        assert resource["meta"]["profile"], f"{name} claims no profile"
    result = v.validate(resource)
    assert result.valid, f"{name}:\n{problems(result)}"


def written_for_examples() -> list[tuple[str, Resource]]:
    """The example patients read with the inbound mapper, assessed under every guideline, written."""
    from fhir_cml.domain import Guideline, assess
    from fhir_cml.fhir import inbound
    from fhir_cml.fhir.outbound import result_bundle

    as_of = RECORDED.date()
    out: list[tuple[str, Resource]] = []
    for path in sorted(EXAMPLES.glob("*.json")):
        loaded = inbound.load_paths([path], inbound.MappingOptions(now=RECORDED))
        assert loaded.records, f"{path.name}: no patient read"
        for guideline in Guideline:
            assessments = [assess(record, as_of, guideline) for record in loaded.records]
            for entry in result_bundle(assessments, RECORDED)["entry"]:
                resource = entry["resource"]
                out.append((f"{path.name}:{guideline}:{resource['resourceType']}", resource))
    return out


def test_what_the_engine_writes_for_every_example_patient_conforms(v: ProfileValidator) -> None:
    written = written_for_examples()
    kinds = {r["resourceType"] for _, r in written}
    assert {
        "RiskAssessment",
        "CarePlan",
        "ServiceRequest",
        "MedicationRequest",
        "RequestGroup",
        "Provenance",
    } <= kinds
    failures = {
        name: problems(result) for name, r in written if not (result := v.validate(r)).valid
    }
    assert not failures, failures
