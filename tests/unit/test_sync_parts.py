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
    changed_patients,
    input_fingerprint,
    input_query,
    patient_id_of,
)
from fhir_cml.ehr.writeback import (
    Held,
    Plan,
    Target,
    TransactionLimit,
    _assume,
    _groups,
    _location,
    make_plan,
    next_changes,
)
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound import MappingOptions, records_from_resources
from fhir_cml.fhir.inbound.codes import CML_EVIDENCE_KINDS, kind_of
from fhir_cml.fhir.inbound.medications import MedicationIndex, identify
from fhir_cml.fhir.inbound.patients import is_cml
from fhir_cml.fhir.outbound import Written, build
from fhir_cml.fhir.outbound.requests import request_key
from fhir_cml.jobs.sync import RUN_GC_THRESHOLD, Summary, SyncJob, SyncSettings
from fhir_cml.state import StateStore
from tests.support.sync_data import AS_OF, CML_PATIENTS, pcr
from tests.unit.cases import assessment as case

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


def test_proposals_fhir_cml_wrote_change_no_input() -> None:
    """A MedicationRequest fhir-cml proposed is no input: it neither makes its patient changed
    for an incremental sync nor changes the input fingerprint."""
    [proposal] = [
        r.resource
        for r in build(case("tfr-relapse"), NOW).requests  # a TKI restart, proposed
        if r.resource["resourceType"] == "MedicationRequest"
    ]
    order = {
        "resourceType": "MedicationRequest",
        "id": "order",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/other"},
    }

    class Server:
        def search(self, resource_type: str, params: Any, post: bool = False) -> Any:
            if resource_type != "MedicationRequest":
                return iter(())
            assert ("_elements", "subject,identifier") in params
            return iter([{**proposal, "id": "p"}, order])

    client: Any = Server()
    assert changed_patients(client, NOW) == {"other"}
    resources = copy.deepcopy(CML_PATIENTS["opt"])
    assert input_fingerprint([*resources, {**proposal, "id": "p"}]) == input_fingerprint(resources)


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


def on_server(resource: dict[str, Any], rid: str, **changes: Any) -> dict[str, Any]:
    """A resource as the server holds it: with an id and a version."""
    return {**copy.deepcopy(resource), "id": rid, "meta": {"versionId": "v1"}, **changes}


def stored(written: Written, n: int, *, plan_status: str = "draft") -> Held:
    """A patient whose suggestion ``written`` is on the server in full (ids ra<n>, cp<n>, and
    rq<n>-<i> for the requests it proposes, whose status follows the CarePlan's)."""
    risk = on_server(written.risk_assessment, f"ra{n}")
    requests = {
        request_key(r.resource): on_server(r.resource, f"rq{n}-{i}", status=plan_status)
        for i, r in enumerate(written.requests)
    }
    refs = {
        r.url: f"{q['resourceType']}/{q['id']}"
        for r, q in zip(written.requests, requests.values(), strict=True)
    }
    plan = on_server(
        written.care_plan,
        f"cp{n}",
        status=plan_status,
        supportingInfo=[{"reference": f"RiskAssessment/ra{n}"}],
        activity=[
            {**a, "reference": {**a["reference"], "reference": refs[a["reference"]["reference"]]}}
            if "reference" in a
            else a
            for a in written.care_plan["activity"]
        ],
    )
    provenance = on_server(
        written.provenance,
        f"pv{n}",
        target=[
            {"reference": ref}
            for ref in (f"RiskAssessment/ra{n}", f"CarePlan/cp{n}", *refs.values())
        ],
    )
    fp = written.ids.fingerprint
    return Held({fp: risk}, {fp: plan}, {f"pv{n}": provenance}, requests)  # type: ignore[arg-type]


def both(*held: Held) -> Held:
    out = Held()
    for h in held:
        out.risks.update(h.risks)
        out.plans.update(h.plans)
        out.provenances.update(h.provenances)
        out.requests.update(h.requests)
    return out


def target(written: Written, **kwargs: Any) -> Target:
    return Target("opt", written, **kwargs)


A = build(assessment_of("opt"), NOW)
B = build(assessment_of("opt", [pcr("opt", date(2025, 6, 26), 0.5)]), NOW)


def kinds(plan: Plan) -> list[str]:
    return [change.kind for change in plan.changes]


def test_a_suggestion_already_there_is_not_written_again() -> None:
    plan = make_plan(target(A), stored(A, 1))
    assert plan.action == "unchanged"
    assert plan.changes == ()
    assert plan.current == "CarePlan/cp1"


