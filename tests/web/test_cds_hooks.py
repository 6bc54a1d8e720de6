"""CDS Hooks: discovery, the services' cards, prefetch and fetching, errors, and feedback.

Requests and responses are checked against the specification's own examples and field names
(tests/data/cds, copied from the CDS Hooks 2.0 text).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhir_cml.fhir.outbound.care_plan import recommendation_code
from fhir_cml.state.cds import IssuedCard
from fhir_cml.web import assessment
from fhir_cml.web.cds.services import SERVICES
from fhir_cml.web.runtime import runtime
from tests.support.cds import (
    SigningEhr,
    example_resources,
    hook_request,
    patient_view,
    prefetch_for,
    searchset,
)
from tests.support.profile_validator import validator

from .conftest import PUBLIC

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "tests" / "data" / "cds"
EXAMPLES = ROOT / "examples"
ISS = "https://ehr.example.org"
AS_OF = date(2025, 6, 30)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"

# Field names of the specification (CDS Hooks 2.0 tables).
SERVICE_FIELDS = {"hook", "title", "description", "id", "prefetch", "usageRequirements"}
CARD_FIELDS = {
    "uuid",
    "summary",
    "detail",
    "indicator",
    "source",
    "suggestions",
    "selectionBehavior",
    "overrideReasons",
    "links",
}
SOURCE_FIELDS = {"label", "url", "icon", "topic"}
SUGGESTION_FIELDS = {"label", "uuid", "isRecommended", "actions"}
ACTION_FIELDS = {"type", "description", "resource", "resourceId"}
LINK_FIELDS = {"label", "url", "type", "appContext"}
CODING_FIELDS = {"code", "system", "display"}


def spec(name: str) -> Any:
    return json.loads((SPEC / name).read_text())


def example(name: str) -> tuple[list[dict[str, Any]], str]:
    bundle = json.loads((EXAMPLES / name).read_text())
    resources = example_resources(bundle)
    patient = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    return resources, patient


@pytest.fixture
def ehr() -> SigningEhr:
    return SigningEhr.make(ISS)


@pytest.fixture
def settings(tmp_path: Path, ehr: SigningEhr) -> dict[str, Any]:
    return {
        "public_base_url": PUBLIC,
        "state": str(tmp_path / "state.sqlite3"),
        "cds_issuers": [{"iss": ISS, "jwks": ehr.jwks}],
    }


@pytest.fixture(autouse=True)
def _as_of(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example patients are read as of 2025-06-30, as their README states."""
    monkeypatch.setattr(assessment, "today", lambda: AS_OF)


def call(client: FlaskClient, ehr: SigningEhr, service: str, body: Any, path: str = "") -> Any:
    url = f"/cds-services/{service}{path}"
    token = ehr.token(f"{PUBLIC}{url}")
    return client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})


def no_empty_values(value: Any, where: str = "$") -> None:
    """CDS Hooks: JSON elements SHALL NOT be null or empty (except an empty cards array)."""
    assert value is not None, f"{where} is null"
    if isinstance(value, dict | list | str):
        assert len(value) > 0, f"{where} is empty"
    if isinstance(value, dict):
        for key, item in value.items():
            no_empty_values(item, f"{where}.{key}")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            no_empty_values(item, f"{where}[{n}]")


def check_card(card: dict[str, Any]) -> None:
    """A card has the specification's fields and obeys its rules."""
    assert set(card) <= CARD_FIELDS
    assert {"summary", "indicator", "source"} <= set(card)
    assert len(card["summary"]) < 140
    assert card["indicator"] in ("info", "warning", "critical")
    assert set(card["source"]) <= SOURCE_FIELDS
    assert card["source"]["label"]
    assert set(card["source"].get("topic", {})) <= CODING_FIELDS
    if "suggestions" in card:
        assert card["selectionBehavior"] in ("at-most-one", "any")
        for suggestion in card["suggestions"]:
            assert set(suggestion) <= SUGGESTION_FIELDS
            for action in suggestion["actions"]:
                assert set(action) <= ACTION_FIELDS
                assert action["type"] in ("create", "update", "delete")
                assert action["description"]
    for reason in card.get("overrideReasons", []):
        assert set(reason) == CODING_FIELDS  # display is required for override reasons
    for link in card.get("links", []):
        assert set(link) <= LINK_FIELDS
        assert link["type"] in ("absolute", "smart")
    no_empty_values(card)


