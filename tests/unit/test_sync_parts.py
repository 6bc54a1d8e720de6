"""The pieces of the sync job that need no server: batching, fingerprints, codes, plans."""

from __future__ import annotations

import copy
import gc
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from fhir_cml.domain import assess
from fhir_cml.ehr.client import FhirClient
from fhir_cml.ehr.fetch import (
    BCR_ABL1_CODES,
    CML_CONDITION_CODES,
    TKI_CODES,
    FetchOptions,
    batches,
    input_fingerprint,
    input_query,
    patient_id_of,
)
from fhir_cml.ehr.writeback import (
    TransactionLimit,
    _groups,
    _location,
    _resolved,
    _rewrite_references,
    make_plan,
)
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound import MappingOptions, records_from_resources
from fhir_cml.fhir.inbound.codes import CML_EVIDENCE_KINDS, kind_of
from fhir_cml.fhir.inbound.medications import MedicationIndex, identify
from fhir_cml.fhir.inbound.patients import is_cml
from fhir_cml.fhir.outbound import build
from fhir_cml.jobs.sync import RUN_GC_THRESHOLD, Summary, SyncJob, SyncSettings
from fhir_cml.state import StateStore
from tests.support.sync_data import AS_OF, CML_PATIENTS, pcr

NOW = datetime(2025, 6, 30, 12, tzinfo=UTC)


# --- what is searched for is what the mapping reads ----------------------------------------------


@pytest.mark.parametrize(("system", "code"), CML_CONDITION_CODES)
def test_condition_codes_searched_are_cml_for_the_mapping(system: str, code: str) -> None:
    assert is_cml({"coding": [{"system": system, "code": code}]})


@pytest.mark.parametrize(("system", "code"), BCR_ABL1_CODES)
def test_observation_codes_searched_are_cml_evidence_for_the_mapping(
    system: str, code: str
) -> None:
    assert kind_of({"coding": [{"system": system, "code": code}]}) in CML_EVIDENCE_KINDS


@pytest.mark.parametrize(("system", "code"), TKI_CODES)
def test_medication_codes_searched_are_tkis_for_the_mapping(system: str, code: str) -> None:
    statement = {
        "resourceType": "MedicationStatement",
        "medicationCodeableConcept": {"coding": [{"system": system, "code": code}]},
    }
    drug, _ = identify(statement, MedicationIndex())
    assert drug is not None
    assert drug.tki is not None


# --- batching and queries ------------------------------------------------------------------------


def test_batches_hold_at_most_batch_size_patients() -> None:
    ids = [f"p{i}" for i in range(7)]
    assert list(batches(ids, FetchOptions(batch_size=3))) == [
        ["p0", "p1", "p2"],
        ["p3", "p4", "p5"],
        ["p6"],
    ]


def test_batches_keep_the_ids_within_the_url_budget() -> None:
    ids = ["x" * 40 for _ in range(10)]
    found = list(batches(ids, FetchOptions(batch_size=50, max_ids_chars=200)))
    assert [len(b) for b in found] == [4, 4, 2]
    assert sum(len(b) for b in found) == 10


def test_input_queries_name_all_patients_and_narrow_observations() -> None:
    options = FetchOptions(page_size=500)
    assert input_query("AdverseEvent", ["a", "b"], options)[0] == ("subject", "Patient/a,Patient/b")
    assert input_query("Patient", ["a", "b"], options)[0] == ("_id", "a,b")
    observation = dict(input_query("Observation", ["a"], options))
    assert observation["patient"] == "a"
    assert f"{c.LOINC}|69380-4" in observation["code"]
    assert f"{c.LOINC}|718-7" not in observation["code"]
    assert observation["_count"] == "500"
    statements = input_query("MedicationStatement", ["a"], options)
    assert ("_include", "MedicationStatement:medication") in statements


@pytest.mark.parametrize(
    "reference",
    [
        "Patient/123",
        "https://ehr.example.org/fhir/Patient/123",
        "Patient/123/_history/4",
    ],
)
def test_the_patient_of_a_resource(reference: str) -> None:
    assert patient_id_of({"subject": {"reference": reference}}) == "123"
    assert patient_id_of({"patient": {"reference": reference}}) == "123"


def test_references_that_name_no_patient() -> None:
    assert patient_id_of({"subject": {"reference": "Group/1"}}) is None
    assert patient_id_of({"subject": {"display": "Jane"}}) is None
    assert patient_id_of({}) is None


# --- input fingerprints --------------------------------------------------------------------------


def test_without_versions_the_fingerprint_is_the_content_in_any_order() -> None:
    resources = copy.deepcopy(CML_PATIENTS["opt"])
    again = copy.deepcopy(list(reversed(resources)))
    for r in again:
        r["meta"] = {"lastUpdated": "2026-01-01T00:00:00Z"}
        r["text"] = {"status": "generated", "div": "<div>changed</div>"}
    assert input_fingerprint(resources) == input_fingerprint(again)


