"""The FHIR face: metadata, conformance reads, POST /fhir/$cml-assess, and every error status."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhir_cml import conformance
from fhir_cml.fhir import canonical as c
from tests.support.profile_validator import validator

from .conftest import PUBLIC

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FHIR_JSON = "application/fhir+json"
ASSESS = "/fhir/$cml-assess"


def example(name: str = "03-failure-t315i.json") -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text())


def resources(name: str = "03-failure-t315i.json") -> list[dict[str, Any]]:
    return [e["resource"] for e in example(name)["entry"]]


def parameters(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(parts)}


def post(client: FlaskClient, body: Any, path: str = ASSESS, **kwargs: Any) -> Any:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    kwargs.setdefault("content_type", FHIR_JSON)
    return client.post(path, data=data, **kwargs)


def outcome_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == FHIR_JSON
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] == "error"
    return dict(body)


# --- metadata and conformance ------------------------------------------------------------------


def test_metadata_serves_the_generated_capability_statement(client: FlaskClient) -> None:
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    assert response.mimetype == FHIR_JSON
    served = response.get_json()
    generated = conformance.load("CapabilityStatement", "fhir-cml")
    assert served["implementation"]["url"] == f"{PUBLIC}/fhir"
    del served["implementation"]["url"]
    # No callers configured here: the patient-level operation is off, so no security is served.
    del generated["rest"][0]["security"]
    assert served == generated
    profiles = {p for r in served["rest"][0]["resource"] for p in r.get("supportedProfile", [])}
    assert c.PROFILE_CARE_PLAN in profiles
    assert served["rest"][0]["operation"][0]["definition"] == c.OPERATION_ASSESS


def test_what_the_capability_statement_names_can_be_read_here(client: FlaskClient) -> None:
    served = client.get("/fhir/metadata").get_json()
    urls = {op["definition"] for op in served["rest"][0]["operation"]}
    urls |= {p for r in served["rest"][0]["resource"] for p in r.get("supportedProfile", [])}
    for url in urls:
        kind, rid = url.split("/")[-2:]
        response = client.get(f"/fhir/{kind}/{rid}")
        assert response.status_code == 200, url
        assert response.get_json()["url"] == url


def test_unknown_conformance_resources_are_404(client: FlaskClient) -> None:
    outcome_of(client.get("/fhir/StructureDefinition/nope"), 404)
    outcome_of(client.get("/fhir/Observation/1"), 404)
    outcome_of(client.get("/fhir/nothing/here/at/all"), 404)


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        ({"Accept": "application/fhir+json"}, "", 200),
        ({"Accept": "application/json"}, "", 200),
        ({"Accept": "*/*"}, "", 200),
        ({"Accept": "application/fhir+xml"}, "", 406),
        ({}, "?_format=xml", 406),
        ({}, "?_format=json", 200),
    ],
)
def test_content_negotiation(
    client: FlaskClient, headers: dict[str, str], query: str, status: int
) -> None:
    assert client.get(f"/fhir/metadata{query}", headers=headers).status_code == status


# --- $cml-assess -------------------------------------------------------------------------------


def test_a_bundle_body_is_assessed(client: FlaskClient) -> None:
    response = post(client, example(), ASSESS + "?asOf=2025-06-30")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == FHIR_JSON
    bundle = response.get_json()
    assert bundle["type"] == "collection"
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == [
        "RiskAssessment",
        "CarePlan",
        "RequestGroup",  # the switch, with its options
        "ServiceRequest",  # the overdue PCR
        "Provenance",
        "OperationOutcome",
    ]
    risk = bundle["entry"][0]["resource"]
    assert risk["occurrenceDateTime"] == "2025-06-30"
    assert risk["subject"] == {"reference": "Patient/cml-t315i"}


def test_parameters_with_resources_as_of_and_guideline(client: FlaskClient) -> None:
    body = parameters(
        *({"name": "resource", "resource": r} for r in resources()),
        {"name": "asOf", "valueDate": "2025-06-30"},
        {"name": "guideline", "valueCode": "eln2013"},
    )
    response = post(client, body, content_type="application/json")
    assert response.status_code == 200
    risk = response.get_json()["entry"][0]["resource"]
    assert risk["method"]["coding"][0]["code"] == "eln2013"


def test_a_bundle_inside_parameters(client: FlaskClient) -> None:
    body = parameters({"name": "resource", "resource": example()})
    assert post(client, body).status_code == 200


def test_what_is_returned_validates_against_the_profiles(client: FlaskClient) -> None:
    for name in ("01-optimal-responder.json", "05-tfr-candidate.json", "09-cyp3a4-inhibitor.json"):
        bundle = post(client, example(name), ASSESS + "?asOf=2025-06-30").get_json()
        for entry in bundle["entry"]:
            result = validator().validate(entry["resource"])
            assert result.valid, (name, [str(i) for i in result.errors])


def test_reader_issues_travel_in_the_operation_outcome(client: FlaskClient) -> None:
    bundle = example()
    bundle["entry"].append({"resource": {"resourceType": "Observation"}})
    bundle["entry"].append({"fullUrl": "broken"})
    answer = post(client, bundle, ASSESS + "?asOf=2025-06-30").get_json()
    outcome = answer["entry"][-1]["resource"]
    codes = [i["details"]["coding"][0]["code"] for i in outcome["issue"] if "details" in i]
    assert "unreadable" in codes or "no-subject" in codes


@pytest.mark.parametrize(
    ("body", "query", "status", "match"),
    [
        ("{not json", "", 400, "not valid JSON"),
        ("[1, 2]", "", 400, "must be a JSON object"),
        ('{"a": NaN}', "", 400, "not valid JSON"),
        ("{}", "", 400, "no resourceType"),
        ('{"resourceType": 7}', "", 400, "no resourceType"),
        (parameters({"name": "asOf", "valueDate": "30.06.2025"}), "", 400, "YYYY-MM-DD"),
        (parameters({"name": "asOf", "valueDate": "2025-02-30"}), "", 400, "not a calendar"),
        (parameters({"name": "asOf"}), "", 400, "asOf"),
        (parameters({"name": "guideline", "valueCode": "eln1999"}), "", 400, "guideline"),
        (parameters({"name": "shoeSize", "valueInteger": 9}), "", 400, "unknown parameter"),
        (parameters({"name": "resource", "resource": "Patient/1"}), "", 400, "FHIR resource"),
        (parameters({"value": 1}), "", 400, "has no name"),
        ({"resourceType": "Parameters", "parameter": {}}, "", 400, "must be an array"),
        (
            parameters({"name": "asOf", "valueDate": "2025-06-30"}),
            "?asOf=2025-06-30",
            400,
            "both in the query and in the body",
        ),
        (
            parameters(
                {"name": "asOf", "valueDate": "2025-06-30"},
                {"name": "asOf", "valueDate": "2025-06-29"},
            ),
            "",
            400,
            "more than once",
        ),
        (example(), "?asOf=yesterday", 400, "asOf"),
        (example(), "?guideline=who", 400, "guideline"),
        (example(), "?writeBack=true", 400, "writeBack is for Patient"),
        (example(), "?writeBack=maybe", 400, "writeBack must be"),
        ({"resourceType": "Patient", "id": "1"}, "", 422, "not a Patient"),
        (parameters(), "", 422, "No patient data"),
        (
            parameters({"name": "resource", "resource": {"resourceType": "Patient", "id": "x"}}),
            "",
            422,
            "Nothing to assess",
        ),
        ({"resourceType": "Bundle", "type": "collection"}, "", 422, "Nothing to assess"),
    ],
)
def test_bad_input_gets_the_right_status(
    client: FlaskClient, body: Any, query: str, status: int, match: str
) -> None:
    outcome = outcome_of(post(client, body, ASSESS + query), status)
    assert match in outcome["issue"][0]["diagnostics"]


def test_two_patients_in_one_call_are_refused(client: FlaskClient) -> None:
    two = example()
    two["entry"] += example("01-optimal-responder.json")["entry"]
    outcome = outcome_of(post(client, two), 422)
    assert "exactly one patient" in outcome["issue"][0]["diagnostics"]


def test_a_cml_patient_and_another_patient_are_refused(client: FlaskClient) -> None:
    body = example()
    body["entry"].append({"resource": {"resourceType": "Patient", "id": "someone-else"}})
    body["entry"].append(
        {
            "resource": {
                "resourceType": "Condition",
                "subject": {"reference": "Patient/someone-else"},
                "code": {"text": "asthma"},
            }
        }
    )
    outcome_of(post(client, body), 422)


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("text/plain", 415),
        ("application/xml", 415),
        ("application/x-www-form-urlencoded", 415),
        ("application/fhir+json; charset=latin-1", 415),
        ("application/fhir+json; charset=utf-8", 200),
        ("application/json", 200),
    ],
)
def test_media_types(client: FlaskClient, content_type: str, status: int) -> None:
    response = post(client, example(), content_type=content_type)
    assert response.status_code == status


def test_a_body_that_is_not_utf8_is_400(client: FlaskClient) -> None:
    outcome_of(post(client, b'{"resourceType": "\xff"}'), 400)


def test_an_empty_body_is_400(client: FlaskClient) -> None:
    outcome_of(post(client, ""), 400)


def test_too_large_is_413(make_app: Callable[..., Flask]) -> None:
    client = make_app(max_content_length=1000).test_client()
    outcome = outcome_of(post(client, example()), 413)
    assert "1000 bytes" in outcome["issue"][0]["diagnostics"]


def test_unknown_routes_and_methods(client: FlaskClient) -> None:
    outcome_of(client.get("/nowhere"), 404)
    response = client.get(ASSESS)
    outcome_of(response, 405)
    assert "POST" in response.headers["Allow"]
    outcome_of(client.delete("/fhir/Patient/1/$cml-assess"), 405)


def test_patient_level_without_configured_callers_is_off(client: FlaskClient) -> None:
    outcome = outcome_of(client.get("/fhir/Patient/p1/$cml-assess"), 403)
    assert "FHIR_CML_API_ISSUERS" in outcome["issue"][0]["diagnostics"]


def test_a_failing_rule_is_a_500_that_names_no_patient(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fhir_cml.app import assessing

    def explode(*_: Any) -> None:
        raise RuntimeError("Patient/cml-t315i broke it")

    monkeypatch.setattr(assessing, "assess", explode)
    outcome = outcome_of(post(client, example()), 500)
    assert "cml-t315i" not in json.dumps(outcome)