def test_a_first_suggestion_is_written_layer_by_layer_with_conditional_creates() -> None:
    plan = make_plan(target(A), Held())
    assert plan.action == "create"
    assert kinds(plan) == ["create-risk", "create-request", "create-plan", "provenance"]
    assert all(ch.entry["request"]["method"] == "POST" for ch in plan.changes)
    assert all(ch.entry["request"]["ifNoneExist"] for ch in plan.changes)
    # Each layer names what the one before made, by its server id, never by a fullUrl.
    [_, request, care_plan, provenance] = plan.changes
    assert (
        request.entry["request"]["ifNoneExist"]
        == f"identifier={c.ID_REQUEST}|{request.fingerprint}"
    )
    assert care_plan.entry["resource"]["supportingInfo"][0]["reference"].startswith(
        "RiskAssessment/"
    )
    [proposal] = [a for a in care_plan.entry["resource"]["activity"] if "reference" in a]
    assert proposal["reference"]["reference"].startswith("ServiceRequest/")
    assert "urn:uuid" not in str(care_plan.entry["resource"]["activity"])
    assert "urn:uuid" not in str(provenance.entry["resource"]["target"])
    assert A.care_plan["supportingInfo"] == [{"reference": A.ids.risk_assessment}]  # not changed


def test_the_first_layer_is_only_the_reading_and_its_proposals() -> None:
    changes, state = next_changes(target(A), Held())
    assert [ch.kind for ch in changes] == ["create-risk", "create-request"]
    assert state == "pending"


def test_a_different_suggestion_supersedes_the_one_there_make_before_break() -> None:
    plan = make_plan(target(B), stored(A, 1))
    assert plan.action == "supersede"
    assert kinds(plan) == [
        "create-risk",
        *["create-request"] * len(B.requests),
        "create-plan",
        "provenance",
        "replace-risk",
        "revoke-plan",
        "withdraw-request",
    ]
    assert plan.superseded == ("CarePlan/cp1",)
    by_kind = {ch.kind: ch.entry for ch in plan.changes}
    assert by_kind["create-plan"]["resource"]["replaces"] == [{"reference": "CarePlan/cp1"}]
    assert by_kind["revoke-plan"]["resource"]["status"] == "revoked"
    assert by_kind["revoke-plan"]["request"]["ifMatch"] == 'W/"v1"'
    # The old suggestion's proposal is withdrawn with it, after the new one is there.
    assert by_kind["withdraw-request"]["request"] == {
        "method": "PUT",
        "url": "ServiceRequest/rq1-0",
        "ifMatch": 'W/"v1"',
    }
    assert by_kind["withdraw-request"]["resource"]["status"] == "revoked"
    [replaced_ext] = [
        e for e in by_kind["replace-risk"]["resource"]["extension"] if e["url"] == c.EXT_REPLACED_BY
    ]
    assert replaced_ext["valueReference"]["reference"].startswith("RiskAssessment/")
    assert by_kind["replace-risk"]["request"] == {
        "method": "PUT",
        "url": "RiskAssessment/ra1",
        "ifMatch": 'W/"v1"',
    }


def superseded(old: Written, n_old: int, new: Written, n_new: int) -> Held:
    """``new`` current, ``old`` superseded by it, as fhir-cml leaves them."""
    held = both(stored(old, n_old, plan_status="revoked"), stored(new, n_new))
    old_risk = held.risks[old.ids.fingerprint]
    old_risk["extension"] = [
        *old_risk["extension"],
        {"url": c.EXT_REPLACED_BY, "valueReference": {"reference": f"RiskAssessment/ra{n_new}"}},
    ]
    held.plans[new.ids.fingerprint]["replaces"] = [{"reference": f"CarePlan/cp{n_old}"}]
    return held


def test_a_to_b_to_a_puts_a_back_and_replaces_b_without_cycles() -> None:
    plan = make_plan(target(A), superseded(A, 1, B, 2))
    assert plan.action == "reinstate"
    assert kinds(plan) == [
        "reinstate-request",
        "reinstate-plan",
        "reinstate-risk",
        "replace-risk",
        "revoke-plan",
        *["withdraw-request"] * len(B.requests),
    ]
    by_kind = {ch.kind: ch.entry for ch in plan.changes}
    back = by_kind["reinstate-plan"]
    assert back["request"] == {"method": "PUT", "url": "CarePlan/cp1", "ifMatch": 'W/"v1"'}
    assert back["resource"]["status"] == "draft"
    assert back["resource"]["supportingInfo"] == [{"reference": "RiskAssessment/ra1"}]
    assert by_kind["reinstate-request"]["request"]["url"] == "ServiceRequest/rq1-0"
    assert by_kind["reinstate-request"]["resource"]["status"] == "draft"
    assert "replaces" not in back["resource"]  # A never replaced B: no cycle
    current = by_kind["reinstate-risk"]["resource"]
    assert current["id"] == "ra1"
    assert not any(e["url"] == c.EXT_REPLACED_BY for e in current["extension"])
    assert by_kind["replace-risk"]["request"]["url"] == "RiskAssessment/ra2"
    assert by_kind["revoke-plan"]["request"]["url"] == "CarePlan/cp2"