def test_with_versions_the_fingerprint_follows_them() -> None:
    resources = copy.deepcopy(CML_PATIENTS["opt"])
    for r in resources:
        r["meta"] = {"versionId": "1"}
    base = input_fingerprint(resources)
    changed = copy.deepcopy(resources)
    changed[0]["birthDate"] = "1961-01-01"  # same version: the server did not say it changed
    assert input_fingerprint(changed) == base
    changed[0]["meta"]["versionId"] = "2"
    assert input_fingerprint(changed) != base


def test_the_fingerprint_ignores_observations_that_are_not_read() -> None:
    resources = copy.deepcopy(CML_PATIENTS["opt"])
    blood_pressure = {
        "resourceType": "Observation",
        "id": "bp",
        "status": "final",
        "code": {"coding": [{"system": c.LOINC, "code": "85354-9"}]},
        "subject": {"reference": "Patient/opt"},
    }
    assert input_fingerprint(resources) == input_fingerprint([*resources, blood_pressure])


def test_the_fingerprint_changes_with_a_result_or_the_settings() -> None:
    resources = copy.deepcopy(CML_PATIENTS["opt"])
    base = input_fingerprint(resources)
    assert input_fingerprint([*resources, pcr("opt", date(2025, 6, 1), 0.5)]) != base
    resources[-1]["valueQuantity"]["value"] = 0.007
    assert input_fingerprint(resources) != base
    assert input_fingerprint(CML_PATIENTS["opt"], ("1.0.0", "eln2013", "")) != base


# --- plans ---------------------------------------------------------------------------------------


def assessment_of(pid: str, extra: list[dict[str, Any]] | None = None) -> Any:
    loaded = records_from_resources([*CML_PATIENTS[pid], *(extra or [])], MappingOptions(now=NOW))
    [record] = loaded.records
    return assess(record, AS_OF)


def on_server(resource: dict[str, Any], rid: str) -> dict[str, Any]:
    return {**copy.deepcopy(resource), "id": rid, "meta": {"versionId": "v1"}}


def test_a_suggestion_already_there_is_not_written_again() -> None:
    written = build(assessment_of("opt"), NOW)
    plan = make_plan("opt", written, [on_server(written.care_plan, "cp1")], {})
    assert plan.action == "unchanged"
    assert plan.entries == ()
    assert plan.current == "CarePlan/cp1"


def test_a_first_suggestion_is_three_conditional_creates() -> None:
    plan = make_plan("opt", build(assessment_of("opt"), NOW), [], {})
    assert plan.action == "create"
    assert [e["request"]["method"] for e in plan.entries] == ["POST"] * 3
    assert all(e["request"]["ifNoneExist"] for e in plan.entries)


def test_a_different_suggestion_supersedes_the_one_there() -> None:
    old = build(assessment_of("opt"), NOW)
    new = build(assessment_of("opt", [pcr("opt", date(2025, 6, 26), 0.5)]), NOW)
    old_plan = on_server(old.care_plan, "cp1")
    old_risk = on_server(old.risk_assessment, "ra1")
    plan = make_plan("opt", new, [old_plan], {old.ids.fingerprint: old_risk})
    assert plan.action == "supersede"
    assert plan.superseded == ("CarePlan/cp1",)
    updates = {e["request"]["url"]: e for e in plan.entries if e["request"]["method"] == "PUT"}
    assert updates["CarePlan/cp1"]["resource"]["status"] == "revoked"
    assert updates["CarePlan/cp1"]["request"]["ifMatch"] == 'W/"v1"'
    replaced = updates["RiskAssessment/ra1"]["resource"]["extension"][-1]
    assert replaced == {
        "url": c.EXT_REPLACED_BY,
        "valueReference": {"reference": new.ids.risk_assessment},
    }
    [care_plan] = [e for e in plan.entries if e.get("fullUrl") == new.ids.care_plan]
    assert care_plan["resource"]["replaces"] == [{"reference": "CarePlan/cp1"}]


def test_a_superseded_care_plan_without_its_risk_assessment_is_still_revoked() -> None:
    old = build(assessment_of("opt"), NOW)
    new = build(assessment_of("opt", [pcr("opt", date(2025, 6, 26), 0.5)]), NOW)
    plan = make_plan("opt", new, [on_server(old.care_plan, "cp1")], {})
    puts = [e for e in plan.entries if e["request"]["method"] == "PUT"]
    assert [(e["request"]["url"], e["resource"]["status"]) for e in puts] == [
        ("CarePlan/cp1", "revoked")
    ]


