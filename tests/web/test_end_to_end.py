"""End to end: the real server process (gunicorn, two workers, on loopback) driven over HTTP.

$cml-assess with the data in the body; Patient/{id}/$cml-assess refused without an access token
and, with one (a JWT of an authorization server whose keys the service fetches over HTTP), with
writeBack against the test FHIR server, twice (the second time nothing new is created); a
patient-view hook with a
JWT signed by an EHR whose keys the service fetches over HTTP; the same token again (refused by
whichever worker gets it); feedback; the request limits (the application's, with
OperationOutcomes, reached before gunicorn's); CORS for a browser-based CDS client; the API
headers; and the JSON log lines the process wrote.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.cds import SigningEhr, example_resources, patient_view
from tests.support.fhir_server import FhirTestServer
from tests.support.service import JwksServer, ServiceProcess, run_service

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "03-failure-t315i.json"
PUBLIC = "https://cml.example.org"
ISS = "https://ehr.example.org"
AUTH = "https://auth.example.org"
SANDBOX = "https://sandbox.cds-hooks.org"
FHIR_JSON = "application/fhir+json"
CALLER_SCOPES = "system/*.rs system/RiskAssessment.cus system/CarePlan.cus system/Provenance.c"


@pytest.fixture(scope="module")
def ehr() -> SigningEhr:
    return SigningEhr.make(ISS, alg="ES384")


@pytest.fixture(scope="module")
def jwks(ehr: SigningEhr) -> Iterator[JwksServer]:
    with JwksServer(ehr.jwks) as server:
        yield server


@pytest.fixture(scope="module")
def authorization_server() -> SigningEhr:
    """Issues the access tokens of callers of Patient/{id}/$cml-assess."""
    return SigningEhr.make(AUTH, alg="RS256")


@pytest.fixture(scope="module")
def auth_jwks(authorization_server: SigningEhr) -> Iterator[JwksServer]:
    with JwksServer(authorization_server.jwks) as server:
        yield server


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory,
    fhir_server: FhirTestServer,
    jwks: JwksServer,
    auth_jwks: JwksServer,
) -> Iterator[ServiceProcess]:
    state = tmp_path_factory.mktemp("e2e") / "state.sqlite3"
    env = {
        "FHIR_CML_PUBLIC_BASE_URL": PUBLIC,
        "FHIR_CML_FHIR_BASE": fhir_server.base_url,
        "FHIR_CML_STATE": str(state),
        "FHIR_CML_CDS_ISSUERS": json.dumps([{"iss": ISS, "jwks_url": f"{jwks.url}/jwks"}]),
        "FHIR_CML_API_ISSUERS": json.dumps([{"iss": AUTH, "jwks_url": f"{auth_jwks.url}/jwks"}]),
    }
    env["FHIR_CML_CDS_CORS_ORIGINS"] = SANDBOX
    with run_service(
        env, workers=2, extra=("-c", "python:fhir_cml.web.gunicorn_config")
    ) as running:
        yield running


@pytest.fixture
def loaded(fhir_base: str, fhir_server: FhirTestServer) -> dict[str, Any]:
    bundle = json.loads(EXAMPLE.read_text())
    fhir_server.load(bundle)
    return dict(bundle)


def test_health_and_readiness(service: ServiceProcess) -> None:
    assert requests.get(f"{service.url}/healthz", timeout=10).json() == {"status": "ok"}
    ready = requests.get(f"{service.url}/readyz", timeout=10)
    assert ready.status_code == 200
    assert ready.json()["checks"]["fhir"] == {"ok": True}
    assert len(service.worker_pids()) == 2


def test_the_operation_with_the_data_in_the_body(service: ServiceProcess) -> None:
    response = requests.post(
        f"{service.url}/fhir/$cml-assess?asOf=2025-06-30",
        data=EXAMPLE.read_bytes(),
        headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith(FHIR_JSON)
    assert response.json()["entry"][0]["resource"]["resourceType"] == "RiskAssessment"


def test_patient_level_needs_an_authenticated_caller(
    service: ServiceProcess, loaded: dict[str, Any], fhir_server: FhirTestServer
) -> None:
    fhir_server.reset_stats()
    answers = []
    for patient in ("cml-t315i", "nobody"):
        response = requests.get(f"{service.url}/fhir/Patient/{patient}/$cml-assess", timeout=30)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        answers.append(response.json())
    assert answers[0] == answers[1]  # nothing said about which patients exist
    assert fhir_server.stats()["requests"] == 0


def test_patient_level_write_back_twice(
    service: ServiceProcess,
    loaded: dict[str, Any],
    fhir_base: str,
    authorization_server: SigningEhr,
    auth_jwks: JwksServer,
) -> None:
    url = f"{service.url}/fhir/Patient/cml-t315i/$cml-assess"
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "asOf", "valueDate": "2025-06-30"},
            {"name": "writeBack", "valueBoolean": True},
        ],
    }
    token = authorization_server.token(f"{PUBLIC}/fhir", scope=CALLER_SCOPES, lifetime=600)
    headers = {"Content-Type": FHIR_JSON, "Authorization": f"Bearer {token}"}
    said = []
    for _ in range(2):
        response = requests.post(url, json=body, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        outcome = response.json()["entry"][-1]["resource"]
        said.append([i["diagnostics"] for i in outcome["issue"] if "writeBack" in i["diagnostics"]])
    # The reading, the suggestions, the two proposals (the switch, the PCR), the Provenance.
    assert [n.split()[1] for n in said[0]] == ["created"] * 5
    assert said[1] == [
        "writeBack: nothing written; the EHR already holds this assessment's suggestions."
    ]
    for kind in ("RiskAssessment", "CarePlan", "Provenance"):
        assert len(requests.get(f"{fhir_base}/{kind}", timeout=10).json().get("entry", [])) == 1
    assert auth_jwks.hits >= 1


def test_a_patient_view_hook_with_a_signed_jwt(
    service: ServiceProcess, ehr: SigningEhr, jwks: JwksServer
) -> None:
    resources = example_resources(json.loads(EXAMPLE.read_text()))
    body = patient_view(resources, "cml-t315i")
    path = "/cds-services/cml-monitoring"
    token = ehr.token(f"{PUBLIC}{path}")
    headers = {"Authorization": f"Bearer {token}"}
    response = requests.post(f"{service.url}{path}", json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    [card] = response.json()["cards"]
    assert card["indicator"] == "critical"
    assert jwks.hits >= 1
    # the same token again: refused whichever worker answers (the replay cache is shared)
    for _ in range(4):
        again = requests.post(f"{service.url}{path}", json=body, headers=headers, timeout=30)
        assert again.status_code == 401
        assert "replayed" in again.json()["issue"][0]["diagnostics"]
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
                "outcomeTimestamp": "2025-06-30T10:00:00Z",
            }
        ]
    }
    answer = requests.post(
        f"{service.url}{path}/feedback",
        json=feedback,
        headers={"Authorization": f"Bearer {ehr.token(f'{PUBLIC}{path}/feedback')}"},
        timeout=30,
    )
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.json() == {}


def test_the_process_logs_json_lines_without_patient_data(service: ServiceProcess) -> None:
    requests.get(f"{service.url}/fhir/Patient/cml-t315i/$cml-assess?asOf=2025-06-30", timeout=30)
    lines = [line for line in service.json_lines() if line.get("msg") == "request"]
    assert lines
    assert {"request_id", "route", "status", "duration_ms"} <= set(lines[-1])
    assert "cml-t315i" not in service.output()


@pytest.mark.parametrize(
    ("path", "headers", "status", "match"),
    [
        ("/fhir/metadata?x=" + "a" * 5000, {}, 414, "longer than the 4096 bytes"),
        ("/healthz", {"X-Big": "b" * 25_000}, 431, "X-Big is longer"),
        ("/healthz", {f"X-H{n}": "v" for n in range(70)}, 431, "header fields"),
        (
            "/cds-services/cml-monitoring",
            {"Authorization": "Bearer " + "c" * 17_000},
            401,
            "too large",
        ),
    ],
)
def test_the_applications_limits_are_met_before_gunicorns(
    service: ServiceProcess, path: str, headers: dict[str, str], status: int, match: str
) -> None:
    method = "POST" if path.startswith("/cds-services/") else "GET"
    response = requests.request(
        method,
        f"{service.url}{path}",
        headers=headers,
        json={} if method == "POST" else None,
        timeout=30,
    )
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith(("application/json", FHIR_JSON))
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert match in outcome["issue"][0]["diagnostics"]


def test_beyond_gunicorns_ceiling_the_answer_is_still_a_refusal(service: ServiceProcess) -> None:
    response = requests.get(f"{service.url}/healthz?x=" + "a" * 9000, timeout=30)
    assert 400 <= response.status_code < 500


def test_cors_for_a_browser_based_cds_client(service: ServiceProcess, ehr: SigningEhr) -> None:
    discovery = requests.get(
        f"{service.url}/cds-services", headers={"Origin": "https://any.example.org"}, timeout=30
    )
    assert discovery.headers["Access-Control-Allow-Origin"] == "*"
    path = "/cds-services/cml-monitoring"
    for url in (path, f"{path}/feedback"):
        preflight = requests.options(
            f"{service.url}{url}",
            headers={
                "Origin": SANDBOX,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
            timeout=30,
        )
        assert preflight.status_code == 200
        assert preflight.headers["Access-Control-Allow-Origin"] == SANDBOX
        allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
        assert "authorization" in allowed
        assert "content-type" in allowed
        assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
        assert "Access-Control-Allow-Credentials" not in preflight.headers
    # the call itself, and a refusal, carry the header too (the browser must see the 401)
    refused = requests.post(
        f"{service.url}{path}", json={}, headers={"Origin": SANDBOX}, timeout=30
    )
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == SANDBOX
    assert "WWW-Authenticate" in refused.headers["Access-Control-Expose-Headers"]
    stranger = requests.post(
        f"{service.url}{path}", json={}, headers={"Origin": "https://evil.example"}, timeout=30
    )
    assert "Access-Control-Allow-Origin" not in stranger.headers


def test_api_responses_are_neither_sniffed_nor_stored(service: ServiceProcess) -> None:
    for path in ("/healthz", "/fhir/metadata", "/cds-services", "/nowhere"):
        response = requests.get(f"{service.url}{path}", timeout=30)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