def test_the_field_names_are_those_of_the_specifications_examples() -> None:
    response = spec("response-example.json")
    assert {k for card in response["cards"] for k in card} <= CARD_FIELDS
    assert set(spec("source-example.json")["source"]) == SOURCE_FIELDS
    assert {k for action in spec("actions-example.json").values() for k in action} == ACTION_FIELDS
    assert {k for card in response["cards"] for link in card.get("links", []) for k in link} == (
        LINK_FIELDS
    )
    for card in response["cards"]:
        check_card(card)  # the checker used below accepts the specification's own cards


def test_our_cards_use_the_same_names_as_the_specifications_example(
    client: FlaskClient, ehr: SigningEhr
) -> None:
    resources, patient = example("03-failure-t315i.json")
    [card] = call(client, ehr, "cml-monitoring", patient_view(resources, patient)).get_json()[
        "cards"
    ]
    theirs = spec("response-example.json")["cards"]
    assert {k for c in theirs for k in c} - {"detail", "links", "overrideReasons", "uuid"} <= set(
        card
    )
    assert set(card["links"][0]) == set(theirs[0]["links"][2])  # the example's smart link
    assert set(card["source"]) == set(spec("source-example.json")["source"]) - {"icon"}
    create = spec("actions-example.json")["create"]
    assert set(card["suggestions"][0]["actions"][0]) == set(create)


# --- discovery --------------------------------------------------------------------------------


def test_discovery_has_the_specifications_shape(client: FlaskClient) -> None:
    response = client.get("/cds-services")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    ours = response.get_json()
    theirs = spec("discovery-example.json")
    assert set(ours) == set(theirs) == {"services"}
    for service in ours["services"]:
        assert set(service) <= SERVICE_FIELDS
        assert {"hook", "description", "id"} <= set(service)
        assert set(theirs["services"][0]) <= set(service)
    by_id = {s["id"]: s for s in ours["services"]}
    assert by_id["cml-monitoring"]["hook"] == "patient-view"
    assert by_id["cml-tki-order"]["hook"] == "order-select"
    assert by_id["cml-tki-order-sign"]["hook"] == "order-sign"
    monitoring = by_id["cml-monitoring"]["prefetch"]
    assert monitoring["patient"] == "Patient/{{context.patientId}}"
    assert "http://loinc.org|69380-4" in monitoring["bcrAbl1"]
    assert "http://loinc.org|103609-4" in monitoring["troughs"]
    assert monitoring["medications"].startswith("MedicationStatement?")
    assert monitoring["conditions"].startswith("Condition?")


def test_prefetch_templates_keep_to_the_recommended_query_subset(client: FlaskClient) -> None:
    """Reads by id, or type-level searches by patient reference and token equality, with
    ``_count`` (one page for the whole record) and ``_sort`` (newest results first)."""
    for service in client.get("/cds-services").get_json()["services"]:
        for template in service["prefetch"].values():
            assert set(re.findall(r"\{\{([^}]*)\}\}", template)) == {"context.patientId"}
            path, _, query = template.partition("?")
            assert re.fullmatch(r"[A-Z][A-Za-z]+(/\{\{context\.patientId\}\})?", path)
            params = dict(parse_qsl(query))
            assert set(params) <= {"patient", "subject", "code", "_count", "_sort"}
            assert not any(":" in name for name in params)  # no modifiers
            if query:
                assert params["_count"] == "1000"
            if path == "Observation":
                assert params["_sort"] == "-date"


