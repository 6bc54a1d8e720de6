"""GET|POST /fhir/Patient/{id}/$cml-assess against the real test FHIR server (the EHR), with
writeBack, and the EHR's failures as 502/504. The caller is authenticated with a JWT access
token of an allow-listed authorization server (who may call is tested in test_fhir_callers)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from flask import Flask
from flask.testing import FlaskClient

from fhir_cml.ehr.fetch import INPUT_TYPES
from fhir_cml.fhir.outbound.care_plan import recommendation_code
from tests.support.cds import SigningEhr
from tests.support.fhir_server import FhirTestServer

from .conftest import PUBLIC

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FHIR_JSON = "application/fhir+json"
PATIENT = "cml-t315i"
OP = f"/fhir/Patient/{PATIENT}/$cml-assess"
AUTHORIZATION_SERVER = SigningEhr.make("https://auth.example.org")
ALL_SCOPES = "system/*.rs system/RiskAssessment.cus system/CarePlan.cus system/Provenance.c"


def callers(**settings: Any) -> dict[str, Any]:
    """Settings that accept access tokens of AUTHORIZATION_SERVER."""
    return {
        "api_issuers": [{"iss": AUTHORIZATION_SERVER.iss, "jwks": AUTHORIZATION_SERVER.jwks}],
        **settings,
    }


def authenticated(app: Flask, scope: str = ALL_SCOPES) -> FlaskClient:
    """A test client that sends an access token (reused for every request, as a caller does)."""
    client = app.test_client()
    token = AUTHORIZATION_SERVER.token(f"{PUBLIC}/fhir", scope=scope, lifetime=600)
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def load(server: FhirTestServer, name: str = "03-failure-t315i.json") -> dict[str, Any]:
    bundle = json.loads((EXAMPLES / name).read_text())
    server.load(bundle)
    return bundle


@pytest.fixture
def ehr_client(make_app: Callable[..., Flask], fhir_base: str) -> FlaskClient:
    return authenticated(make_app(**callers(fhir_base=fhir_base)))


def write_back(client: FlaskClient, as_of: str = "2025-06-30") -> Any:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "asOf", "valueDate": as_of},
            {"name": "writeBack", "valueBoolean": True},
        ],
    }
    return client.post(OP, data=json.dumps(body), content_type=FHIR_JSON)


def notes(bundle: dict[str, Any]) -> list[str]:
    outcome = bundle["entry"][-1]["resource"]
    return [i["diagnostics"] for i in outcome["issue"] if i["diagnostics"].startswith("writeBack")]


def test_get_assesses_the_patient_from_the_ehr(
    ehr_client: FlaskClient, fhir_server: FhirTestServer
) -> None:
    load(fhir_server)
    response = ehr_client.get(f"{OP}?asOf=2025-06-30")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == FHIR_JSON
    bundle = response.get_json()
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == [
        "RiskAssessment",
        "CarePlan",
        "RequestGroup",
        "ServiceRequest",
        "Provenance",
        "OperationOutcome",
    ]
    codes = [recommendation_code(a) for a in bundle["entry"][1]["resource"]["activity"]]
    assert "switch-tki" in codes
    assert fhir_server.stats()["byMethod"].keys() == {"GET"}  # nothing written without writeBack


def test_unknown_patient_is_404(ehr_client: FlaskClient, fhir_server: FhirTestServer) -> None:
    load(fhir_server)
    response = ehr_client.get("/fhir/Patient/nobody/$cml-assess")
    assert response.status_code == 404
    assert response.get_json()["issue"][0]["code"] == "not-found"


def test_a_patient_without_cml_evidence_is_422(
    ehr_client: FlaskClient, fhir_server: FhirTestServer
) -> None:
    fhir_server.load({"resourceType": "Patient", "id": "plain"})
    assert ehr_client.get("/fhir/Patient/plain/$cml-assess").status_code == 422


def test_not_a_fhir_id_is_400(ehr_client: FlaskClient) -> None:
    assert ehr_client.get("/fhir/Patient/a_b/$cml-assess").status_code == 400


def test_write_back_needs_post(ehr_client: FlaskClient, fhir_server: FhirTestServer) -> None:
    load(fhir_server)
    response = ehr_client.get(f"{OP}?writeBack=true")
    assert response.status_code == 400
    assert "POST" in response.get_json()["issue"][0]["diagnostics"]
    assert "POST" not in fhir_server.stats()["byMethod"]


def test_write_back_twice_creates_nothing_the_second_time(
    ehr_client: FlaskClient, fhir_server: FhirTestServer, fhir_base: str
) -> None:
    load(fhir_server)
    first = write_back(ehr_client)
    assert first.status_code == 200, first.get_data(as_text=True)
    created = notes(first.get_json())
    assert [n.split(" ")[2].split("/")[0] for n in created] == [
        "RiskAssessment",
        "CarePlan",
        "RequestGroup",
        "ServiceRequest",
        "Provenance",
    ]
    assert all(n.startswith("writeBack: created ") for n in created)
    second = write_back(ehr_client)
    assert second.status_code == 200
    assert notes(second.get_json()) == [
        "writeBack: nothing written; the EHR already holds this assessment's suggestions."
    ]
    for kind in ("RiskAssessment", "CarePlan", "Provenance"):
        found = requests.get(f"{fhir_base}/{kind}", timeout=10).json()
        assert len(found.get("entry", [])) == 1, kind


def test_a_new_result_supersedes_the_written_suggestion(
    ehr_client: FlaskClient, fhir_server: FhirTestServer, fhir_base: str
) -> None:
    bundle = load(fhir_server)
    assert write_back(ehr_client).status_code == 200
    result = next(
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
        and e["resource"]["code"]["coding"][0]["code"] == "69380-4"
    )
    newer = dict(result, id="newer-result", effectiveDateTime="2025-06-25")
    newer["valueQuantity"] = dict(result["valueQuantity"], value=0.05)
    fhir_server.load(newer)
    answer = write_back(ehr_client)
    assert answer.status_code == 200
    said = notes(answer.get_json())
    assert any(n.startswith("writeBack: updated CarePlan/") for n in said)
    plans = requests.get(f"{fhir_base}/CarePlan", timeout=10).json()["entry"]
    assert sorted(p["resource"]["status"] for p in plans) == ["draft", "revoked"]


def test_post_with_extra_resources_in_the_body(
    ehr_client: FlaskClient, fhir_server: FhirTestServer
) -> None:
    load(fhir_server)
    extra = {
        "resourceType": "Observation",
        "status": "final",
        "subject": {"reference": f"Patient/{PATIENT}"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "69380-4"}]},
        "effectiveDateTime": "2025-06-20",
        "valueQuantity": {
            "value": 0.05,
            "unit": "%",
            "system": "http://unitsofmeasure.org",
            "code": "%",
        },
    }
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "resource", "resource": extra}],
    }
    response = ehr_client.post(
        f"{OP}?asOf=2025-06-30", data=json.dumps(body), content_type=FHIR_JSON
    )
    assert response.status_code == 200
    risk = response.get_json()["entry"][0]["resource"]
    assert any("2025-06-20" in n["text"] for n in risk["note"])


def test_a_patient_level_call_may_not_carry_other_patients(
    ehr_client: FlaskClient, fhir_server: FhirTestServer
) -> None:
    load(fhir_server)
    other = json.loads((EXAMPLES / "01-optimal-responder.json").read_text())
    body = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": other}]}
    response = ehr_client.post(OP, data=json.dumps(body), content_type=FHIR_JSON)
    assert response.status_code == 422


def test_with_a_bearer_token_for_the_ehr(
    make_app: Callable[..., Flask], fhir_server_factory: Callable[..., FhirTestServer]
) -> None:
    protected = fhir_server_factory(tokens=["service-token"])
    load(protected)
    good = authenticated(make_app(**callers(fhir_base=protected.base_url, token="service-token")))
    assert good.get(f"{OP}?asOf=2025-06-30").status_code == 200
    bad = authenticated(make_app(**callers(fhir_base=protected.base_url, token="stale-token")))
    response = bad.get(OP)
    assert response.status_code == 502
    assert "401" in response.get_json()["issue"][0]["diagnostics"]


# --- the EHR failing: 502 and 504 --------------------------------------------------------------

EHR = "https://ehr.example.org/fhir"


@pytest.fixture
def mocked(make_app: Callable[..., Flask]) -> FlaskClient:
    return authenticated(make_app(**callers(fhir_base=EHR)))


@responses.activate
def test_an_ehr_error_is_502_with_its_operation_outcome(mocked: FlaskClient) -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "exception", "diagnostics": "database down"}],
    }
    responses.get(f"{EHR}/Patient", json=outcome, status=500)
    response = mocked.get(OP)
    assert response.status_code == 502
    assert response.mimetype == FHIR_JSON
    issues = response.get_json()["issue"]
    assert "database down" in [i.get("diagnostics") for i in issues]


@responses.activate
def test_an_ehr_that_times_out_is_504(mocked: FlaskClient) -> None:
    responses.get(f"{EHR}/Patient", body=requests.exceptions.ReadTimeout("slow"))
    response = mocked.get(OP)
    assert response.status_code == 504
    assert response.get_json()["issue"][0]["code"] == "timeout"


@responses.activate
def test_an_ehr_answering_garbage_is_502(mocked: FlaskClient) -> None:
    responses.get(f"{EHR}/Patient", body="<html>login</html>", status=200)
    assert mocked.get(OP).status_code == 502


def test_an_ehr_that_cannot_be_reached_is_502(make_app: Callable[..., Flask]) -> None:
    client = authenticated(
        make_app(**callers(fhir_base="http://127.0.0.1:9/fhir", fhir_connect_timeout=1))
    )
    assert client.get(OP).status_code == 502


@responses.activate
def test_a_refused_write_is_502(mocked: FlaskClient) -> None:
    bundle = json.loads((EXAMPLES / "03-failure-t315i.json").read_text())
    by_type: dict[str, list[dict[str, Any]]] = {}
    for entry in bundle["entry"]:
        by_type.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    for kind in INPUT_TYPES:
        page = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r} for r in by_type.get(kind, [])],
        }
        responses.get(f"{EHR}/{kind}", json=page)
    for kind in ("CarePlan", "RiskAssessment", "ServiceRequest", "RequestGroup"):
        responses.get(f"{EHR}/{kind}", json={"resourceType": "Bundle", "type": "searchset"})
    refusal = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "forbidden", "diagnostics": "no write access"}],
    }
    responses.post(EHR, json=refusal, status=403)
    response = write_back(mocked)
    assert response.status_code == 502
    diagnostics = [i.get("diagnostics") for i in response.get_json()["issue"]]
    assert diagnostics[0].startswith("writeBack failed")
    assert "no write access" in diagnostics
