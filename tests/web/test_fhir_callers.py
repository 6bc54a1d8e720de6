"""Who may call Patient/{id}/$cml-assess: off without configured callers; JWT access tokens of an
allow-listed authorization server (keys made here) or the EHR's token introspection (a real
RFC 7662 endpoint, authlib's, on loopback); SMART v2 scopes per patient and per write; and a
refused caller never learns whether a patient exists."""

from __future__ import annotations

import io
import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from fhir_cml.web.callers import READ_NEEDS, WRITE_NEEDS
from tests.support import smart_ehr
from tests.support.cds import SigningEhr
from tests.support.fhir_server import FhirTestServer
from tests.support.smart_ehr import RESOURCE_SECRET, RESOURCE_SERVER, Token, running

from .conftest import PUBLIC

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "03-failure-t315i.json"
PATIENT = "cml-t315i"
AUD = f"{PUBLIC}/fhir"
READ = "system/*.rs"
WRITE = "system/RiskAssessment.cus system/CarePlan.cus system/Provenance.c"
FHIR_JSON = "application/fhir+json"
WRITE_BACK = {
    "resourceType": "Parameters",
    "parameter": [
        {"name": "asOf", "valueDate": "2025-06-30"},
        {"name": "writeBack", "valueBoolean": True},
    ],
}


def op(patient: str = PATIENT) -> str:
    return f"/fhir/Patient/{patient}/$cml-assess"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def issuer() -> SigningEhr:
    """The authorization server that signs the callers' access tokens."""
    return SigningEhr.make("https://auth.example.org", alg="RS256")


@pytest.fixture
def loaded(fhir_base: str, fhir_server: FhirTestServer) -> str:
    fhir_server.load(json.loads(EXAMPLE.read_text()))
    fhir_server.reset_stats()
    return fhir_base


@pytest.fixture
def service(make_app: Callable[..., Flask], issuer: SigningEhr, loaded: str) -> FlaskClient:
    app = make_app(fhir_base=loaded, api_issuers=[{"iss": issuer.iss, "jwks": issuer.jwks}])
    return app.test_client()


def token(issuer: SigningEhr, scope: str = READ, **claims: Any) -> str:
    claims.setdefault("lifetime", 600)
    return issuer.token(claims.pop("aud", AUD), scope=scope, **claims)