# --- patient-view -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "indicator", "suggestion"),
    [
        ("01-optimal-responder.json", "info", "continue-therapy"),
        ("02-warning-6-months.json", "warning", "check-adherence"),
        ("03-failure-t315i.json", "critical", "switch-tki"),
        ("06-tfr-molecular-relapse.json", "critical", "restart-tki"),
        ("10-overdue-pcr.json", "warning", "pcr-overdue"),
    ],
)
def test_patient_view_cards(
    client: FlaskClient, ehr: SigningEhr, name: str, indicator: str, suggestion: str
) -> None:
    resources, patient = example(name)
    response = call(client, ehr, "cml-monitoring", patient_view(resources, patient))
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) <= {"cards", "systemActions"}
    [card] = body["cards"]
    check_card(card)
    assert card["indicator"] == indicator
    assert card["summary"].startswith("CML: ")
    assert "ELN 2020 " in card["summary"]
    assert card["source"]["label"] == "fhir-cml (ELN 2020)"
    assert card["source"]["url"].startswith(f"{PUBLIC}/fhir/PlanDefinition/")
    assert card["links"] == [
        {
            "label": "Open CML course",
            "url": f"{PUBLIC}/launch",
            "type": "smart",
            "appContext": json.dumps(
                {"patient": f"Patient/{patient}", "asOf": "2025-06-30"}, separators=(",", ":")
            ),
        }
    ]
    [add] = card["suggestions"]
    assert card["selectionBehavior"] == "at-most-one"
    kinds = [(a["type"], a["resource"]["resourceType"]) for a in add["actions"]]
    assert kinds[0] == ("create", "RiskAssessment")
    assert kinds[-1] == ("create", "CarePlan")
    # Between them, the requests the suggestions propose, as the write-back writes them.
    assert {k for _, k in kinds[1:-1]} <= {"ServiceRequest", "MedicationRequest", "RequestGroup"}
    care_plan = add["actions"][-1]["resource"]
    assert care_plan["status"] == "draft"
    assert care_plan["intent"] == "proposal"
    for action in add["actions"][1:-1]:
        assert action["resource"]["intent"] == "proposal"
        assert "not an order" in action["description"]
    codes = [recommendation_code(a) for a in care_plan["activity"]]
    assert suggestion in codes
    assert f"`{card['source']['url'].rsplit('/', 1)[1]}`" in card["detail"]


def test_the_card_detail_gives_the_basis_with_rules_sources_and_dates(
    client: FlaskClient, ehr: SigningEhr
) -> None:
    resources, patient = example("03-failure-t315i.json")
    card = call(client, ehr, "cml-monitoring", patient_view(resources, patient)).get_json()[
        "cards"
    ][0]
    detail = card["detail"]
    assert "**ELN 2020:** failure at 12 months" in detail
    assert "(`eln2020-12m`)" in detail
    assert "T315I detected on 2025-06-02" in detail
    assert "**Sources**" in detail
    assert "Hochhaus A, Baccarani M, Silver RT, et al. European LeukemiaNet 2020" in detail
    assert card["summary"] == (
        "CML: ELN 2020 failure at 12 months; no MMR, BCR::ABL1 3.1 % (2025-06-02)"
    )


def test_the_suggested_resources_validate_against_the_profiles(
    client: FlaskClient, ehr: SigningEhr
) -> None:
    for name in ("01-optimal-responder.json", "03-failure-t315i.json"):
        resources, patient = example(name)
        card = call(client, ehr, "cml-monitoring", patient_view(resources, patient)).get_json()[
            "cards"
        ][0]
        for action in card["suggestions"][0]["actions"]:
            result = validator().validate(action["resource"])
            assert result.valid, [str(i) for i in result.errors]


def test_the_care_plan_points_at_its_reading_by_identifier(
    client: FlaskClient, ehr: SigningEhr
) -> None:
    resources, patient = example("01-optimal-responder.json")
    card = call(client, ehr, "cml-monitoring", patient_view(resources, patient)).get_json()[
        "cards"
    ][0]
    risk, *requests, care_plan = (a["resource"] for a in card["suggestions"][0]["actions"])
    [info] = care_plan["supportingInfo"]
    assert info["identifier"] == risk["identifier"][0]
    assert "urn:uuid" not in json.dumps(care_plan)
    # ... and at the requests it proposes by theirs.
    proposed = [a["reference"] for a in care_plan["activity"] if "reference" in a]
    assert [p["identifier"] for p in proposed] == [r["identifier"][0] for r in requests]
    assert [p["type"] for p in proposed] == [r["resourceType"] for r in requests]