def test_groups_respect_entries_and_the_learnt_patient_limit() -> None:
    plan = make_plan("opt", build(assessment_of("opt"), NOW), [], {})
    plans = [plan] * 5
    assert [len(g) for g in _groups(plans, 500, None)] == [5]
    assert [len(g) for g in _groups(plans, 7, None)] == [2, 2, 1]
    assert [len(g) for g in _groups(plans, 500, 2)] == [2, 2, 1]
    limit = TransactionLimit()
    assert not limit.too_small()
    limit.learn(3)
    limit.learn(4)  # a larger size never raises the limit
    assert limit.patients == 3
    assert limit.too_small()  # auto writes in batches from now on
    assert not TransactionLimit(3).too_small()  # a size asked for is kept to


def test_batch_steps_name_what_earlier_steps_created_without_changing_the_plan() -> None:
    written = build(assessment_of("opt"), NOW)
    plan = make_plan("opt", written, [], {})
    before = copy.deepcopy(plan.entries)
    ids = written.ids
    created = {ids.risk_assessment: "RiskAssessment/ra1", ids.care_plan: "CarePlan/cp1"}
    [risk, care_plan, provenance] = plan.entries

    assert _resolved(risk, {})["resource"] is risk["resource"]  # nothing to resolve, no copy
    sent = _resolved(provenance, created)
    assert sent["resource"]["target"] == [
        {"reference": "RiskAssessment/ra1"},
        {"reference": "CarePlan/cp1"},
    ]
    assert sent["request"]["ifNoneExist"] == "target=RiskAssessment/ra1"
    assert sent["resource"]["agent"] is provenance["resource"]["agent"]  # shared, not copied
    resolved_care_plan = _resolved(care_plan, created)["resource"]
    assert ids.risk_assessment not in str(resolved_care_plan)
    assert plan.entries == before  # the plan's entries are left as they were
    assert ids.risk_assessment in str(care_plan["resource"])


@pytest.mark.parametrize(
    ("location", "ref"),
    [
        ("RiskAssessment/abc/_history/1", "RiskAssessment/abc"),
        ("https://ehr.example.org/fhir/CarePlan/9/_history/2", "CarePlan/9"),
        ("CarePlan/9", "CarePlan/9"),
    ],
)
def test_locations_become_references(location: str, ref: str) -> None:
    assert _location({"location": location}) == ref


def test_rewriting_references_replaces_only_references_and_copies_only_their_path() -> None:
    resolved = {"urn:uuid:ra": "RiskAssessment/ra1", "urn:uuid:cp": "CarePlan/cp1"}
    untouched = {"coding": [{"system": "urn:uuid:ra", "code": "x"}]}  # not a reference
    value = {
        "resourceType": "Provenance",
        "target": [{"reference": "urn:uuid:ra"}, {"reference": "Patient/p1"}],
        "entity": [{"what": {"reference": "urn:uuid:cp", "display": "urn:uuid:ra"}}],
        "identifier": [{"value": "urn:uuid:cp"}],
        "activity": untouched,
        "extension": [{"valueReference": {"reference": "urn:uuid:unknown"}}],
    }
    before = copy.deepcopy(value)

    out = _rewrite_references(value, resolved)

    assert out["target"] == [{"reference": "RiskAssessment/ra1"}, {"reference": "Patient/p1"}]
    assert out["entity"] == [{"what": {"reference": "CarePlan/cp1", "display": "urn:uuid:ra"}}]
    assert out["identifier"] == [{"value": "urn:uuid:cp"}]
    assert out["extension"] == before["extension"]  # a fullUrl not created is left as it is
    assert value == before  # the input is not modified
    assert out["activity"] is untouched  # parts without a rewritten reference are shared
    assert out["extension"] is value["extension"]
    assert out["target"][1] is value["target"][1]
    assert _rewrite_references(before, {}) is before
    assert _rewrite_references([before, "urn:uuid:ra"], resolved)[1] == "urn:uuid:ra"


def test_a_run_collects_cycles_less_often_and_restores_the_thresholds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    before = gc.get_threshold()
    assert before != RUN_GC_THRESHOLD
    seen: list[tuple[int, ...]] = []

    def run(self: SyncJob) -> Summary:
        seen.append(gc.get_threshold())
        return Summary("search", False, None)

    monkeypatch.setattr(SyncJob, "_run", run)
    job = SyncJob(
        SyncSettings("http://fhir.invalid/fhir", AS_OF),
        FhirClient("http://fhir.invalid/fhir"),
        StateStore(str(tmp_path / "state.sqlite3")),
        progress=False,
    )
    job.run()
    assert seen == [RUN_GC_THRESHOLD]
    assert gc.get_threshold() == before

    def fail(self: SyncJob) -> Summary:
        raise KeyboardInterrupt

    monkeypatch.setattr(SyncJob, "_run", fail)
    with pytest.raises(KeyboardInterrupt):
        job.run()
    assert gc.get_threshold() == before
