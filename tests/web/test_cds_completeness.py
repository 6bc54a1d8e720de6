"""CDS Hooks data that may be incomplete, and one deadline per call, against the real test FHIR
server: a prefetch cut to its first page (a server that caps its pages), completed from the
server when fhirAuthorization allows and otherwise answered with no reading; a server made slow
or hanging, read concurrently within the call's deadline, and an answer that says what is
missing."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from fhir_cml.web import assessment
from fhir_cml.web.cds.data import normalise_url, shortfall
from fhir_cml.web.cds.services import KEY_LABELS, SERVICES
from tests.support.cds import (
    SigningEhr,
    example_resources,
    fhir_authorization,
    hook_request,
    server_prefetch,
)
from tests.support.fhir_server import FhirTestServer

from .conftest import PUBLIC

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ISS = "https://ehr.example.org"
MONITORING = "/cds-services/cml-monitoring"
ORDER = "/cds-services/cml-tki-order"
PATIENT = "cml-optimal"
PAGE = 3  # the capped server's largest page


@pytest.fixture(autouse=True)
def _as_of(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assessment, "today", lambda: date(2025, 6, 30))


def losing_mmr() -> dict[str, Any]:
    """Example 01 (an optimal responder) whose two latest BCR::ABL1 results rise to 0.5 % and
    0.8 %: in MMR for years, now lost. A reading from the older results alone would be wrong."""
    bundle = json.loads((EXAMPLES / "01-optimal-responder.json").read_text())
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource.get("id") == "cml-optimal-pcr-2025-03-17":
            resource["valueQuantity"]["value"] = 0.5
        if resource.get("id") == "cml-optimal-pcr-2025-06-16":
            resource["valueQuantity"]["value"] = 0.8
    return dict(bundle)


@pytest.fixture(scope="module")
def capped(fhir_server_factory: Callable[..., FhirTestServer]) -> FhirTestServer:
    """An EHR whose FHIR server answers at most three results a page (and accepts "t1")."""
    return fhir_server_factory(tokens=["t1"], args=["--max-count", str(PAGE)])


@pytest.fixture(scope="module")
def other(fhir_server_factory: Callable[..., FhirTestServer]) -> FhirTestServer:
    """Another server (another origin), which must never be sent the token."""
    return fhir_server_factory(tokens=["t1"])


@pytest.fixture
def ehr_data(capped: FhirTestServer) -> dict[str, Any]:
    capped.reset()
    bundle = losing_mmr()
    capped.load(bundle)
    capped.reset_stats()
    return bundle


@pytest.fixture
def signer() -> SigningEhr:
    return SigningEhr.make(ISS)


@pytest.fixture
def service(make_app: Callable[..., Flask], signer: SigningEhr, capped: FhirTestServer) -> Flask:
    return make_app(
        cds_issuers=[{"iss": ISS, "jwks": signer.jwks}], cds_fhir_servers=[capped.base_url]
    )


def access(scope: str = "patient/*.rs") -> dict[str, Any]:
    return fhir_authorization("t1", scope, patient=PATIENT)


def ehr_prefetch(server: FhirTestServer, service: str = "cml-monitoring", **params: str) -> Any:
    """What the capped EHR sends as prefetch: the first page of each template's search."""
    return server_prefetch(
        server.base_url, service, PATIENT, params=params, headers={"Authorization": "Bearer t1"}
    )


def with_access(
    prefetch: dict[str, Any], server: FhirTestServer, scope: str = "patient/*.rs"
) -> Any:
    body = hook_request("patient-view", PATIENT, prefetch)
    body["fhirServer"] = server.base_url
    body["fhirAuthorization"] = access(scope)
    return body