def test_no_cml_evidence_means_no_cards(client: FlaskClient, ehr: SigningEhr) -> None:
    patient = {"resourceType": "Patient", "id": "p1"}
    body = patient_view([patient], "p1")
    response = call(client, ehr, "cml-monitoring", body)
    assert response.get_json() == {"cards": []}
    # null prefetch values mean "no data" (not "not prefetched")
    nulls = hook_request("patient-view", "p1", dict.fromkeys(SERVICES["cml-monitoring"].prefetch))
    assert call(client, ehr, "cml-monitoring", nulls).get_json() == {"cards": []}


def test_the_specifications_patient_view_contexts_are_read(
    client: FlaskClient, ehr: SigningEhr
) -> None:
    context = spec("patient-view-context.json")["context"]
    nulls = dict.fromkeys(SERVICES["cml-monitoring"].prefetch)
    body = {"hook": "patient-view", "hookInstance": "x", "context": context, "prefetch": nulls}
    assert call(client, ehr, "cml-monitoring", body).get_json() == {"cards": []}


# --- prefetch missing: 412, or fetched -------------------------------------------------------


def test_missing_prefetch_without_fhir_access_is_412(client: FlaskClient, ehr: SigningEhr) -> None:
    resources, patient = example("01-optimal-responder.json")
    body = patient_view(resources, patient)
    del body["prefetch"]["bcrAbl1"]
    response = call(client, ehr, "cml-monitoring", body)
    assert response.status_code == 412
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "bcrAbl1" in outcome["issue"][0]["diagnostics"]


def test_the_specifications_request_example_is_read_and_refused_with_412(
    client: FlaskClient, ehr: SigningEhr
) -> None:
    """Its prefetch lacks our keys and its fhirServer is plain http (not allow-listed): the
    token is not sent there and the service answers 412."""
    response = call(client, ehr, "cml-monitoring", spec("request-example.json"))
    assert response.status_code == 412
    assert "https" in response.get_json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"scope": "patient/Patient.read"}, "scope does not allow"),
        ({"patient": "someone-else"}, "another patient"),
    ],
)
def test_fhir_access_is_checked_before_a_token_is_used(
    make_app: Callable[..., Flask],
    settings: dict[str, Any],
    ehr: SigningEhr,
    change: dict[str, Any],
    match: str,
) -> None:
    client = make_app(**{**settings, "cds_fhir_servers": ["https://ehr.example.org/fhir"]})
    body = patient_view([], "p1")
    del body["prefetch"]["bcrAbl1"]
    body["fhirServer"] = "https://ehr.example.org/fhir"
    body["fhirAuthorization"] = {
        "access_token": "t",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "cml",
        **change,
    }
    response = call(client.test_client(), ehr, "cml-monitoring", body)
    assert response.status_code == 412
    assert match in response.get_json()["issue"][0]["diagnostics"]


# --- bad requests -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda b: b.pop("hook"), "hook must be"),
        (lambda b: b.update(hook="order-sign"), "invoked on patient-view"),
        (lambda b: b.pop("hookInstance"), "hookInstance"),
        (lambda b: b.update(context=[]), "context must be an object"),
        (lambda b: b["context"].pop("patientId"), "patientId"),
        (lambda b: b["context"].update(patientId="a/b"), "patientId"),
        (lambda b: b.update(prefetch=[]), "prefetch must be an object"),
        (lambda b: b["prefetch"].update(patient="Patient/1"), "prefetch.patient"),
        (lambda b: b.update(fhirAuthorization={"access_token": "x"}), "without fhirServer"),
        (lambda b: b.update(fhirServer=7), "fhirServer"),
    ],
)
def test_bad_hook_payloads_are_400(
    client: FlaskClient, ehr: SigningEhr, mutate: Callable[[dict[str, Any]], Any], match: str
) -> None:
    body = patient_view([], "p1")
    mutate(body)
    response = call(client, ehr, "cml-monitoring", body)
    assert response.status_code == 400
    assert match in response.get_json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize("raw", ["not json", "[]", '"text"'])
