"""CDS Hooks without (or with part of) the prefetch: the service fetches from ``fhirServer``
with ``fhirAuthorization``, against the real test FHIR server with bearer-token protection."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from fhir_cml.web import assessment
from tests.support.cds import (
    SigningEhr,
    example_resources,
    fhir_authorization,
    hook_request,
    patient_view,
)
from tests.support.fhir_server import FhirTestServer

from .conftest import PUBLIC

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ISS = "https://ehr.example.org"
URL = "/cds-services/cml-monitoring"


@pytest.fixture(autouse=True)
def _as_of(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assessment, "today", lambda: date(2025, 6, 30))


@pytest.fixture(scope="module")
def protected(fhir_server_factory: Callable[..., FhirTestServer]) -> FhirTestServer:
    """A FHIR server that accepts the token "any" for everyone and "t315i" for cml-t315i."""
    return fhir_server_factory(tokens={"any": None, "t315i": "cml-t315i"})


@pytest.fixture
def loaded(protected: FhirTestServer) -> tuple[list[dict[str, Any]], str]:
    protected.reset()
    bundle = json.loads((EXAMPLES / "03-failure-t315i.json").read_text())
    protected.load(bundle)
    protected.reset_stats()
    return example_resources(bundle), "cml-t315i"


def post(app: Flask, ehr: SigningEhr, body: dict[str, Any]) -> Any:
    token = ehr.token(f"{PUBLIC}{URL}")
    return app.test_client().post(URL, json=body, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def ehr() -> SigningEhr:
    return SigningEhr.make(ISS)


@pytest.fixture
def service(make_app: Callable[..., Flask], ehr: SigningEhr, protected: FhirTestServer) -> Flask:
    return make_app(
        cds_issuers=[{"iss": ISS, "jwks": ehr.jwks}],
        cds_fhir_servers=[protected.base_url],
        cds_client_id="fhir-cml",
    )


def test_without_prefetch_everything_is_fetched_and_the_card_is_the_same(
    service: Flask, ehr: SigningEhr, protected: FhirTestServer, loaded: Any
) -> None:
    resources, patient = loaded
    with_prefetch = post(service, ehr, patient_view(resources, patient)).get_json()["cards"][0]
    body = hook_request("patient-view", patient)
    body["fhirServer"] = protected.base_url
    body["fhirAuthorization"] = fhir_authorization("t315i")
    response = post(service, ehr, body)
    assert response.status_code == 200, response.get_data(as_text=True)
    [card] = response.get_json()["cards"]
    assert card["summary"] == with_prefetch["summary"]
    assert card["indicator"] == with_prefetch["indicator"] == "critical"
    assert protected.stats()["requests"] == 8  # one read and seven searches, one per template


def test_only_the_missing_keys_are_fetched(
    service: Flask, ehr: SigningEhr, protected: FhirTestServer, loaded: Any
) -> None:
    resources, patient = loaded
    body = patient_view(resources, patient)
    del body["prefetch"]["bcrAbl1"]
    body["fhirServer"] = protected.base_url
    body["fhirAuthorization"] = fhir_authorization("any", "user/Observation.rs")
    response = post(service, ehr, body)
    assert response.status_code == 200
    assert response.get_json()["cards"][0]["indicator"] == "critical"
    stats = protected.stats()
    assert stats["requests"] == 1
    assert stats["byResourceType"] == {"Observation": {"search": 1}}


def test_a_token_the_ehr_refuses_is_a_502(
    service: Flask, ehr: SigningEhr, protected: FhirTestServer, loaded: Any
) -> None:
    _, patient = loaded
    body = hook_request("patient-view", patient)
    body["fhirServer"] = protected.base_url
    body["fhirAuthorization"] = fhir_authorization("wrong-token")
    response = post(service, ehr, body)
    assert response.status_code == 502
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_the_subject_must_be_our_client_id(
    service: Flask, ehr: SigningEhr, protected: FhirTestServer, loaded: Any
) -> None:
    _, patient = loaded
    body = hook_request("patient-view", patient)
    body["fhirServer"] = protected.base_url
    body["fhirAuthorization"] = {**fhir_authorization("any"), "subject": "another-service"}
    response = post(service, ehr, body)
    assert response.status_code == 412
    assert "subject" in response.get_json()["issue"][0]["diagnostics"]
    assert protected.stats()["requests"] == 0


def test_a_server_not_on_the_list_never_sees_the_token(
    service: Flask, ehr: SigningEhr, loaded: Any
) -> None:
    _, patient = loaded
    body = hook_request("patient-view", patient)
    body["fhirServer"] = "https://elsewhere.example.org/fhir"
    body["fhirAuthorization"] = fhir_authorization("any")
    response = post(service, ehr, body)
    assert response.status_code == 412