def outcome(response: Any, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == FHIR_JSON
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    return str(body["issue"][0]["diagnostics"])


# --- off unless configured ----------------------------------------------------------------------


def test_without_configured_callers_the_operation_is_off(
    make_app: Callable[..., Flask], loaded: str, fhir_server: FhirTestServer, issuer: SigningEhr
) -> None:
    client = make_app(fhir_base=loaded).test_client()
    said = {
        outcome(client.get(op(patient), headers=bearer(token(issuer))), 403)
        for patient in (PATIENT, "nobody", "not_an_id")
    }
    [message] = said  # the same answer whatever the id
    assert "FHIR_CML_API_ISSUERS" in message
    assert "FHIR_CML_API_INTROSPECTION_URL" in message
    assert fhir_server.stats()["requests"] == 0
    # the operation with the data in the body needs no caller
    posted = client.post(
        "/fhir/$cml-assess?asOf=2025-06-30", data=EXAMPLE.read_bytes(), content_type=FHIR_JSON
    )
    assert posted.status_code == 200


def test_with_callers_but_no_ehr_the_operation_is_501(
    make_app: Callable[..., Flask], issuer: SigningEhr
) -> None:
    app = make_app(api_issuers=[{"iss": issuer.iss, "jwks": issuer.jwks}])
    response = app.test_client().get(op(), headers=bearer(token(issuer)))
    assert "FHIR_CML_FHIR_BASE" in outcome(response, 501)


# --- JWT access tokens ---------------------------------------------------------------------------


def test_a_valid_access_token_reads_the_patient_and_may_be_used_again(
    service: FlaskClient, issuer: SigningEhr
) -> None:
    value = token(issuer)
    for _ in range(2):  # an access token is not single-use
        response = service.get(f"{op()}?asOf=2025-06-30", headers=bearer(value))
        assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["entry"][0]["resource"]["resourceType"] == "RiskAssessment"


@pytest.mark.parametrize(
    ("headers", "challenge", "reason"),
    [
        ({}, 'Bearer realm="fhir-cml"', "no Authorization header"),
        ({"Authorization": "Basic dTpw"}, 'error="invalid_token"', "not a Bearer token"),
        ({"Authorization": "Bearer opaque"}, 'error="invalid_token"', "not a signed JWT"),
    ],
)
def test_no_token_is_401_and_says_nothing_about_the_patient(
    service: FlaskClient,
    fhir_server: FhirTestServer,
    headers: dict[str, str],
    challenge: str,
    reason: str,
) -> None:
    answers = []
    for patient in (PATIENT, "nobody"):
        response = service.get(op(patient), headers=headers)
        assert reason in outcome(response, 401)
        assert challenge in response.headers["WWW-Authenticate"]
        answers.append(response.get_data())
    assert answers[0] == answers[1]
    assert fhir_server.stats()["requests"] == 0


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"aud": f"{PUBLIC}/cds-services/cml-monitoring"}, "aud must be"),
        ({"now": time.time() - 3600}, "expired"),
        ({"lifetime": 7200}, "at most 3600 s"),
        ({"header": {"typ": "dpop+jwt"}}, "typ must be"),
        ({"iss": "https://elsewhere.example.org"}, "not on the allow-list"),
        ({"drop": ["iat"]}, "iat"),
    ],
)
def test_unacceptable_tokens_are_401(
    service: FlaskClient, issuer: SigningEhr, kwargs: dict[str, Any], reason: str
) -> None:
    response = service.get(op(), headers=bearer(token(issuer, **kwargs)))
    assert reason in outcome(response, 401)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_token_signed_by_another_key_is_401(service: FlaskClient, issuer: SigningEhr) -> None:
    forger = SigningEhr.make(issuer.iss, alg="RS256", kid=issuer.kid)
    assert "signature" in outcome(service.get(op(), headers=bearer(token(forger))), 401)


def test_at_jwt_typ_and_scp_claims_are_read(service: FlaskClient, issuer: SigningEhr) -> None:
    value = issuer.token(AUD, header={"typ": "at+jwt"}, scp=["system/*.rs"], client_id="app")
    assert service.get(op(), headers=bearer(value)).status_code == 200


# --- scopes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scope",
    [
        "system/*.read",
        "system/*.rs",
        " ".join(f"system/{t}.{need}" for t, need in READ_NEEDS.items()),
        "system/Patient.r system/*.rs",
    ],
)
def test_read_scopes_that_cover_the_record(
    service: FlaskClient, issuer: SigningEhr, scope: str
) -> None:
    assert service.get(op(), headers=bearer(token(issuer, scope))).status_code == 200


@pytest.mark.parametrize(
    ("scope", "missing"),
    [
        ("", "system/Patient.r"),
        ("system/Patient.rs", "system/Observation.rs"),
        ("system/*.s", "system/Patient.r"),
        ("user/*.rs", "system/Patient.r"),  # only the EHR could say which patients the user sees
        ("system/*.rs?category=laboratory", "system/Patient.r"),  # narrowed: not the whole record
        ("patient/*.rs", "system/Patient.r"),  # no patient in the token
    ],
)
def test_scopes_that_do_not_cover_the_record_are_403_before_anything_is_read(
    service: FlaskClient,
    issuer: SigningEhr,
    fhir_server: FhirTestServer,
    scope: str,
    missing: str,
) -> None:
    answers = []
    for patient in (PATIENT, "nobody"):
        response = service.get(op(patient), headers=bearer(token(issuer, scope)))
        assert missing in outcome(response, 403)
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
        answers.append(response.get_json())
    assert answers[0] == answers[1]
    assert fhir_server.stats()["requests"] == 0