def test_bodies_that_are_not_a_request_object_are_400(
    client: FlaskClient, ehr: SigningEhr, raw: str
) -> None:
    url = "/cds-services/cml-monitoring"
    response = client.post(
        url,
        data=raw,
        content_type="application/json",
        headers={"Authorization": f"Bearer {ehr.token(PUBLIC + url)}"},
    )
    assert response.status_code == 400


def test_unknown_service_is_404(client: FlaskClient, ehr: SigningEhr) -> None:
    assert call(client, ehr, "nope", patient_view([], "p1")).status_code == 404
    feedback = call(client, ehr, "nope", spec("feedback-accepted.json"), "/feedback")
    assert feedback.status_code == 404
    assert client.get("/cds-services/cml-monitoring").status_code == 405


# --- order-select / order-sign ----------------------------------------------------------------


def imatinib_order(
    patient: str, mg: float, per_day: int, rid: str = "mr-1", **extra: Any
) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient}"},
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": "282388", "display": "imatinib"}]
        },
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [
                    {"doseQuantity": {"value": mg, "unit": "mg", "system": UCUM, "code": "mg"}}
                ],
            }
        ],
        **extra,
    }


def clarithromycin(patient: str, kind: str = "MedicationStatement", **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": kind,
        "id": "clari",
        "status": "active" if kind == "MedicationStatement" else "draft",
        "subject": {"reference": f"Patient/{patient}"},
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.whocc.no/atc", "code": "J01FA09"}],
            "text": "Clarithromycin 500 mg",
        },
        **extra,
    }
    if kind == "MedicationStatement":
        resource["effectivePeriod"] = {"start": "2025-06-20"}
    else:
        resource["intent"] = "order"
    return resource


def order_call(
    resources: list[dict[str, Any]],
    patient: str,
    drafts: list[dict[str, Any]],
    hook: str = "order-select",
    selections: list[str] | None = None,
) -> dict[str, Any]:
    context: dict[str, Any] = {"draftOrders": {"resourceType": "Bundle", "entry": []}}
    context["draftOrders"]["entry"] = [{"resource": r} for r in drafts]
    if hook == "order-select":
        context["selections"] = (
            selections
            if selections is not None
            else [f"{r['resourceType']}/{r['id']}" for r in drafts]
        )
    return hook_request(hook, patient, prefetch_for("cml-tki-order", resources, patient), **context)


def cards_for(client: FlaskClient, ehr: SigningEhr, body: dict[str, Any], service: str) -> Any:
    response = call(client, ehr, service, body)
    assert response.status_code == 200, response.get_data(as_text=True)
    found = response.get_json()["cards"]
    for card in found:
        check_card(card)
    return found


def test_t315i_and_an_escalation_ordered(client: FlaskClient, ehr: SigningEhr) -> None:
    resources, patient = example("03-failure-t315i.json")
    body = order_call(resources, patient, [imatinib_order(patient, 300, 2)])
    [card] = cards_for(client, ehr, body, "cml-tki-order")
    assert card["indicator"] == "critical"
    assert "T315I" in card["summary"]
    assert card["source"]["url"] == f"{PUBLIC}/fhir/PlanDefinition/t315i-no-escalation"
    assert card["source"]["topic"]["code"] == "switch-tki"
    assert "Imatinib 400 mg/day now; 600 mg/day ordered" in card["detail"]
    [remove] = card["suggestions"]
    assert remove["actions"] == [
        {
            "type": "delete",
            "description": "Remove the draft order MedicationRequest/mr-1.",
            "resourceId": "MedicationRequest/mr-1",
        }
    ]
    # the same dose as now is no escalation; a dose given in tablets of a known strength is read
    assert (
        cards_for(
            client,
            ehr,
            order_call(resources, patient, [imatinib_order(patient, 400, 1)]),
            "cml-tki-order",
        )
        == []
    )


