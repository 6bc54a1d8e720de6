"""Superseding an earlier assessment: revoke, replace, point to the successor."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.riskassessment import RiskAssessment

from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.outbound import Successor, build, supersede
from fhir_cml.fhir.outbound.supersede import replacing, update_entries
from tests.unit.cases import assessment

RECORDED = datetime(2025, 6, 30, 14, 5, 9, tzinfo=UTC)


def stored(resource: dict[str, Any], rid: str, version: str = "2") -> dict[str, Any]:
    """A resource as a server returns it: with id and version."""
    return {
        **copy.deepcopy(resource),
        "id": rid,
        "meta": {**resource["meta"], "versionId": version},
    }


@pytest.fixture
def old() -> tuple[dict[str, Any], dict[str, Any]]:
    written = build(assessment("optimal"), RECORDED)
    return stored(written.care_plan, "cp1"), stored(written.risk_assessment, "ra1")


def test_old_care_plan_is_revoked_and_old_reading_points_to_its_successor(
    old: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    old_plan, old_ra = old
    before = copy.deepcopy(old)
    new = Successor(risk_assessment="RiskAssessment/ra2", care_plan="CarePlan/cp2")
    plan, ra = supersede(old_plan, old_ra, new)
    assert (old_plan, old_ra) == before, "inputs are not modified"
    assert plan["status"] == "revoked"
    assert plan["id"] == "cp1"
    replaced_by = [e for e in ra["extension"] if e["url"] == c.EXT_REPLACED_BY]
    assert replaced_by == [
        {"url": c.EXT_REPLACED_BY, "valueReference": {"reference": "RiskAssessment/ra2"}}
    ]
    assert ra["status"] == "final"
    assert len(ra["extension"]) == len(old_ra["extension"]) + 1
    CarePlan.model_validate(plan)
    RiskAssessment.model_validate(ra)


def test_superseding_twice_keeps_one_replaced_by(
    old: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    old_plan, old_ra = old
    _, ra = supersede(old_plan, old_ra, Successor("RiskAssessment/ra2", "CarePlan/cp2"))
    _, ra = supersede(old_plan, ra, Successor("RiskAssessment/ra3", "CarePlan/cp3"))
    assert [e["valueReference"] for e in ra["extension"] if e["url"] == c.EXT_REPLACED_BY] == [
        {"reference": "RiskAssessment/ra3"}
    ]


def test_new_care_plan_replaces_the_old(old: tuple[dict[str, Any], dict[str, Any]]) -> None:
    old_plan, old_ra = old
    new_plan = build(assessment("t315i"), RECORDED).care_plan
    *_, updated = supersede(
        old_plan, old_ra, Successor("urn:uuid:a", "urn:uuid:b"), new_care_plan=new_plan
    )
    assert updated["replaces"] == [{"reference": "CarePlan/cp1"}]
    assert "replaces" not in new_plan
    assert replacing(updated, old_plan)["replaces"] == [{"reference": "CarePlan/cp1"}]
    CarePlan.model_validate(updated)


def test_update_entries_put_with_if_match(old: tuple[dict[str, Any], dict[str, Any]]) -> None:
    plan, ra = supersede(*old, Successor("RiskAssessment/ra2", "CarePlan/cp2"))
    entries = update_entries([plan, ra])
    assert [e["request"] for e in entries] == [
        {"method": "PUT", "url": "CarePlan/cp1", "ifMatch": 'W/"2"'},
        {"method": "PUT", "url": "RiskAssessment/ra1", "ifMatch": 'W/"2"'},
    ]


def test_resources_without_id_or_of_the_wrong_type_are_refused() -> None:
    written = build(assessment("optimal"), RECORDED)
    with pytest.raises(ValueError, match="no id"):
        replacing(written.care_plan, written.care_plan)
    with pytest.raises(ValueError, match="expected a CarePlan"):
        supersede(written.risk_assessment, written.risk_assessment, Successor("a", "b"))