def call(app: Flask, signer: SigningEhr, body: dict[str, Any], path: str = MONITORING) -> Any:
    token = signer.token(f"{PUBLIC}{path}")
    response = app.test_client().post(path, json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["cards"]


def full_card(app: Flask, signer: SigningEhr, bundle: dict[str, Any]) -> dict[str, Any]:
    from tests.support.cds import patient_view

    [card] = call(app, signer, patient_view(example_resources(bundle), PATIENT))
    return dict(card)


def is_no_reading(card: dict[str, Any]) -> bool:
    return card["summary"].startswith("CML: no reading") and "suggestions" not in card


def refused_without_asking(
    app: Flask, signer: SigningEhr, body: dict[str, Any], server: FhirTestServer, said: str
) -> None:
    """The call gives no reading, says why, and ``server`` is never asked for anything."""
    server.reset_stats()
    [card] = call(app, signer, body)
    assert is_no_reading(card)
    assert said in card["detail"]
    assert server.stats()["requests"] == 0


# --- a prefetch cut short --------------------------------------------------------------------------


def test_the_full_record_reads_as_a_lost_mmr(
    service: Flask, signer: SigningEhr, ehr_data: dict[str, Any]
) -> None:
    card = full_card(service, signer, ehr_data)
    assert card["indicator"] == "warning"
    assert "0.8" in card["summary"]


def test_a_prefetch_cut_to_its_first_page_gives_no_reading(
    service: Flask, signer: SigningEhr, capped: FhirTestServer, ehr_data: dict[str, Any]
) -> None:
    # an EHR that sorts oldest first and sends the first page: the older results read "optimal"
    prefetch = ehr_prefetch(capped, _sort="date")
    assert prefetch["bcrAbl1"]["total"] > PAGE
    capped.reset_stats()
    [card] = call(service, signer, hook_request("patient-view", PATIENT, prefetch))
    assert is_no_reading(card), card
    assert card["indicator"] == "warning"
    assert "BCR::ABL1 results: the EHR sent the first page only (3 of 14 results)" in card["detail"]
    assert "no fhirServer" in card["detail"]
    assert "0.0058" not in json.dumps(card)
    assert "MMR" not in card["summary"]
    assert card["links"][0]["type"] == "smart"
    assert capped.stats()["requests"] == 0


def test_with_fhir_authorization_the_next_pages_are_read(
    service: Flask, signer: SigningEhr, capped: FhirTestServer, ehr_data: dict[str, Any]
) -> None:
    prefetch = ehr_prefetch(capped, _sort="date")
    body = with_access(prefetch, capped)
    capped.reset_stats()
    [card] = call(service, signer, body)
    expected = full_card(service, signer, ehr_data)
    assert card["summary"] == expected["summary"]
    assert card["indicator"] == "warning"
    # only the keys cut short were read further, each from its next link on
    searched = capped.stats()["byResourceType"]
    assert searched["Observation"]["search"] >= 14 // PAGE
    assert "Patient" not in searched


def test_a_total_above_the_entries_without_a_next_link(
    service: Flask, signer: SigningEhr, capped: FhirTestServer, ehr_data: dict[str, Any]
) -> None:
    prefetch = ehr_prefetch(capped)
    for key in ("bcrAbl1", "otherResults"):
        prefetch[key]["link"] = [x for x in prefetch[key]["link"] if x["relation"] != "next"]
    [card] = call(service, signer, hook_request("patient-view", PATIENT, prefetch))
    assert is_no_reading(card)
    assert "the EHR sent 3 of 14 results" in card["detail"]
    # with access, the templates are run again (the server still caps its pages: all of them)
    body = with_access(prefetch, capped)
    [card] = call(service, signer, body)
    assert card["summary"] == full_card(service, signer, ehr_data)["summary"]


def test_a_next_link_to_another_server_is_not_followed(
    service: Flask,
    signer: SigningEhr,
    capped: FhirTestServer,
    other: FhirTestServer,
    ehr_data: dict[str, Any],
) -> None:
    prefetch = ehr_prefetch(capped)
    for link in prefetch["bcrAbl1"]["link"]:
        link["url"] = link["url"].replace(capped.base_url, other.base_url)
    refused_without_asking(service, signer, with_access(prefetch, capped), other, "another origin")


def test_a_scope_that_does_not_allow_the_search_leaves_the_key_incomplete(
    service: Flask, signer: SigningEhr, capped: FhirTestServer, ehr_data: dict[str, Any]
) -> None:
    body = with_access(ehr_prefetch(capped), capped, "patient/Patient.r patient/Observation.r")
    refused_without_asking(service, signer, body, capped, "does not allow searching Observation")


def test_an_order_check_on_part_of_the_record_says_so(
    service: Flask, signer: SigningEhr, capped: FhirTestServer, ehr_data: dict[str, Any]
) -> None:
    prefetch = ehr_prefetch(capped, "cml-tki-order")
    prefetch["mutations"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 5,
        "entry": [],
    }
    order = {
        "resourceType": "MedicationRequest",
        "id": "order-1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT}"},
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "282388"}]
        },
    }
    body = hook_request(
        "order-select",
        PATIENT,
        prefetch,
        selections=["MedicationRequest/order-1"],
        draftOrders={"resourceType": "Bundle", "entry": [{"resource": order}]},
    )
    cards = call(service, signer, body, ORDER)
    [card] = [c for c in cards if "part of the record" in c["summary"]]
    assert card["indicator"] == "warning"
    assert "kinase-domain mutation results: the EHR sent 0 of 5 results" in card["detail"]


