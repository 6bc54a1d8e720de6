"""The RiskAssessment, CarePlan and Provenance builders: valid R4, and saying what docs/outbound.md says."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.provenance import Provenance
from fhir.resources.R4B.riskassessment import RiskAssessment

from fhir_cml import __version__
from fhir_cml.domain import RULESET_VERSION, assess
from fhir_cml.domain.vocabulary import Recommendation
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.outbound import (
    Written,
    build,
    build_provenance,
    result_bundle,
    transaction_bundle,
)
from fhir_cml.fhir.outbound.care_plan import recommendation_code
from fhir_cml.reporting import say, suggestion_text
from tests.unit.cases import AS_OF, RECORDS, assessment, optimal_record

RECORDED = datetime(2025, 6, 30, 14, 5, 9, tzinfo=UTC)


def ext(resource: dict[str, Any], url: str) -> list[dict[str, Any]]:
    return [e for e in resource.get("extension", []) if e["url"] == url]


def sub(extension: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [e for e in extension["extension"] if e["url"] == name]


def carried(written: Written, activity: dict[str, Any]) -> dict[str, Any]:
    """What says why an activity is suggested: its detail, or the request it refers to."""
    if "detail" in activity:
        return activity["detail"]  # type: ignore[no-any-return]
    url = activity["reference"]["reference"]
    [request] = [r.resource for r in written.requests if r.url == url]
    return request


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_every_resource_is_valid_r4(name: str) -> None:
    written = build(assessment(name), RECORDED)
    RiskAssessment.model_validate(written.risk_assessment)
    CarePlan.model_validate(written.care_plan)
    Provenance.model_validate(written.provenance)
    Bundle.model_validate(transaction_bundle([assessment(name)], RECORDED))
    Bundle.model_validate(result_bundle([assessment(name)], RECORDED))


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_care_plan_is_always_a_draft_proposal_with_one_activity_per_suggestion(name: str) -> None:
    a = assessment(name)
    written = build(a, RECORDED)
    plan = written.care_plan
    assert plan["status"] == "draft"
    assert plan["intent"] == "proposal"
    assert plan["note"] == [
        {"text": "Suggestions from fhir-cml for a clinician to review; not orders."}
    ]
    activities = plan.get("activity", [])
    assert [recommendation_code(x) for x in activities] == [s.code.value for s in a.recommendations]
    for activity, suggestion in zip(activities, a.recommendations, strict=True):
        why = carried(written, activity)
        assert {r["text"] for r in why["reasonCode"]} >= {say(b) for b in suggestion.basis}
        assert set(why["instantiatesCanonical"]) >= {
            c.plan_definition(b.rule.id) for b in suggestion.basis
        }
        if "detail" in activity:
            assert why["status"] == "not-started"
            assert why["code"]["coding"][0]["system"] == c.CS_RECOMMENDATION
            assert why["description"] == suggestion_text(suggestion)
        else:  # a proposed request: the suggestion is its display and a note of the request
            assert activity["reference"]["display"] == suggestion_text(suggestion)
            assert {"text": suggestion_text(suggestion)} in why["note"]
            assert (why["status"], why["intent"]) == ("draft", "proposal")


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_risk_assessment_carries_the_reading_in_extensions(name: str) -> None:
    a = assessment(name)
    ra = build(a, RECORDED).risk_assessment
    assert ra["status"] == "final"
    assert ra["subject"] == {"reference": a.patient}
    assert ra["occurrenceDateTime"] == a.as_of.isoformat()
    assert ra["code"]["coding"][0] == {
        "system": c.CS_CML,
        "code": c.CML_ASSESSMENT,
        "display": "CML response assessment",
    }
    assert ra["method"]["coding"][0]["code"] == a.guideline.value
    assert ra["method"]["text"] == f"fhir-cml rules {RULESET_VERSION} - ELN 2020"
    assert ext(ra, c.EXT_AS_OF) == [{"url": c.EXT_AS_OF, "valueDate": "2025-06-30"}]
    assert ext(ra, c.EXT_RULESET_VERSION)[0]["valueString"] == RULESET_VERSION
    depth = ext(ra, c.EXT_MOLECULAR_RESPONSE)[0]["valueCodeableConcept"]["coding"][0]
    assert depth == {"system": c.CS_MOLECULAR_RESPONSE, "code": a.molecular_response.depth.value}
    (eln,) = ext(ra, c.EXT_ELN_RESPONSE)
    assert sub(eln, "status")[0]["valueCoding"]["code"] == a.eln.status.value
    assert [m["valueCoding"]["code"] for m in sub(eln, "milestone")] == (
        [a.eln.milestone.value] if a.eln.milestone else []
    )
    assert sub(eln, "guideline")[0]["valueCoding"]["system"] == c.CS_GUIDELINE
    tfr = ext(ra, c.EXT_TFR_STATUS)[0]["valueCodeableConcept"]["coding"][0]["code"]
    assert tfr == a.tfr.status.value
    tdm = ext(ra, c.EXT_TDM_STATUS)[0]["valueCodeableConcept"]["coding"][0]["code"]
    assert tdm == a.tdm.status.value
    due = [e["valueDate"] for e in ext(ra, c.EXT_NEXT_PCR_DUE)]
    assert due == ([a.monitoring.next_pcr_due.isoformat()] if a.monitoring.next_pcr_due else [])
    assert [b["reference"] for b in ra["basis"]] == list(a.inputs)
    bases = ext(ra, c.EXT_BASIS)
    assert bases, "every reading names its basis"
    rules = {sub(b, "rule")[0]["valueCanonical"] for b in bases}
    assert c.plan_definition("response-depth") in rules
    assert ra["performer"] == {
        "identifier": {"system": c.DEVICE_IDENTIFIER, "value": "fhir-cml"},
        "display": f"fhir-cml {__version__} (rules {RULESET_VERSION})",
    }
    if a.recommendations:
        assert len(ra["mitigation"].splitlines()) == len(a.recommendations)
    else:
        assert "mitigation" not in ra
    assert all(n["text"] for n in ra["note"])


def test_optimal_responder_predictions_and_scores() -> None:
    a = assessment("optimal")
    ra = build(a, RECORDED).risk_assessment
    by_outcome = {p["outcome"]["coding"][0]["code"]: p for p in ra["prediction"]}
    progression = by_outcome[c.PROGRESSION_AP_BC]
    assert progression["probabilityDecimal"] == 0.0
    assert progression["whenRange"]["high"] == {
        "value": 5.0,
        "unit": "a",
        "system": c.UCUM,
        "code": "a",
    }
    assert "IRIS" in progression["rationale"]
    # A prediction states a probability (R4 ras-2); the baseline scores are extensions.
    assert set(by_outcome) == {c.PROGRESSION_AP_BC}
    assert all("probabilityDecimal" in p for p in ra["prediction"])
    scores = {
        parts["score"]["valueCoding"]["code"]: parts
        for ext in ra["extension"]
        if ext["url"] == c.EXT_RISK_SCORE
        for parts in [{x["url"]: x for x in ext["extension"]}]
    }
    assert set(scores) == {c.SOKAL_SCORE, c.ELTS_SCORE, c.EUTOS_SCORE}
    sokal = scores[c.SOKAL_SCORE]
    assert sokal["category"]["valueCoding"] == {
        "system": c.CS_RISK_CATEGORY,
        "code": "intermediate",
    }
    assert sokal["value"]["valueDecimal"] == pytest.approx(0.826, abs=5e-4)
    assert ra["condition"] == {"reference": "Condition/opt-cml"}
    plan = build(a, RECORDED).care_plan
    assert plan["addresses"] == [{"reference": "Condition/opt-cml"}]
    assert plan["title"] == "CML suggestions (ELN 2020) as of 2025-06-30"


def test_failure_with_t315i_switches_and_never_escalates() -> None:
    a = assessment("t315i")
    written = build(a, RECORDED)
    codes = [recommendation_code(x) for x in written.care_plan["activity"]]
    assert codes[0] == Recommendation.SWITCH_TKI
    assert Recommendation.ESCALATE_DOSE not in codes
    switch = carried(written, written.care_plan["activity"][0])
    assert switch["resourceType"] == "RequestGroup"  # the options, exactly one to choose
    assert switch["instantiatesCanonical"] == [c.plan_definition("t315i-no-escalation")]
    assert switch["reasonReference"] == [{"reference": "Observation/t315i-mut"}]
    assert [o["medicationCodeableConcept"]["text"] for o in switch["contained"]] == [
        "ponatinib",
        "asciminib",
    ]
    (eln,) = ext(written.risk_assessment, c.EXT_ELN_RESPONSE)
    assert sub(eln, "status")[0]["valueCoding"]["code"] == "failure"


def test_reason_references_are_only_observations_and_conditions() -> None:
    written = build(assessment("t315i"), RECORDED)
    plan = written.care_plan
    refs = [
        r["reference"]
        for x in plan["activity"]
        for r in carried(written, x).get("reasonReference", [])
    ]
    assert refs
    assert all(r.startswith(("Observation/", "Condition/")) for r in refs)
    interaction = next(
        x["detail"] for x in plan["activity"] if recommendation_code(x) == "review-interactions"
    )
    assert "reasonReference" not in interaction  # a MedicationStatement is not a reason type
    evidence = [
        e["valueReference"]["reference"]
        for b in interaction["extension"]
        for e in b["extension"]
        if e["url"] == "evidence"
    ]
    assert evidence == ["MedicationStatement/t315i-clari"]


def test_tfr_relapse_restarts_tki() -> None:
    written = build(assessment("tfr-relapse"), RECORDED)
    tfr = ext(written.risk_assessment, c.EXT_TFR_STATUS)[0]["valueCodeableConcept"]["coding"][0]
    assert tfr["code"] == "molecular-relapse"
    activity = written.care_plan["activity"][0]
    assert recommendation_code(activity) == "restart-tki"
    first = carried(written, activity)
    assert first["resourceType"] == "MedicationRequest"
    assert c.plan_definition("tfr-molecular-relapse") in first["instantiatesCanonical"]


def test_not_evaluable_everything_still_writes_a_complete_reading() -> None:
    written = build(assessment("not-evaluable"), RECORDED)
    ra, plan = written.risk_assessment, written.care_plan
    assert "prediction" not in ra
    assert "mitigation" not in ra
    assert "condition" not in ra
    assert "activity" not in plan
    (eln,) = ext(ra, c.EXT_ELN_RESPONSE)
    assert sub(eln, "status")[0]["valueCoding"]["code"] == "not-evaluable"
    assert sub(eln, "milestone") == []
    assert ext(ra, c.EXT_NEXT_PCR_DUE) == []
    assert plan["supportingInfo"] == [{"reference": written.ids.risk_assessment}]


def test_provenance_names_software_inputs_and_targets() -> None:
    a = assessment("optimal")
    written = build(a, RECORDED)
    prov = written.provenance
    assert prov["target"] == [
        {"reference": written.ids.risk_assessment},
        {"reference": written.ids.care_plan},
        *({"reference": r.url} for r in written.requests),
    ]
    assert prov["recorded"] == "2025-06-30T14:05:09+00:00"
    # The activity is the writing: occurred is its moment; the as-of date is the reading's.
    assert prov["occurredDateTime"] == "2025-06-30T14:05:09+00:00"
    assert prov["activity"]["coding"][0]["code"] == "CREATE"
    assert prov["activity"]["coding"][0]["system"] == c.PROVENANCE_ACTIVITY
    agent = prov["agent"][0]
    assert agent["type"]["coding"][0]["code"] == "assembler"
    assert agent["type"]["coding"][0]["system"] == c.PROVENANCE_PARTICIPANT
    assert agent["who"]["identifier"]["system"] == c.DEVICE_IDENTIFIER
    assert [e["what"]["reference"] for e in prov["entity"]] == list(a.inputs)
    assert {e["role"] for e in prov["entity"]} == {"source"}


def test_provenance_keeps_the_callers_zone_and_refuses_a_naive_moment() -> None:
    a = assessment("optimal")
    cest = timezone(timedelta(hours=2))
    prov = build_provenance(a, ["urn:uuid:x"], datetime(2025, 6, 30, 16, 5, 9, tzinfo=cest))
    assert prov["recorded"] == "2025-06-30T16:05:09+02:00"
    with pytest.raises(ValueError, match="timezone"):
        build_provenance(a, ["urn:uuid:x"], datetime(2025, 6, 30, 16, 5, 9))


def test_inputs_without_a_server_identity_are_not_written_as_dangling_references() -> None:
    record = optimal_record()
    patient = "urn:uuid:7b0e6b1e-1111-4d2a-9a55-000000000001"
    label = "Observation (labs/in.json entry 3)"
    pcrs = (*record.bcr_abl1[:-1], replace(record.bcr_abl1[-1], ref=label))
    a = assess(replace(record, patient=patient, bcr_abl1=pcrs), AS_OF)
    written = build(a, RECORDED)
    RiskAssessment.model_validate(written.risk_assessment)
    CarePlan.model_validate(written.care_plan)
    Provenance.model_validate(written.provenance)
    logical = {"identifier": {"system": c.URI_IDENTIFIER, "value": patient}}
    ra = written.risk_assessment
    assert ra["subject"] == logical
    assert written.care_plan["subject"] == logical
    assert logical in ra["basis"]
    assert {"display": label} in ra["basis"]
    assert {"reference": "Observation/opt-pcr-24"} in ra["basis"]
    evidence = [
        e["valueReference"]
        for b in ext(ra, c.EXT_BASIS)
        for e in b["extension"]
        if e["url"] == "evidence"
    ]
    assert {"display": label} in evidence
    assert all("reference" not in r or "/" in r["reference"] for r in evidence)
    whats = [e["what"] for e in written.provenance["entity"]]
    assert logical in whats
    assert {"display": label} in whats
