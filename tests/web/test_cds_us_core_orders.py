"""Orders and records coded only by RxNorm, as US Core EHRs send them, through order-select."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from fhir_cml.fhir.canonical import RXNORM
from tests.support.cds import SigningEhr
from tests.web import test_cds_hooks as hooks
from tests.web.test_cds_hooks import (
    cards_for,
    clarithromycin,
    example,
    imatinib_order,
    order_call,
)


@pytest.fixture
def ehr() -> SigningEhr:
    return SigningEhr.make(hooks.ISS)


@pytest.fixture
def settings(tmp_path: Path, ehr: SigningEhr) -> dict[str, Any]:
    return {
        "public_base_url": hooks.PUBLIC,
        "state": str(tmp_path / "state.sqlite3"),
        "cds_issuers": [{"iss": hooks.ISS, "jwks": ehr.jwks}],
    }


@pytest.fixture(autouse=True)
def _as_of(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hooks.assessment, "today", lambda: hooks.AS_OF)


def rxnorm_only(resource: dict[str, Any], code: str) -> dict[str, Any]:
    """The same record with its drug coded by RxNorm alone: no display, no text."""
    resource["medicationCodeableConcept"] = {"coding": [{"system": RXNORM, "code": code}]}
    return resource


def test_clarithromycin_ordered_by_rxnorm_code_alone_raises_the_interaction_card(
    client: FlaskClient, ehr: SigningEhr
) -> None:
    resources, patient = example("01-optimal-responder.json")
    clari = rxnorm_only(clarithromycin(patient, "MedicationRequest"), "21212")
    body = order_call(
        resources,
        patient,
        [imatinib_order(patient, 400, 1), clari],
        selections=["MedicationRequest/mr-1"],
    )
    [card] = cards_for(client, ehr, body, "cml-tki-order")
    assert card["indicator"] == "warning"
    assert "clarithromycin" in card["summary"]
    assert card["source"]["topic"]["code"] == "review-interactions"


def test_an_active_us_core_clarithromycin_request_in_the_record_counts(
    client: FlaskClient, ehr: SigningEhr
) -> None:
    """The patient already takes clarithromycin, recorded as a US Core MedicationRequest."""
    resources, patient = example("01-optimal-responder.json")
    taking = rxnorm_only(
        clarithromycin(patient, "MedicationRequest", status="active", authoredOn="2025-06-20"),
        "21212",
    )
    body = order_call([*resources, taking], patient, [imatinib_order(patient, 400, 1)])
    [card] = cards_for(client, ehr, body, "cml-tki-order")
    assert "clarithromycin" in card["summary"]


def test_a_tki_ordered_by_its_rxnorm_ingredient_alone_is_checked(
    client: FlaskClient, ehr: SigningEhr
) -> None:
    resources, patient = example("01-optimal-responder.json")
    taking = [*resources, clarithromycin(patient)]
    dasatinib = rxnorm_only(imatinib_order(patient, 100, 1), "475342")
    [card] = cards_for(client, ehr, order_call(taking, patient, [dasatinib]), "cml-tki-order")
    assert card["summary"].startswith("Dasatinib ordered alongside clarithromycin")