def test_imatinib_above_800_mg_a_day(client: FlaskClient, ehr: SigningEhr) -> None:
    resources, patient = example("01-optimal-responder.json")
    tablets = imatinib_order(patient, 400, 3)
    tablets["medicationCodeableConcept"]["coding"][0]["code"] = "403879"  # 400 mg tablet
    tablets["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"] = {
        "value": 1,
        "unit": "tablet",
    }
    [card] = cards_for(client, ehr, order_call(resources, patient, [tablets]), "cml-tki-order")
    assert card["indicator"] == "critical"
    assert card["summary"] == "Imatinib 1200 mg/day ordered: above the 800 mg/day maximum"
    assert card["source"]["url"].endswith("/PlanDefinition/dose-escalation")
    at_800 = imatinib_order(patient, 400, 2)
    assert cards_for(client, ehr, order_call(resources, patient, [at_800]), "cml-tki-order") == []


def test_a_tki_ordered_alongside_a_strong_cyp3a4_inhibitor(
    client: FlaskClient, ehr: SigningEhr
) -> None:
    resources, patient = example("01-optimal-responder.json")
    taking = [*resources, clarithromycin(patient)]
    body = order_call(taking, patient, [imatinib_order(patient, 200, 2)])
    [card] = cards_for(client, ehr, body, "cml-tki-order")
    assert card["indicator"] == "warning"
    assert "clarithromycin" in card["summary"]
    assert card["source"]["topic"]["code"] == "review-interactions"
    assert "suggestions" not in card


def test_an_inhibitor_ordered_in_the_same_session_counts(
    client: FlaskClient, ehr: SigningEhr
) -> None:
    resources, patient = example("01-optimal-responder.json")
    drafts = [imatinib_order(patient, 200, 2), clarithromycin(patient, "MedicationRequest")]
    body = order_call(resources, patient, drafts, selections=["MedicationRequest/mr-1"])
    [card] = cards_for(client, ehr, body, "cml-tki-order")
    assert "clarithromycin" in card["summary"]


def test_orders_not_selected_are_not_checked(client: FlaskClient, ehr: SigningEhr) -> None:
    resources, patient = example("01-optimal-responder.json")
    body = order_call(
        resources, patient, [imatinib_order(patient, 600, 2)], selections=["NutritionOrder/x"]
    )
    assert cards_for(client, ehr, body, "cml-tki-order") == []


def test_order_sign_checks_every_draft(client: FlaskClient, ehr: SigningEhr) -> None:
    resources, patient = example("01-optimal-responder.json")
    body = order_call(resources, patient, [imatinib_order(patient, 600, 2)], hook="order-sign")
    for service in ("cml-tki-order-sign", "cml-tki-order"):
        body["hookInstance"] = service
        [card] = cards_for(client, ehr, copy.deepcopy(body), service)
        assert card["indicator"] == "critical"


def test_a_drug_named_by_a_medication_reference_is_identified(
    client: FlaskClient, ehr: SigningEhr
) -> None:
    resources, patient = example("01-optimal-responder.json")
    order = imatinib_order(patient, 500, 2)
    del order["medicationCodeableConcept"]
    order["medicationReference"] = {"reference": "Medication/gleevec"}
    medication = {
        "resourceType": "Medication",
        "id": "gleevec",
        "code": {"coding": [{"system": "http://www.whocc.no/atc", "code": "L01EA01"}]},
    }
    body = order_call(
        resources, patient, [order, medication], selections=["MedicationRequest/mr-1"]
    )
    [card] = cards_for(client, ehr, body, "cml-tki-order")
    assert "1000 mg/day" in card["summary"]


@pytest.mark.parametrize("name", ["order-select-r4-context.json", "order-sign-r4-context.json"])
def test_the_specifications_order_examples_are_read(
    client: FlaskClient, ehr: SigningEhr, name: str
) -> None:
    """Amoxicillin and a pureed diet: nothing to say, and the examples' dosage shapes (an
    object for doseAndRate, doseQuantity directly in the dosage) do not break the reader."""
    context = spec(name)["context"]
    hook = "order-select" if "select" in name else "order-sign"
    body = {
        "hook": hook,
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": context,
        "prefetch": dict.fromkeys(SERVICES["cml-tki-order"].prefetch),
    }
    assert cards_for(client, ehr, body, "cml-tki-order") == []


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda c: c.pop("draftOrders"), "draftOrders must be a FHIR Bundle"),
        (lambda c: c.update(draftOrders={"resourceType": "Bundle", "entry": {}}), "entry"),
        (lambda c: c.pop("selections"), "selections"),
        (lambda c: c.update(selections=[1]), "selections"),
    ],
)
def test_bad_order_contexts_are_400(
    client: FlaskClient, ehr: SigningEhr, mutate: Callable[[dict[str, Any]], Any], match: str
) -> None:
    body = order_call([], "p1", [imatinib_order("p1", 400, 1)])
    mutate(body["context"])
    response = call(client, ehr, "cml-tki-order", body)
    assert response.status_code == 400
    assert match in response.get_json()["issue"][0]["diagnostics"]