def test_shortfall_reads_what_a_bundle_says_of_itself() -> None:
    entry = {"resource": {"resourceType": "Observation"}, "search": {"mode": "match"}}
    include = {"resource": {"resourceType": "Medication"}, "search": {"mode": "include"}}
    whole = {"resourceType": "Bundle", "type": "searchset", "total": 1, "entry": [entry, include]}
    assert shortfall(whole) is None
    assert shortfall({**whole, "total": 2}) == "the EHR sent 1 of 2 results"
    paged = {**whole, "link": [{"relation": "next", "url": "https://ehr/fhir/Observation?p=2"}]}
    assert shortfall(paged) == "the EHR sent the first page only (1 of 1 results)"
    warned = copy.deepcopy(whole)
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "warning", "code": "too-costly", "diagnostics": "capped at 1"}],
    }
    warned["entry"].append({"resource": outcome, "search": {"mode": "outcome"}})
    assert shortfall(warned) == "the EHR said the search was cut short (capped at 1)"
    outcome["issue"][0].update(severity="warning", code="informational")
    assert shortfall(warned) is None
    assert shortfall({"resourceType": "Patient"}) is None


# --- one deadline per call ---------------------------------------------------------------------


@pytest.fixture
def slow(fhir_server: FhirTestServer, fhir_base: str) -> Iterator[FhirTestServer]:
    """The shared test server with example 01; a delay set on it ends with the test."""
    fhir_server.load(losing_mmr())
    fhir_server.reset_stats()
    yield fhir_server
    fhir_server.reset()  # no delay, and requests still waiting are dropped


def fetching(
    make_app: Callable[..., Flask],
    signer: SigningEhr,
    server: FhirTestServer,
    deadline: float,
    **prefetch: Any,
) -> Any:
    """The cards of a call that leaves ``server`` to read what ``prefetch`` lacks, within
    ``deadline`` seconds."""
    app = make_app(
        cds_issuers=[{"iss": ISS, "jwks": signer.jwks}],
        cds_fhir_servers=[server.base_url],
        cds_deadline=deadline,
    )
    return call(app, signer, with_access(prefetch or None, server))


def test_the_reads_run_at_once_within_the_deadline(
    make_app: Callable[..., Flask], signer: SigningEhr, slow: FhirTestServer
) -> None:
    """A read of a second for each key (eight): one after the other they could not be done in
    the 4.5 s."""
    deadline = 4.5
    slow.delay(1000)
    [card] = fetching(make_app, signer, slow, deadline)
    assert card["indicator"] == "warning"
    assert "0.8" in card["summary"]
    assert slow.stats()["requests"] == len(SERVICES["cml-monitoring"].prefetch)


