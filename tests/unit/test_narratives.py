"""Narratives of what fhir-cml writes: what they say, and that they are safe, valid XHTML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_cml import conformance
from fhir_cml.domain.results import Interaction
from fhir_cml.fhir.outbound import build, supersede
from fhir_cml.fhir.outbound.narrative import (
    ACCEPTED,
    NOT_ORDERS,
    SUPERSEDED,
    WITHDRAWN,
    escape,
    narrative,
    p,
    risk_assessment_text,
    superseded,
)
from fhir_cml.fhir.outbound.provenance import build_acceptance, build_revocation
from fhir_cml.fhir.outbound.supersede import Successor
from fhir_cml.reporting import say, suggestion_text
from tests.support.narrative import problems
from tests.unit.cases import RECORDS, assessment

RECORDED = datetime(2025, 6, 30, 14, 5, 9, tzinfo=UTC)


def text_of(resource: dict[str, object]) -> str:
    div = resource["text"]["div"]  # type: ignore[index]
    return "".join(ET.fromstring(div).itertext())


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_every_written_resource_has_a_valid_narrative(name: str) -> None:
    written = build(assessment(name), RECORDED)
    for resource in written.resources:
        assert problems(resource.get("text")) == [], (name, resource["resourceType"])


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_the_narratives_say_the_reading_the_suggestions_the_date_and_not_orders(
    name: str,
) -> None:
    a = assessment(name)
    written = build(a, RECORDED)
    reading = text_of(written.risk_assessment)
    plan = text_of(written.care_plan)
    provenance = text_of(written.provenance)
    as_of = a.as_of.isoformat()
    for said in (reading, plan, provenance):
        assert as_of in said
        assert NOT_ORDERS in said
    assert f"Molecular response: {a.molecular_response.depth.value}" in reading
    assert a.guideline.label in reading
    for suggestion in a.recommendations:
        assert suggestion_text(suggestion) in reading
        assert suggestion_text(suggestion) in plan
    if not a.recommendations:
        assert "No suggestion." in plan
    assert "2025-06-30T14:05:09+00:00" in provenance


def test_the_reasons_are_in_the_reading() -> None:
    a = assessment("t315i")
    reading = text_of(build(a, RECORDED).risk_assessment)
    for reason in a.eln.reasons:
        assert say(reason) in reading


HOSTILE = '<script>alert("x")</script> & <b onclick="x">\x00\x08\ud800 \u2028 ]]> "\'"'


def test_text_from_the_record_is_escaped_and_xml_safe() -> None:
    """A statement may carry text an EHR sent (a medication name, a display): it is escaped,
    and characters XML cannot carry are dropped."""
    a = assessment("optimal")
    interaction = Interaction(
        HOSTILE, "strong-inhibitor", "MedicationStatement/x", a.monitoring.basis
    )
    hostile = replace(a, interactions=(interaction,))
    text = risk_assessment_text(hostile)
    assert problems(text) == []
    assert "<script" not in text["div"]
    assert "<b onclick" not in text["div"]
    shown = "".join(ET.fromstring(text["div"]).itertext())
    assert '<script>alert("x")</script> &' in shown
    assert "\x00" not in shown
    assert "\ud800" not in shown


@given(st.text())
def test_any_text_makes_a_well_formed_narrative(value: str) -> None:
    assert problems(narrative(p(escape(value)), p(escape("x")))) == []


def test_a_superseded_suggestion_says_so() -> None:
    written = build(assessment("t315i"), RECORDED)
    revoked, replaced = supersede(
        {**written.care_plan, "id": "old"},
        {**written.risk_assessment, "id": "old"},
        Successor("RiskAssessment/new", "CarePlan/new"),
    )
    for resource in (revoked, replaced):
        assert text_of(resource).startswith(SUPERSEDED)
        assert problems(resource["text"]) == []
    again, _ = supersede(revoked, replaced, Successor("RiskAssessment/n2", "CarePlan/n2"))
    assert text_of(again).count(SUPERSEDED) == 1
    assert SUPERSEDED not in text_of(written.care_plan)


def test_a_decision_of_a_clinician_says_what_was_decided() -> None:
    accepted = build_acceptance(
        ["CarePlan/a/_history/2", "CarePlan/old/_history/3"], RECORDED, "Agreed <b>", []
    )
    withdrawn = build_revocation("CarePlan/a/_history/2", RECORDED, "Not now & later", [])
    assert problems(accepted["text"]) == problems(withdrawn["text"]) == []
    said = text_of(accepted)
    assert "CarePlan/a/_history/2 were accepted" in said
    assert "Replaced: CarePlan/old/_history/3" in said
    assert "Agreed <b>" in said
    assert NOT_ORDERS in said
    assert "no longer proposed" in text_of(withdrawn)
    assert "Not now & later" in text_of(withdrawn)
    care_plan = build(assessment("t315i"), RECORDED).care_plan
    for why in (ACCEPTED, WITHDRAWN):
        marked = dict(care_plan)
        superseded(marked, why)
        assert text_of(marked).startswith(why)
        assert ACCEPTED not in text_of(care_plan)
        assert problems(marked["text"]) == []


@pytest.mark.parametrize(
    "resource", conformance.all_resources(), ids=lambda r: f"{r['resourceType']}/{r['id']}"
)
def test_every_conformance_resource_has_a_valid_narrative(resource: dict[str, object]) -> None:
    assert problems(resource.get("text")) == []
    title = resource.get("title") or resource.get("name")
    assert str(title) in text_of(resource)
