"""The conformance resources the service serves: read by id, searched by canonical URL, and
the security its CapabilityStatement declares for this installation."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from fhir_cml import conformance
from fhir_cml.fhir import canonical as c
from fhir_cml.web.fhir_api import capability_statement

from .conftest import PUBLIC


def search(client: FlaskClient, query: str) -> dict[str, Any]:
    response = client.get(query)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/fhir+json"
    body: dict[str, Any] = response.get_json()
    assert body["resourceType"] == "Bundle"
    assert body["type"] == "searchset"
    assert body["total"] == len(body.get("entry", []))
    return body


@pytest.mark.parametrize(
    ("kind", "url"),
    [
        ("StructureDefinition", c.PROFILE_RISK_ASSESSMENT),
        ("ValueSet", c.VS_TKI),
        ("CodeSystem", c.CS_RECOMMENDATION),
        ("ConceptMap", c.CONCEPT_MAP_RKKP),
        ("OperationDefinition", c.OPERATION_ASSESS),
        ("CapabilityStatement", c.CAPABILITY_STATEMENT),
        ("PlanDefinition", c.plan_definition("continue-therapy")),
    ],
)
def test_a_conformance_resource_is_found_by_its_canonical_url(
    client: FlaskClient, kind: str, url: str
) -> None:
    found = search(client, f"/fhir/{kind}?url={url}")
    [entry] = found["entry"]
    assert entry["resource"] == conformance.by_url(url)
    assert entry["fullUrl"] == f"{PUBLIC}/fhir/{kind}/{entry['resource']['id']}"
    assert entry["search"] == {"mode": "match"}
    # A versioned canonical finds it too; several URLs at once are an OR.
    assert search(client, f"/fhir/{kind}?url={url}|0.1.0")["total"] == 1


def test_search_without_url_lists_all_of_a_type_and_unknown_urls_find_nothing(
    client: FlaskClient,
) -> None:
    everything = search(client, "/fhir/ConceptMap")
    assert everything["total"] == len(
        [r for r in conformance.all_resources() if r["resourceType"] == "ConceptMap"]
    )
    assert search(client, f"/fhir/ValueSet?url={c.BASE}/ValueSet/nope")["total"] == 0
    both = search(client, f"/fhir/ConceptMap?url={c.CONCEPT_MAP_RKKP},{c.CONCEPT_MAP_MCODE}")
    assert both["total"] == 2


def test_unknown_search_parameters_are_refused(client: FlaskClient) -> None:
    response = client.get("/fhir/ValueSet?name=tki")
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["code"] == "not-supported"


def test_only_conformance_types_are_searched_here(client: FlaskClient) -> None:
    assert client.get("/fhir/Observation").status_code == 404
    assert client.get("/fhir/Observation?url=x").status_code == 404


@pytest.mark.parametrize("secured", [True, False])
def test_the_security_says_what_this_installation_requires(secured: bool) -> None:
    statement = capability_statement(PUBLIC, secured=secured)
    generated = conformance.load("CapabilityStatement", "fhir-cml")["rest"][0]["security"]
    assert generated["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    if secured:
        security = statement["rest"][0]["security"]
        assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
        assert "bearer access token" in security["description"]
    else:  # the patient-level operation is off: nothing served needs a token
        assert "security" not in statement["rest"][0]
    client_side = statement["rest"][1]
    assert client_side["mode"] == "client"
    assert client_side["security"]["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