# --- feedback ---------------------------------------------------------------------------------


FEEDBACK_EXAMPLES = (
    "feedback-accepted.json",
    "feedback-overridden.json",
    "feedback-override-reason.json",
)


def as_if_issued(
    app: Flask, *names: str, issuer: str = ISS, service: str = "cml-monitoring"
) -> None:
    """Records the cards of the specification's feedback examples as issued by us."""
    cards = [
        IssuedCard(item["card"], tuple(s["id"] for s in item.get("acceptedSuggestions", ())))
        for name in names
        for item in spec(name)["feedback"]
    ]
    with app.app_context():
        runtime().cds.remember_cards(service, issuer, cards, datetime.now(UTC))


def test_the_specifications_feedback_examples_are_recorded(
    app: Flask, client: FlaskClient, ehr: SigningEhr
) -> None:
    as_if_issued(app, *FEEDBACK_EXAMPLES)
    for name in FEEDBACK_EXAMPLES:
        response = call(client, ehr, "cml-monitoring", spec(name), "/feedback")
        assert response.status_code == 200
        assert response.mimetype == "application/json"
        assert response.get_json() == {}
    with app.app_context():
        stored = {r.card: r for r in runtime().cds.feedback("cml-monitoring")}
    accepted = stored["4e0a3a1e-3283-4575-ab82-028d55fe2719"]
    assert accepted.outcome == "accepted"
    assert accepted.accepted_suggestions == ("e56e1945-20b3-4393-8503-a1a20fd73152",)
    assert accepted.issuer == ISS
    assert accepted.outcome_at.isoformat() == "2020-12-11T00:00:00+00:00"
    overridden = stored["9368d37b-283f-44a0-93ea-547cebab93ed"]
    assert overridden.outcome == "overridden"
    assert overridden.override_code == "d7ecf885"
    assert overridden.override_system == "https://example.com/cds-hooks/override-reason-system"
    assert overridden.user_comment == "A comment entered by the clinician."
    assert stored["f6b95768-b1c8-40dc-8385-bf3504b82ffb"].override_code is None


def test_feedback_for_a_card_we_issued(app: Flask, client: FlaskClient, ehr: SigningEhr) -> None:
    resources, patient = example("03-failure-t315i.json")
    card = call(client, ehr, "cml-monitoring", patient_view(resources, patient)).get_json()[
        "cards"
    ][0]
    reason = card["overrideReasons"][0]
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReason": {"reason": {"code": reason["code"], "system": reason["system"]}},
                "outcomeTimestamp": "2025-06-30T10:00:00Z",
            }
        ]
    }
    assert call(client, ehr, "cml-monitoring", feedback, "/feedback").status_code == 200
    with app.app_context():
        [row] = runtime().cds.feedback()
    assert (row.card, row.override_code) == (card["uuid"], reason["code"])


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({}, "feedback array"),
        ({"feedback": []}, "1 to 100 items"),
        ({"feedback": [{"card": "c", "outcomeTimestamp": "2020-12-11T00:00:00Z"}]}, "outcome"),
        (
            {"feedback": [{"card": "c", "outcome": "accepted", "outcomeTimestamp": "2020"}]},
            "acceptedSuggestions is required",
        ),
        (
            {"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "soon"}]},
            "ISO timestamp",
        ),
        (
            {
                "feedback": [
                    {
                        "card": "c",
                        "outcome": "overridden",
                        "overrideReason": {"reason": {"code": "x"}},
                        "outcomeTimestamp": "2020-12-11T00:00:00Z",
                    }
                ]
            },
            "reason.system",
        ),
    ],
)
def test_bad_feedback_is_400(
    client: FlaskClient, ehr: SigningEhr, body: dict[str, Any], match: str
) -> None:
    response = call(client, ehr, "cml-monitoring", body, "/feedback")
    assert response.status_code == 400
    assert match in response.get_json()["issue"][0]["diagnostics"]


