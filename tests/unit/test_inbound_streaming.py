"""Input of any size in parts (stream_paths, map_paths): the same readings whatever the order of
files and lines, partitioned or not, in worker processes or not; damaged exports give issues."""

from __future__ import annotations

import json
import multiprocessing
import random
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from fhir_cml.domain import assess
from fhir_cml.domain.model import PatientRecord
from fhir_cml.domain.vocabulary import Guideline, IssueCode, Severity
from fhir_cml.fhir.inbound import LoadResult, load_paths, map_paths, stream_paths, streaming
from fhir_cml.fhir.inbound.loader import MAX_FILE_ISSUES, Reader
from fhir_cml.fhir.inbound.partition import Partitions
from fhir_cml.reporting import patient_contract
from tests.unit.inbound_builders import OPTIONS, bcr, obs, patient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
AS_OF = date(2025, 6, 30)
SMALL = 4_000  # bytes per partition: the examples make dozens of partitions


def readings(records: list[PatientRecord]) -> dict[str, dict[str, Any]]:
    """What a clinician would see of each patient (the JSON contract's entry)."""
    return {r.patient: patient_contract(assess(r, AS_OF, Guideline.ELN2020)) for r in records}


def streamed(paths: list[Path], partition_bytes: int | None = None) -> LoadResult:
    """All parts of stream_paths, records included, as one LoadResult."""
    total = LoadResult([], [])
    for part in stream_paths(paths, OPTIONS, partition_bytes=partition_bytes):
        total.add(part)
        total.records += part.records
        total.resources_by_patient.update(part.resources_by_patient)
    return total


def example_resources() -> list[dict[str, Any]]:
    return [entry.resource for entry in Reader().read_paths([EXAMPLES])]


def write_shuffled(directory: Path, resources: list[dict[str, Any]], seed: int) -> None:
    """The resources over five NDJSON files in random order, some lines spaced out as Python's
    json writes them (not routed by a look at the bytes), and one patient's subjects given by
    identifier (resolved only once every Patient is known)."""
    rng = random.Random(seed)
    shuffled = list(resources)
    rng.shuffle(shuffled)
    by_identifier = {
        r["id"]: r["identifier"][0]
        for r in resources
        if r["resourceType"] == "Patient" and r.get("identifier")
    }
    chosen = sorted(by_identifier)[seed % len(by_identifier)]
    files = [(directory / f"part-{n}.ndjson").open("w") for n in range(5)]
    try:
        for resource in shuffled:
            subject = resource.get("subject")
            if subject == {"reference": f"Patient/{chosen}"}:
                ident = by_identifier[chosen]
                resource = {
                    **resource,
                    "subject": {"identifier": {"system": ident["system"], "value": ident["value"]}},
                }
            spaced = rng.random() < 0.3
            line = json.dumps(resource) if spaced else json.dumps(resource, separators=(",", ":"))
            rng.choice(files).write(line + "\n")
    finally:
        for handle in files:
            handle.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_shuffled_export_gives_the_same_readings_partitioned_or_not(
    tmp_path: Path, seed: int
) -> None:
    expected = readings(load_paths([EXAMPLES], OPTIONS).records)
    assert len(expected) == len(list(EXAMPLES.glob("*.json")))  # one patient per file
    write_shuffled(tmp_path, example_resources(), seed)
    whole = load_paths([tmp_path], OPTIONS)
    assert readings(whole.records) == expected
    parts = streamed([tmp_path], SMALL)
    assert readings(parts.records) == expected
    assert sorted(r.patient for r in parts.records) == sorted(expected)  # each patient once
    assert (parts.files, parts.resources, parts.unreadable, parts.skipped_patients) == (
        whole.files,
        whole.resources,
        whole.unreadable,
        whole.skipped_patients,
    )
    assert parts.issues == whole.issues
    assert {i.code for i in whole.issues} <= {IssueCode.UNSUPPORTED_TYPE}  # the ConceptMaps
    assert {k: len(v) for k, v in parts.resources_by_patient.items()} == {
        k: len(v) for k, v in whole.resources_by_patient.items()
    }