def test_a_suggestion_a_clinician_withdrew_is_not_proposed_again_unless_accepted() -> None:
    held = stored(A, 1, plan_status="revoked")
    plan = make_plan(target(A), held)
    assert plan.action == "withdrawn"
    assert plan.changes == ()
    assert "withdrawn by a clinician" in plan.describe()
    accepted = make_plan(target(A, accept=True), held)
    assert kinds(accepted) == ["reinstate-request", "reinstate-plan"]


def test_a_care_plan_the_ehr_moved_on_is_left_alone() -> None:
    plan = make_plan(target(A), stored(A, 1, plan_status="active"))
    assert plan.action == "decided"
    assert plan.changes == ()


def test_a_half_written_suggestion_is_completed_from_what_is_there() -> None:
    held = stored(A, 1)
    held.plans.clear()
    held.provenances.clear()
    plan = make_plan(target(A), held)
    assert plan.action == "repair"
    assert kinds(plan) == ["create-plan", "provenance"]
    assert plan.changes[0].entry["resource"]["supportingInfo"] == [
        {"reference": "RiskAssessment/ra1"}
    ]


def test_a_reading_left_without_its_suggestion_is_replaced_too() -> None:
    orphan = stored(B, 2)
    orphan.plans.clear()
    plan = make_plan(target(A), both(stored(A, 1), orphan))
    assert plan.action == "supersede"
    # Its proposals, left draft without a suggestion, are withdrawn too.
    assert kinds(plan) == ["replace-risk", *["withdraw-request"] * len(B.requests)]
    assert plan.changes[0].entry["request"]["url"] == "RiskAssessment/ra2"


def test_a_suggestion_is_put_back_after_its_requests() -> None:
    """A -> B -> A: A's requests go back to draft in a layer before its CarePlan, so a write
    stopped between them leaves draft requests a later run finds and finishes (or withdraws),
    never a current CarePlan proposing a withdrawn request."""
    held = superseded(A, 1, B, 2)
    layer, _ = next_changes(target(A), held)
    assert [ch.kind for ch in layer] == ["reinstate-request"] * len(A.requests)
    for change in layer:
        _assume(held, change, "")
    layer, _ = next_changes(target(A), held)
    assert [ch.kind for ch in layer] == ["reinstate-plan"]


def test_proposals_an_interrupted_write_left_behind_are_withdrawn() -> None:
    # B's reading and requests were written, then the write stopped: no CarePlan proposes them.
    behind = stored(B, 2)
    behind.plans.clear()
    behind.provenances.clear()
    plan = make_plan(target(A), both(stored(A, 1), behind))
    withdrawn = [ch for ch in plan.changes if ch.kind == "withdraw-request"]
    assert {ch.entry["request"]["url"] for ch in withdrawn} == {
        f"{r.resource['resourceType']}/rq2-{i}" for i, r in enumerate(B.requests)
    }
    assert all(ch.entry["resource"]["status"] in ("revoked", "cancelled") for ch in withdrawn)


def test_a_proposal_withdrawn_earlier_is_put_back_when_its_suggestion_is_written() -> None:
    # A's request was withdrawn while its CarePlan was never written: writing A reuses it.
    held = stored(A, 1)
    held.plans.clear()
    held.provenances.clear()
    [(key, request)] = held.requests.items()
    held.requests[key] = {**request, "status": "revoked"}
    plan = make_plan(target(A), held)
    assert kinds(plan) == ["reinstate-request", "create-plan", "provenance"]
    [proposal] = [a for a in plan.changes[1].entry["resource"]["activity"] if "reference" in a]
    assert proposal["reference"]["reference"] == f"{request['resourceType']}/rq1-0"


def test_a_request_the_ehr_moved_on_is_left_alone() -> None:
    held = stored(A, 1)
    [(key, request)] = held.requests.items()
    held.requests[key] = {**request, "status": "active"}  # e.g. turned into an order there
    assert make_plan(target(A), held).changes == ()


def test_a_missing_provenance_is_written_for_the_server_ids() -> None:
    held = stored(A, 1)
    held.provenances.clear()
    [change] = make_plan(target(A), held).changes
    assert change.entry["resource"]["target"] == [
        {"reference": "RiskAssessment/ra1"},
        {"reference": "CarePlan/cp1"},
        {"reference": "ServiceRequest/rq1-0"},
    ]
    assert change.entry["request"]["ifNoneExist"] == "target=RiskAssessment/ra1"


def test_groups_respect_entries_and_the_configured_patient_limit() -> None:
    items: list[Any] = [(object(), [object()] * 3) for _ in range(5)]
    assert [len(g) for g in _groups(items, 500, None)] == [5]
    assert [len(g) for g in _groups(items, 7, None)] == [2, 2, 1]
    assert [len(g) for g in _groups(items, 500, 2)] == [2, 2, 1]
    assert [len(g) for g in _groups(items, 2, None)] == [1] * 5  # a patient is never split
    limit = TransactionLimit(patients=4)
    limit.learn(8)
    limit.learn(9)  # a larger size never raises the limit
    assert (limit.patients, limit.entries) == (4, 8)


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