def test_patient_scopes_cover_only_the_tokens_patient(
    service: FlaskClient, issuer: SigningEhr, fhir_server: FhirTestServer
) -> None:
    mine = token(issuer, "patient/*.rs", patient=PATIENT)
    assert service.get(f"{op()}?asOf=2025-06-30", headers=bearer(mine)).status_code == 200
    fhir_server.reset_stats()
    theirs = token(issuer, "patient/*.rs", patient="someone-else")
    assert "another patient" in outcome(service.get(op(), headers=bearer(theirs)), 403)
    assert fhir_server.stats()["requests"] == 0


def test_write_back_needs_write_scopes(
    service: FlaskClient, issuer: SigningEhr, fhir_server: FhirTestServer
) -> None:
    read_only = token(issuer, READ)
    response = service.post(op(), json=WRITE_BACK, headers=bearer(read_only))
    said = outcome(response, 403)
    assert all(f"system/{t}.{need}" in said for t, need in WRITE_NEEDS.items())
    assert fhir_server.stats()["requests"] == 0
    writer = token(issuer, f"{READ} {WRITE}")
    response = service.post(op(), json=WRITE_BACK, headers=bearer(writer))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "POST" in fhir_server.stats()["byMethod"]


def test_patient_write_scopes_for_the_tokens_patient(
    service: FlaskClient, issuer: SigningEhr
) -> None:
    scope = "patient/*.rs patient/RiskAssessment.cus patient/CarePlan.cus patient/Provenance.c"
    value = token(issuer, scope, patient=PATIENT)
    assert service.post(op(), json=WRITE_BACK, headers=bearer(value)).status_code == 200


def test_the_capability_statement_says_how_to_authenticate(
    service: FlaskClient, make_app: Callable[..., Flask]
) -> None:
    security = service.get("/fhir/metadata").get_json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    plain = make_app().test_client().get("/fhir/metadata").get_json()
    assert "security" not in plain["rest"][0]


# --- token introspection ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def authorization_server() -> Iterator[smart_ehr.TestEhr]:
    with running(smart_ehr.TestEhr()) as server:
        yield server


def issue(
    server: smart_ehr.TestEhr, scope: str, patient: str | None = None, lifetime: int = 600
) -> str:
    value = secrets.token_urlsafe(16)
    server.tokens[value] = Token(
        value, None, "caller-app", scope, None, patient, time.time(), lifetime
    )
    return value


@pytest.fixture
def introspecting(
    make_app: Callable[..., Flask],
    authorization_server: smart_ehr.TestEhr,
    loaded: str,
    issuer: SigningEhr,
) -> FlaskClient:
    app = make_app(
        fhir_base=loaded,
        api_introspection_url=f"{authorization_server.url}/introspect",
        api_introspection_client_id=RESOURCE_SERVER,
        api_introspection_client_secret=RESOURCE_SECRET,
        api_issuers=[{"iss": issuer.iss, "jwks": issuer.jwks}],
    )
    return app.test_client()


def test_an_active_opaque_token_with_read_scopes(
    introspecting: FlaskClient, authorization_server: smart_ehr.TestEhr
) -> None:
    value = issue(authorization_server, READ)
    response = introspecting.get(f"{op()}?asOf=2025-06-30", headers=bearer(value))
    assert response.status_code == 200, response.get_data(as_text=True)


def test_inactive_unknown_and_expired_tokens_are_401(
    introspecting: FlaskClient, authorization_server: smart_ehr.TestEhr
) -> None:
    revoked = issue(authorization_server, READ)
    authorization_server.tokens[revoked].revoked = True
    expired = issue(authorization_server, READ, lifetime=-10)
    for value in (revoked, expired, "never-issued"):
        assert "not active" in outcome(introspecting.get(op(), headers=bearer(value)), 401)


