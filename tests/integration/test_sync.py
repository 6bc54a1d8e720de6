"""``fhir-cml sync`` against the real test FHIR server: what it writes, and what it does not."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound import partition, streaming
from fhir_cml.state import StateStore
from tests.support.fhir_server import FhirTestServer
from tests.support.sync_data import CML_PATIENTS, all_resources, group, more_patients, pcr
from tests.support.sync_helpers import (
    REQUEST_TYPES,
    SyncEnv,
    assert_requests_follow,
    by_status,
    current_suggestions,
    fingerprint_of,
    subject_of,
)

pytestmark = pytest.mark.integration

CML = sorted(f"Patient/{pid}" for pid in CML_PATIENTS)


@pytest.fixture
def env(fhir_server: FhirTestServer, fhir_base: str, tmp_path: Path) -> SyncEnv:
    fhir_server.load(list(all_resources()))
    fhir_server.reset_stats()
    return SyncEnv(fhir_server, fhir_base, tmp_path / "state.sqlite3")


def test_a_full_sync_writes_one_suggestion_per_cml_patient(env: SyncEnv) -> None:
    result = env.run("--report", str(env.state.with_suffix(".json")))
    assert result.exit_code == 0, result.output
    written = env.written()
    assert sorted(subject_of(r) for r in written["RiskAssessment"]) == CML
    assert by_status(written["CarePlan"]) == {"draft": CML}
    assert all(p["intent"] == "proposal" for p in written["CarePlan"])
    assert len(written["Provenance"]) == len(CML)
    # Each Provenance names its RiskAssessment, CarePlan and proposed requests by their server ids.
    proposals = [r for kind in REQUEST_TYPES for r in written[kind]]
    assert proposals  # every CML patient here has at least its next PCR proposed
    assert all(r["intent"] == "proposal" and r["status"] == "draft" for r in proposals)
    ids = {
        f"{r['resourceType']}/{r['id']}"
        for r in written["RiskAssessment"] + written["CarePlan"] + proposals
    }
    targets = {t["reference"] for p in written["Provenance"] for t in p["target"]}
    assert targets == ids
    assert_requests_follow(written)
    # The CarePlan points at its RiskAssessment, both share the fingerprint.
    risks = {f"RiskAssessment/{r['id']}": fingerprint_of(r) for r in written["RiskAssessment"]}
    for plan in written["CarePlan"]:
        [info] = plan["supportingInfo"]
        assert risks[info["reference"]] == fingerprint_of(plan)
    assert "assessed           4" in result.output
    assert "written            4" in result.output
    report = json.loads(env.state.with_suffix(".json").read_text())
    assert report["exit_code"] == 0
    assert sorted(p["patient"] for p in report["patients"] if p["status"] == "assessed") == sorted(
        CML_PATIENTS
    )


def test_the_readings_differ_by_patient(env: SyncEnv) -> None:
    assert env.run().exit_code == 0
    status = {}
    for risk in env.written()["RiskAssessment"]:
        [eln] = [e for e in risk["extension"] if e["url"] == c.EXT_ELN_RESPONSE]
        [code] = [x["valueCoding"]["code"] for x in eln["extension"] if x["url"] == "status"]
        status[subject_of(risk)] = code
    assert status == {
        "Patient/opt": "optimal",
        "Patient/warn": "warning",
        "Patient/fail": "failure",
        "Patient/mmr": "optimal",
    }


def test_a_second_run_writes_nothing(env: SyncEnv) -> None:
    assert env.run().exit_code == 0
    before = env.written()
    env.server.reset_stats()
    result = env.run()
    assert result.exit_code == 0, result.output
    assert env.writes() == 0
    assert env.written() == before
    assert "written            0" in result.output


def test_a_full_rerun_reads_everyone_but_writes_nothing(env: SyncEnv) -> None:
    assert env.run().exit_code == 0
    env.server.reset_stats()
    result = env.run("--full")
    assert result.exit_code == 0, result.output
    assert env.writes() == 0
    assert "inputs unchanged: 4" in result.output
    assert "assessed           0" in result.output


def test_with_the_state_lost_a_rerun_still_writes_nothing(env: SyncEnv, tmp_path: Path) -> None:
    assert env.run().exit_code == 0
    before = env.written()
    env.server.reset_stats()
    result = env.run(state=tmp_path / "fresh.sqlite3")
    assert result.exit_code == 0, result.output
    assert "assessed           4" in result.output  # read and assessed again...
    assert env.writes() == 0  # ...but what it would write is already there
    assert env.written() == before


def test_a_changed_input_supersedes_the_previous_suggestion(env: SyncEnv) -> None:
    assert env.run().exit_code == 0
    [old_plan] = [p for p in env.written()["CarePlan"] if subject_of(p) == "Patient/opt"]
    [old_risk] = [r for r in env.written()["RiskAssessment"] if subject_of(r) == "Patient/opt"]
    # A new result: MMR lost (0.5 % IS) four days before the as-of date.
    env.put(pcr("opt", date(2025, 6, 26), 0.5))
    result = env.run()
    assert result.exit_code == 0, result.output
    assert "assessed           1" in result.output
    assert "1 superseding an earlier suggestion" in result.output

    written = env.written()
    assert by_status(written["CarePlan"]) == {"draft": CML, "revoked": ["Patient/opt"]}
    [new_plan] = [
        p for p in written["CarePlan"] if subject_of(p) == "Patient/opt" and p["status"] == "draft"
    ]
    assert new_plan["replaces"] == [{"reference": f"CarePlan/{old_plan['id']}"}]
    [new_risk] = [
        r
        for r in written["RiskAssessment"]
        if subject_of(r) == "Patient/opt" and r["id"] != old_risk["id"]
    ]
    [replaced] = [r for r in written["RiskAssessment"] if r["id"] == old_risk["id"]]
    assert {
        "url": c.EXT_REPLACED_BY,
        "valueReference": {"reference": f"RiskAssessment/{new_risk['id']}"},
    } in replaced["extension"]
    assert fingerprint_of(new_plan) == fingerprint_of(new_risk) != fingerprint_of(old_plan)
    assert len(written["Provenance"]) == len(CML) + 1
    # And once more: nothing new.
    env.server.reset_stats()
    assert env.run().exit_code == 0
    assert env.writes() == 0


def test_incremental_runs_read_only_patients_with_changes(env: SyncEnv) -> None:
    assert env.run().exit_code == 0
    store = StateStore(str(env.state))
    mark = store.high_water_mark(f"{env.base}#population=condition")
    assert mark is not None
    store.close()
    env.put(pcr("warn", date(2025, 6, 23), 1.2))
    env.server.reset_stats()
    result = env.run()
    assert result.exit_code == 0, result.output
    assert "read               1" in result.output
    assert "assessed           1" in result.output
    observations = env.server.stats()["byResourceType"]["Observation"]["search"]
    assert observations == 2  # the change search, and the one patient's inputs


def test_since_reads_the_patients_changed_since_then(env: SyncEnv) -> None:
    assert env.run().exit_code == 0
    env.server.reset_stats()
    result = env.run("--since", "2024-12-31T00:00:00Z")  # before the seed's lastUpdated
    assert result.exit_code == 0, result.output
    assert "read               4" in result.output
    assert "inputs unchanged: 4" in result.output
    assert env.writes() == 0
    assert env.run("--since", "2025-01-01", "--full").exit_code == 2


def test_only_the_patients_asked_for(env: SyncEnv) -> None:
    result = env.run("--patient", "warn", "--patient", "nocml")
    assert result.exit_code == 0, result.output
    assert by_status(env.written()["CarePlan"]) == {"draft": ["Patient/warn"]}
    assert "no CML evidence: 1" in result.output


def test_only_the_members_of_a_group(env: SyncEnv) -> None:
    env.server.load(group("clinic-a", ["fail", "mmr", "nocml"]))
    result = env.run("--group", "clinic-a")
    assert result.exit_code == 0, result.output
    assert by_status(env.written()["CarePlan"]) == {"draft": ["Patient/fail", "Patient/mmr"]}


def test_a_dry_run_writes_nothing_and_says_what_it_would_write(env: SyncEnv) -> None:
    result = env.run("--dry-run")
    assert result.exit_code == 0, result.output
    assert env.writes() == 0
    assert all(not v for v in env.written().values())
    for pid in CML_PATIENTS:
        assert re.search(
            rf"Patient/{pid}: create RiskAssessment, "
            r"((ServiceRequest|MedicationRequest|RequestGroup), )+CarePlan, Provenance",
            result.output,
        ), result.output
    assert "would write        4" in result.output
    # Nothing was remembered either: the real run does everything.
    store = StateStore(str(env.state))
    assert store.patients(env.base) == {}
    assert store.high_water_mark(f"{env.base}#population=condition") is None
    store.close()
    assert env.run().exit_code == 0
    assert len(env.written()["CarePlan"]) == 4


def test_a_dry_run_shows_what_would_be_superseded(env: SyncEnv) -> None:
    assert env.run().exit_code == 0
    [old] = [p for p in env.written()["CarePlan"] if subject_of(p) == "Patient/fail"]
    env.put(pcr("fail", date(2025, 6, 25), 0.09))
    result = env.run("--dry-run")
    assert f"revoke CarePlan/{old['id']}" in result.output
    assert by_status(env.written()["CarePlan"]) == {"draft": CML}


@pytest.mark.parametrize("mode", ["transaction", "batch"])
def test_both_write_modes_write_the_same_and_nothing_twice(env: SyncEnv, mode: str) -> None:
    assert env.run("--write-mode", mode).exit_code == 0
    written = env.written()
    assert len(written["RiskAssessment"]) == len(written["Provenance"]) == 4
    env.put(pcr("mmr", date(2025, 6, 20), 0.7))
    assert env.run("--write-mode", mode).exit_code == 0
    assert by_status(env.written()["CarePlan"]) == {"draft": CML, "revoked": ["Patient/mmr"]}
    assert_requests_follow(env.written())  # mmr's earlier proposal withdrawn with its CarePlan
    env.server.reset_stats()
    assert env.run("--write-mode", mode, "--full").exit_code == 0
    assert env.writes() == 0


def test_the_server_limit_on_transactions_is_learnt_once(env: SyncEnv) -> None:
    # Medplum's engine takes at most 8 entries in a transaction with conditional creates. The
    # first round holds each patient's RiskAssessment and proposed requests (2 entries for each
    # optimal responder extra-0..5, mmr and opt; 4 for warn, 5 for fail), the later rounds one
    # entry per patient.
    env.server.load(list(more_patients(6)))
    result = env.run("--write-mode", "transaction", "--batch-size", "10", "--concurrency", "1")
    assert result.exit_code == 0, result.output
    stats = env.server.stats()["byInteraction"]
    # Round 1 (25 entries) refused; its halves: extra-0..4 (10) refused, then 2 patients (4
    # entries) and 3 (6) accepted: the limit is 6 entries; extra-5, fail, mmr, opt, warn (15)
    # refused, then 2 (7) and 3 (8) accepted (as sent: a split is not cut to the limit): 7
    # transactions. Rounds 2 and 3 (CarePlans, then Provenances): 6 + 4 entries each, without
    # more refusals. 11 transactions.
    assert stats["transaction"] == 11
    assert "batch" not in stats
    assert len(env.written()["CarePlan"]) == len(env.written()["Provenance"]) == 10


def test_by_default_a_group_is_written_in_one_batch_per_layer(env: SyncEnv) -> None:
    env.server.load(list(more_patients(6)))
    result = env.run("--batch-size", "10", "--concurrency", "1")
    assert result.exit_code == 0, result.output
    stats = env.server.stats()["byInteraction"]
    # RiskAssessments, then CarePlans naming them, then the Provenances of both.
    assert stats["batch"] == 3
    assert "transaction" not in stats
    assert len(env.written()["CarePlan"]) == len(env.written()["Provenance"]) == 10


def test_bulk_export_gives_the_same_suggestions(env: SyncEnv, tmp_path: Path) -> None:
    result = env.run("--bulk", "--bulk-dir", str(tmp_path / "export"))
    assert result.exit_code == 0, result.output
    assert "bulk mode" in result.output
    assert "no CML evidence: 1" in result.output  # the patient without CML, from the export
    stats = env.server.stats()["byInteraction"]
    assert stats["export"] == 1
    # What the server holds of fhir-cml's (the drafts, the RiskAssessments), not the inputs.
    assert stats.get("search", 0) == 2
    assert by_status(env.written()["CarePlan"]) == {"draft": CML}
    assert (tmp_path / "export" / "manifest.json").exists()
    # Incremental: an export _since the mark, then only the changed patient is read.
    env.put(pcr("fail", date(2025, 6, 25), 0.09))
    env.server.reset_stats()
    result = env.run("--bulk")
    assert result.exit_code == 0, result.output
    assert "assessed           1" in result.output
    assert by_status(env.written()["CarePlan"]) == {"draft": CML, "revoked": ["Patient/fail"]}


def test_malformed_resources_of_one_patient_do_not_stop_the_others(env: SyncEnv) -> None:
    env.server.load(
        [
            {
                "resourceType": "Observation",
                "id": "opt-broken",
                "status": "final",
                "code": {"coding": [{"system": c.LOINC, "code": "69380-4"}]},
                "subject": {"reference": "Patient/opt"},
                "effectiveDateTime": "not a date",
                "valueQuantity": {"value": "a lot", "unit": "%"},
            },
            {
                "resourceType": "MedicationStatement",
                "id": "warn-broken",
                "status": "no-such-status",
                "subject": {"reference": "Patient/warn"},
                "medicationCodeableConcept": "imatinib",
            },
        ]
    )
    result = env.run()
    assert result.exit_code == 0, result.output
    assert by_status(env.written()["CarePlan"]) == {"draft": CML}
    assert "data issues" in result.output


def test_a_server_that_cannot_be_reached_is_a_clear_failure(tmp_path: Path) -> None:
    env = SyncEnv(None, "http://127.0.0.1:9/fhir", tmp_path / "s.sqlite3")  # type: ignore[arg-type]
    result = env.run("--retries", "0")
    assert result.exit_code == 3
    assert "cannot connect to the FHIR server" in result.output


def test_a_sync_started_while_another_runs_does_nothing_and_says_why(env: SyncEnv) -> None:
    """Two nightly runs overlapping: the second must not take the first for a killed one."""
    holder = StateStore(str(env.state))
    holder.create_all()
    try:
        with holder.run_lock(env.base.rstrip("/")):
            result = env.run()
            assert result.exit_code == 3
            assert "another fhir-cml sync of" in result.output
            assert env.server.stats()["requests"] == 0
            assert holder.runs() == []
    finally:
        holder.close()
    result = env.run()
    assert result.exit_code == 0, result.output
    assert "written            4" in result.output


def test_a_bulk_export_read_in_partitions_gives_the_same_suggestions(
    env: SyncEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export larger than a partition is read one partition of whole patients at a time."""
    monkeypatch.setattr(partition, "PARTITION_BYTES", 2_000)
    counts: list[int] = []

    def spy(*args: Any, **kwargs: Any) -> partition.Partitions:
        counts.append(args[2])
        return partition.write_partitions(*args, **kwargs)

    monkeypatch.setattr(streaming, "write_partitions", spy)
    result = env.run("--bulk")
    assert result.exit_code == 0, result.output
    assert counts
    assert counts[0] > 2
    assert "no CML evidence: 1" in result.output
    assert "assessed           4" in result.output
    assert by_status(env.written()["CarePlan"]) == {"draft": CML}
    assert sorted(subject_of(r) for r in env.written()["RiskAssessment"]) == CML


def test_an_earlier_as_of_date_is_a_new_reading_not_unchanged_inputs(env: SyncEnv) -> None:
    assert env.run().exit_code == 0
    before = current_suggestions(env.base, CML)
    result = env.run("--full", "--as-of", "2025-01-15")
    assert result.exit_code == 0, result.output
    assert "inputs unchanged" not in result.output
    assert "assessed           4" in result.output
    earlier = current_suggestions(env.base, CML)
    assert earlier != before  # the readings of January are the current ones now
    # And back to the later date: its suggestions become current again.
    assert env.run("--full").exit_code == 0
    assert current_suggestions(env.base, CML) == before


def test_another_guideline_is_a_new_reading(env: SyncEnv) -> None:
    assert env.run().exit_code == 0
    result = env.run("--guideline", "eln2013")
    assert result.exit_code == 0, result.output
    assert "inputs unchanged" not in result.output
    assert "superseding an earlier suggestion" in result.output
    current_suggestions(env.base, CML)