def test_worker_processes_give_the_same_parts_in_the_same_order(tmp_path: Path) -> None:
    write_shuffled(tmp_path, example_resources(), 4)

    def work(part: LoadResult) -> list[str]:
        return sorted(json.dumps(v, sort_keys=True) for v in readings(part.records).values())

    alone = list(map_paths([tmp_path], OPTIONS, work, jobs=1, partition_bytes=SMALL))
    forked = list(map_paths([tmp_path], OPTIONS, work, jobs=2, partition_bytes=SMALL))
    assert len(alone) > 5
    assert [result for _, result in forked] == [result for _, result in alone]
    assert [p.resources for p, _ in forked] == [p.resources for p, _ in alone]
    assert all(p.records == [] for p, _ in forked)  # let go of once worked on
    assert sum(len(r) for _, r in alone) == len(list(EXAMPLES.glob("*.json")))


def test_a_worker_starts_when_any_ends_and_results_stay_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Partition 0 runs until partition 2 has started: that happens only if the worker freed by
    partition 1 is reused at once, not when partition 0 (the next in order) ends."""

    def job_part(job: streaming._Job, retain: list[object] | None = None) -> Any:
        def run(number: int) -> tuple[LoadResult, list[Any], Any]:
            (tmp_path / f"started-{number}").touch()
            waited = 0
            while number == 0 and not (tmp_path / "started-2").exists() and waited < 500:
                time.sleep(0.01)
                waited += 1
            return LoadResult([], []), [], (number, (tmp_path / "started-2").exists())

        return run

    monkeypatch.setattr(streaming, "job_part", job_part)
    job = streaming._Job(Partitions(tmp_path, 4, []), OPTIONS, False, None)
    results = [result for _, _, result in streaming._in_workers(job, 2)]
    assert [number for number, _ in results] == [0, 1, 2, 3]
    assert results[0] == (0, True)  # partition 2 started while partition 0 still ran
    assert not multiprocessing.active_children()


def patients_of(part: LoadResult) -> int:
    return len(part.records)


def test_a_run_stopped_half_way_leaves_no_worker_and_no_partition(tmp_path: Path) -> None:
    export, work_dir = tmp_path / "export", tmp_path / "work"
    export.mkdir()
    work_dir.mkdir()
    write_shuffled(export, example_resources(), 5)
    parts = map_paths(
        [export], OPTIONS, patients_of, jobs=2, work_dir=work_dir, partition_bytes=SMALL
    )
    next(parts)
    workers = multiprocessing.active_children()
    assert workers
    assert list(work_dir.iterdir())  # the partitions
    parts.close()  # as when the run is stopped (Ctrl-C, SIGTERM, an error)
    assert not any(worker.is_alive() for worker in workers)
    assert list(work_dir.iterdir()) == []


def bulk_export(directory: Path, patients: int = 12) -> None:
    """Patient and Observation files of a small Bulk export, one PCR per patient."""
    directory.mkdir(exist_ok=True)
    with (directory / "Patient.ndjson").open("w") as handle:
        for n in range(patients):
            handle.write(json.dumps(patient(f"p{n}", birthDate="1970-01-01")) + "\n")
    with (directory / "Observation.ndjson").open("w") as handle:
        for n in range(patients):
            pcr = bcr(0.05, oid=f"pcr-{n}", day="2025-03-01", subject=f"Patient/p{n}")
            handle.write(json.dumps(pcr, separators=(",", ":")) + "\n")


@pytest.mark.parametrize("partition_bytes", [None, 600])
def test_a_resource_whose_patient_has_no_patient_resource(
    tmp_path: Path, partition_bytes: int | None
) -> None:
    bulk_export(tmp_path)
    with (tmp_path / "Observation.ndjson").open("a") as handle:
        ghost = bcr(0.2, oid="pcr-ghost", day="2025-03-01", subject="Patient/ghost")
        handle.write(json.dumps(ghost) + "\n")
    loaded = streamed([tmp_path], partition_bytes)
    assert sorted(r.patient for r in loaded.records) == sorted(
        [*(f"Patient/p{n}" for n in range(12)), "Patient/ghost"]
    )
    [issue] = loaded.issues
    assert issue.resource == "Patient/ghost"
    assert issue.severity is Severity.WARNING
    assert "no Patient resource" in issue.message
    [ghost_record] = [r for r in loaded.records if r.patient == "Patient/ghost"]
    assert ghost_record.birth_date is None


@pytest.mark.parametrize("partition_bytes", [None, 600])
@pytest.mark.parametrize("cut", [40, 200])  # before the subject, and after it
def test_a_file_cut_short_mid_line(tmp_path: Path, partition_bytes: int | None, cut: int) -> None:
    bulk_export(tmp_path)
    path = tmp_path / "Observation.ndjson"
    data = path.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: last + cut])  # the last line cut, no newline after it
    loaded = streamed([tmp_path], partition_bytes)
    [issue] = [i for i in loaded.issues if i.code is IssueCode.UNREADABLE]
    assert issue.severity is Severity.ERROR
    assert f"{path} line 12 is not valid JSON" in issue.message
    assert "cut short" in issue.message
    assert loaded.unreadable == 1
    assert loaded.resources == 12 + 11
    # The patient whose result was lost is read from what is left (no CML evidence: skipped).
    assert len(loaded.records) == 11
    assert loaded.skipped_patients == 1


@pytest.mark.parametrize("partition_bytes", [None, 2_000])
def test_problems_of_a_file_are_listed_up_to_a_limit_then_counted(
    tmp_path: Path, partition_bytes: int | None
) -> None:
    bulk_export(tmp_path, 2)
    bad = '{"resourceType":"Observation","subject":{"reference":"Patient/p1"},"status":\n'
    (tmp_path / "Broken.ndjson").write_text(bad * (MAX_FILE_ISSUES + 30))
    loaded = streamed([tmp_path], partition_bytes)
    unreadable = [i for i in loaded.issues if i.code is IssueCode.UNREADABLE]
    assert len(unreadable) == MAX_FILE_ISSUES + 1
    assert "30 more unreadable lines" in unreadable[-1].message
    assert loaded.unreadable == MAX_FILE_ISSUES + 30
    assert len(loaded.records) == 2


def test_types_not_read_are_counted_in_one_issue_either_way(tmp_path: Path) -> None:
    bulk_export(tmp_path)
    encounter = {"resourceType": "Encounter", "id": "e1", "subject": {"reference": "Patient/p1"}}
    (tmp_path / "Encounter.ndjson").write_text((json.dumps(encounter) + "\n") * 3)
    whole = load_paths([tmp_path], OPTIONS)
    parts = streamed([tmp_path], 600)
    assert [i.message for i in parts.issues] == [i.message for i in whole.issues]
    assert "Encounter (3)" in parts.issues[0].message
    assert parts.resources == whole.resources == 12 + 12 + 3


def test_resources_without_a_patient_are_reported_once(tmp_path: Path) -> None:
    bulk_export(tmp_path)
    lost = obs("69380-4", oid="lost", valueQuantity={"value": 1, "unit": "%"})
    lost.pop("subject", None)
    (tmp_path / "Lost.ndjson").write_text(json.dumps(lost) + "\n")
    whole = load_paths([tmp_path], OPTIONS)
    parts = streamed([tmp_path], 600)
    assert [i.code for i in parts.issues] == [IssueCode.NO_SUBJECT]
    assert [i.message for i in parts.issues] == [i.message for i in whole.issues]


def test_missing_input_and_no_resources_say_so_as_before(tmp_path: Path) -> None:
    (tmp_path / "empty.ndjson").write_text("\n\n")
    for paths in ([], [tmp_path / "absent"], [tmp_path]):
        whole = load_paths(paths, OPTIONS)
        parts = streamed(paths, 10)
        assert [i.message for i in parts.issues] == [i.message for i in whole.issues]
        assert parts.issues