def test_introspected_patient_scopes(
    introspecting: FlaskClient, authorization_server: smart_ehr.TestEhr
) -> None:
    value = issue(authorization_server, "patient/*.rs", patient=PATIENT)
    assert introspecting.get(op(), headers=bearer(value)).status_code == 200
    assert "another patient" in outcome(introspecting.get(op("other"), headers=bearer(value)), 403)
    write = introspecting.post(op(), json=WRITE_BACK, headers=bearer(value))
    assert "patient/RiskAssessment.cus" in outcome(write, 403)


def test_jwts_of_a_listed_issuer_are_verified_here_even_with_introspection(
    introspecting: FlaskClient, issuer: SigningEhr
) -> None:
    assert introspecting.get(op(), headers=bearer(token(issuer))).status_code == 200
    expired = token(issuer, now=time.time() - 3600)
    assert "expired" in outcome(introspecting.get(op(), headers=bearer(expired)), 401)


def test_an_introspection_endpoint_that_does_not_answer_is_503(
    make_app: Callable[..., Flask], loaded: str
) -> None:
    app = make_app(
        fhir_base=loaded,
        api_introspection_url="http://127.0.0.1:9/introspect",
        api_introspection_timeout=1,
    )
    response = app.test_client().get(op(), headers=bearer("some-token"))
    assert "could not be checked" in outcome(response, 503)


def test_introspection_answers_are_cached_and_checked_for_audience(
    make_app: Callable[..., Flask], loaded: str
) -> None:
    answers = {
        "good": {"active": True, "scope": READ, "exp": time.time() + 600},
        "other-audience": {"active": True, "scope": READ, "aud": "https://ehr.example.org/fhir"},
        "ours": {"active": True, "scope": READ, "aud": [AUD, "https://x"]},
    }
    asked: list[str] = []

    class Answer:
        status_code = 200

        def __init__(self, body: bytes) -> None:
            self.raw = self
            self.body = io.BytesIO(body)

        def read1(self, size: int, decode_content: bool = True) -> bytes:
            return self.body.read1(size)

        def close(self) -> None:
            pass

    def post(url: str, data: dict[str, str], **_: Any) -> Any:
        asked.append(data["token"])
        return Answer(json.dumps(answers.get(data["token"], {"active": False})).encode())

    app = make_app(fhir_base=loaded, api_introspection_url="https://auth.example.org/introspect")
    with app.app_context():
        from fhir_cml.web.runtime import runtime

        runtime().callers._post = post
    client = app.test_client()
    for _ in range(3):
        assert client.get(op(), headers=bearer("good")).status_code == 200
    assert asked.count("good") == 1
    assert "aud must name" in outcome(client.get(op(), headers=bearer("other-audience")), 401)
    assert client.get(op(), headers=bearer("ours")).status_code == 200
    for _ in range(3):
        outcome(client.get(op(), headers=bearer("bad")), 401)
    assert asked.count("bad") == 1  # an inactive answer is kept a few seconds too


def test_requests_to_the_real_introspection_endpoint_carry_the_resource_servers_credentials(
    authorization_server: smart_ehr.TestEhr,
) -> None:
    value = issue(authorization_server, READ)
    url = f"{authorization_server.url}/introspect"
    unauthenticated = requests.post(url, data={"token": value}, timeout=10)
    assert unauthenticated.status_code == 401  # so the 200s above prove the Basic credentials


def test_the_readme_names_every_scope_needed() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    [row] = [line for line in readme.splitlines() if line.startswith("| read a patient |")]
    for resource_type in READ_NEEDS:
        assert resource_type in row
    [row] = [line for line in readme.splitlines() if line.startswith("| `writeBack=true` |")]
    for resource_type, need in WRITE_NEEDS.items():
        assert f"system/{resource_type}.{need}" in row