def test_feedback_audience_may_be_the_service_or_the_feedback_url(
    app: Flask, client: FlaskClient, ehr: SigningEhr
) -> None:
    url = "/cds-services/cml-monitoring/feedback"
    body = spec("feedback-accepted.json")
    as_if_issued(app, "feedback-accepted.json")
    for aud, status in (
        (f"{PUBLIC}{url}", 200),
        (f"{PUBLIC}/cds-services/cml-monitoring", 200),
        (f"{PUBLIC}/cds-services/cml-tki-order", 401),
    ):
        response = client.post(
            url, json=body, headers={"Authorization": f"Bearer {ehr.token(aud)}"}
        )
        assert response.status_code == status


def test_feedback_only_for_cards_we_issued_to_that_ehr(
    app: Flask, client: FlaskClient, ehr: SigningEhr
) -> None:
    resources, patient = example("03-failure-t315i.json")
    card = call(client, ehr, "cml-monitoring", patient_view(resources, patient)).get_json()[
        "cards"
    ][0]

    def item(card_id: str, **more: Any) -> dict[str, Any]:
        return {"card": card_id, "outcomeTimestamp": "2025-06-30T10:00:00Z", **more}

    overridden = {"outcome": "overridden"}
    accepted = {
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
    }
    refused = [
        ([item("9368d37b-283f-44a0-93ea-547cebab93ed", **overridden)], "issued no such card"),
        (
            [item(card["uuid"], **overridden), item("never-issued", **overridden)],
            "feedback[1].card",
        ),
        (
            [item(card["uuid"], outcome="accepted", acceptedSuggestions=[{"id": "made-up"}])],
            "no suggestion 'made-up'",
        ),
        (
            [item(card["uuid"], overrideReason={"userComment": "x" * 4001}, **overridden)],
            "longer than 4000 characters",
        ),
    ]
    for items, match in refused:
        response = call(client, ehr, "cml-monitoring", {"feedback": items}, "/feedback")
        assert response.status_code == 400, items
        assert match in response.get_json()["issue"][0]["diagnostics"]
    # the card's id at another service's feedback endpoint is not that service's card
    elsewhere = {"feedback": [item(card["uuid"], **overridden)]}
    assert call(client, ehr, "cml-tki-order", elsewhere, "/feedback").status_code == 400
    with app.app_context():
        assert runtime().cds.feedback() == []  # nothing stored by any refused request
    comment = {"userComment": "y" * 4000}
    for body in (
        [item(card["uuid"], **accepted)],
        [item(card["uuid"], overrideReason=comment, **overridden)],
    ):
        response = call(client, ehr, "cml-monitoring", {"feedback": body}, "/feedback")
        assert response.status_code == 200


def test_feedback_from_another_ehr_for_our_card_is_refused(
    make_app: Callable[..., Flask], ehr: SigningEhr
) -> None:
    stranger = SigningEhr.make("https://other-ehr.example.org")
    app = make_app(
        cds_issuers=[{"iss": ISS, "jwks": ehr.jwks}, {"iss": stranger.iss, "jwks": stranger.jwks}]
    )
    client = app.test_client()
    resources, patient = example("03-failure-t315i.json")
    card = call(client, ehr, "cml-monitoring", patient_view(resources, patient)).get_json()[
        "cards"
    ][0]
    item = {
        "card": card["uuid"],
        "outcome": "overridden",
        "outcomeTimestamp": "2025-06-30T10:00:00Z",
    }
    response = call(client, stranger, "cml-monitoring", {"feedback": [item]}, "/feedback")
    assert response.status_code == 400
    assert call(client, ehr, "cml-monitoring", {"feedback": [item]}, "/feedback").status_code == 200


def test_searchset_helper_counts(ehr: SigningEhr) -> None:
    assert searchset([{"resourceType": "Patient"}])["total"] == 1