def test_a_hanging_ehr_is_answered_at_the_deadline_with_what_is_missing(
    make_app: Callable[..., Flask], signer: SigningEhr, slow: FhirTestServer
) -> None:
    deadline = 1.0
    slow.delay(60_000)
    [card] = fetching(make_app, signer, slow, deadline)
    assert card["indicator"] == "info"
    assert card["summary"].startswith("fhir-cml could not check this patient for CML")
    for key in ("bcrAbl1", "conditions", "medicationRequests", "troughs"):
        label = KEY_LABELS[key]
        assert f"{label}: not read within the 1 s" in card["detail"]


def test_with_cml_in_the_prefetch_the_missing_rest_means_no_reading(
    make_app: Callable[..., Flask], signer: SigningEhr, slow: FhirTestServer
) -> None:
    deadline = 1.0
    given = server_prefetch(slow.base_url, "cml-monitoring", PATIENT)
    slow.delay(60_000)
    cml = {"conditions": given["conditions"], "bcrAbl1": given["bcrAbl1"]}
    [card] = fetching(make_app, signer, slow, deadline, **cml)
    assert is_no_reading(card)
    assert "medications (statements): not read within" in card["detail"]
    assert "BCR::ABL1" not in card["detail"].split("**Not complete:**")[1]


def test_a_patient_without_cml_gets_no_card_whatever_else_is_slow(
    make_app: Callable[..., Flask], signer: SigningEhr, slow: FhirTestServer
) -> None:
    deadline = 1.0
    slow.delay(60_000)
    empty = {"resourceType": "Bundle", "type": "searchset", "total": 0}
    assert fetching(make_app, signer, slow, deadline, conditions=empty, bcrAbl1=empty) == []


# --- the fhirServer allow-list ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("https://EHR.example.org:443/fhir/", "https://ehr.example.org/fhir"),
        ("https://ehr.example.org/fhir/../admin", "https://ehr.example.org/admin"),
        ("https://ehr.example.org/fhir/%2e%2E/admin", "https://ehr.example.org/admin"),
        ("https://ehr.example.org/fhir/./r4/", "https://ehr.example.org/fhir/r4"),
        ("https://ehr.example.org/f%68ir", "https://ehr.example.org/fhir"),
        ("http://ehr.example.org:8080/fhir", "http://ehr.example.org:8080/fhir"),
        ("https://ehr.example.org/fhir%2F..%2Fadmin", None),
        ("https://ehr.example.org/fhir/%5c..%5cadmin", None),
        ("https://user:pw@ehr.example.org/fhir", None),
        ("https://ehr.example.org/fhir?x=1", None),
        ("https://ehr.example.org/fhir#x", None),
        ("https://ehr.example.org/fhir/%ff", None),
        ("ftp://ehr.example.org/fhir", None),
        ("https://ehr.example.org:99999/fhir", None),
    ],
)
def test_urls_are_normalised_before_they_are_compared(url: str, normal: str | None) -> None:
    assert normalise_url(url) == normal


@pytest.mark.parametrize(
    "server",
    [
        "https://ehr.example.org/fhir/../admin",
        "https://ehr.example.org/fhir/%2e%2e/admin",
        "https://ehr.example.org/fhir/%2E%2e%2Fadmin",
        "https://ehr.example.org/fhirx",
        "https://ehr.example.org.attacker.example/fhir",
        "https://ehr.example.org@attacker.example/fhir",
    ],
)
def test_the_allow_list_cannot_be_escaped(
    make_app: Callable[..., Flask], signer: SigningEhr, server: str
) -> None:
    app = make_app(
        cds_issuers=[{"iss": ISS, "jwks": signer.jwks}],
        cds_fhir_servers=["https://ehr.example.org/fhir"],
    )
    body = hook_request("patient-view", PATIENT)
    body["fhirServer"] = server
    body["fhirAuthorization"] = access()
    token = signer.token(f"{PUBLIC}{MONITORING}")
    response = app.test_client().post(
        MONITORING, json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 412, response.get_data(as_text=True)
