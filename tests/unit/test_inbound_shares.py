"""The first pass in shares (partition.py): large NDJSON files cut at line starts and routed by
several processes write the same partitions, record for record and in the same order, as one
pass over the input; problems keep their line numbers and the per-file limit."""

from __future__ import annotations

import errno
import json
import multiprocessing
import random
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_cml.fhir.inbound.forks import Forks, TaskFailed
from fhir_cml.fhir.inbound.loader import MAX_FILE_ISSUES, Reader
from fhir_cml.fhir.inbound.partition import _subject_key, read_partition, write_partitions
from tests.unit.test_inbound_streaming import example_resources, write_shuffled

SHARE = 3_000  # bytes: every file of the examples is cut into shares
COUNT = 8


def first_pass(export: Path, work: Path, jobs: int) -> dict[str, Any]:
    """Everything the partitions hold and the first pass reported, for comparison."""
    reader = Reader()
    files = reader.list_files([export])
    parts = write_partitions(reader, files, COUNT, work, jobs=jobs, share_bytes=SHARE)
    try:
        partitions = []
        for number in range(parts.count):
            part_reader = Reader()
            entries = [
                (e.rtype, e.origin, e.index, e.full_url, e.resource)
                for e in read_partition(part_reader, parts, number)
            ]
            part_reader.close()
            partitions.append((entries, [i.message for i in part_reader.issues]))
        shares = len(parts.offsets)
        reader.close()
        return {
            "partitions": partitions,
            "issues": [i.message for i in reader.issues],
            "counts": (reader.files, reader.resources, reader.unreadable, parts.patients),
            "unsupported": parts.unsupported,
            "medications": [m.resource for m in parts.medications],
            "shares": shares,
        }
    finally:
        parts.remove()


def compare(export: Path, work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    work.mkdir(exist_ok=True)
    alone = first_pass(export, work, 1)
    shared = first_pass(export, work, 2)
    assert alone["shares"] == 1
    for key in ("partitions", "issues", "counts", "unsupported", "medications"):
        assert shared[key] == alone[key], key
    assert sum(len(entries) for entries, _ in alone["partitions"]) > 50
    assert not list(work.iterdir())  # every file removed
    return alone, shared


@pytest.mark.parametrize("seed", [1, 2])
def test_shares_write_the_same_partitions_as_one_pass(tmp_path: Path, seed: int) -> None:
    """Shuffled examples: lines routed by their bytes, lines parsed, subjects given by identifier
    (resolved once every Patient is known), types not read, Medications shared by all."""
    export = tmp_path / "export"
    export.mkdir()
    write_shuffled(export, example_resources(), seed)
    encounter = {"resourceType": "Encounter", "id": "e1", "subject": {"reference": "Patient/x"}}
    with (export / "part-1.ndjson").open("a") as handle:
        handle.write((json.dumps(encounter) + "\n") * 3)
    _, shared = compare(export, tmp_path / "work")
    assert shared["shares"] > 5  # the files were cut into shares


def test_problems_keep_their_line_numbers_and_the_per_file_limit(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    resources = example_resources()
    rng = random.Random(7)
    lines = [json.dumps(r, separators=(",", ":")) for r in resources if r.get("id")]
    # A Patient cut short is met by the first pass; an Observation, routed by its bytes, when
    # its partition is read. Both are spread over every share of the file.
    bad_patient = '{"resourceType":"Patient","id":"cut","birthDate":'
    bad_result = '{"resourceType":"Observation","subject":{"reference":"Patient/p1"},"status":'
    for bad in [bad_patient] * (MAX_FILE_ISSUES + 30) + [bad_result] * 20:
        lines.insert(rng.randrange(len(lines) + 1), bad)
    (export / "all.ndjson").write_text("\n".join(lines) + "\n")
    alone, shared = compare(export, tmp_path / "work")
    assert shared["shares"] > 1
    listed = [m for m in alone["issues"] if "not valid JSON" in m]
    assert len(listed) == MAX_FILE_ISSUES
    assert "30 more unreadable lines" in alone["issues"][-1]
    later = [m for _, issues in alone["partitions"] for m in issues]
    assert len(later) == 20
    for messages, bad in ((listed, bad_patient), (later, bad_result)):
        numbers = [int(m.split(" line ")[1].split()[0]) for m in messages]
        assert all(lines[n - 1] == bad for n in numbers)  # each names its own line


def test_a_patient_without_an_id_is_read_in_one_pass(tmp_path: Path) -> None:
    """Its key may come from a Patient read before it, in another share: the shares are given
    up and the input read in one pass, with the same result."""
    export = tmp_path / "export"
    export.mkdir()
    write_shuffled(export, example_resources(), 3)
    nameless = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:mrn", "value": "no-id"}],
        "birthDate": "1960-01-01",
    }
    with (export / "part-4.ndjson").open("a") as handle:
        handle.write(json.dumps(nameless) + "\n")
    _, shared = compare(export, tmp_path / "work")
    assert shared["shares"] == 1


def test_forked_tasks_give_results_by_key_and_raise_what_failed() -> None:
    forks = Forks()
    try:
        forks.start(1, lambda: {"n": 1})
        forks.start(2, lambda: 1 / 0)
        forks.start(3, _full_disk)
        assert forks.result(1) == {"n": 1}
        with pytest.raises(TaskFailed, match="ZeroDivisionError"):
            forks.result(2)
        with pytest.raises(OSError, match="No space left") as raised:
            forks.result(3)
        assert raised.value.errno == errno.ENOSPC
        assert len(forks) == 0
    finally:
        forks.stop()


def _full_disk() -> None:
    raise OSError(errno.ENOSPC, "No space left on device", "/work/0001.part")


class _Interrupt:
    """A progress callback that stops the run as Ctrl-C or SIGTERM would, once it has begun."""

    def partitioning(self, done: int, total: int) -> None:
        raise KeyboardInterrupt

    def partitioned(self, patients: int) -> None:
        pass


def test_a_first_pass_stopped_in_shares_leaves_no_process_and_no_file(tmp_path: Path) -> None:
    export, work = tmp_path / "export", tmp_path / "work"
    export.mkdir()
    work.mkdir()
    write_shuffled(export, example_resources(), 6)
    reader = Reader()
    files = reader.list_files([export])
    before = set(multiprocessing.active_children())
    with pytest.raises(KeyboardInterrupt):
        write_partitions(reader, files, COUNT, work, _Interrupt(), jobs=2, share_bytes=SHARE)
    assert set(multiprocessing.active_children()) <= before
    assert list(work.iterdir()) == []


def test_stopping_forked_tasks_ends_them() -> None:
    forks = Forks()
    forks.start(1, lambda: time.sleep(60))
    [(process, _)] = forks._running.values()
    forks.stop()
    assert not process.is_alive()
    assert len(forks) == 0


_REFERENCES = st.sampled_from(["Patient/a", "Patient/b-2", "Patient/c.3", "#p", "Group/g"])
_SUBJECTS = st.one_of(st.none(), _REFERENCES.map(lambda r: {"reference": r}))


@st.composite
def _lines(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    """A resource of a type routed by its bytes, members in any order, maybe with contained
    resources that have subjects of their own; written compact or spaced."""
    text = draw(st.sampled_from(["spleen", "subject"]))  # a value that reads like the member
    members: dict[str, Any] = {"id": "o1", "status": "final", "code": {"text": text}}
    subject = draw(_SUBJECTS)
    if subject is not None:
        members["subject"] = subject
    contained = draw(st.lists(_SUBJECTS, max_size=2))
    if contained:
        members["contained"] = [
            {"resourceType": "Observation", "id": f"c{n}", **({"subject": s} if s else {})}
            for n, s in enumerate(contained)
        ]
    order = draw(st.permutations(sorted(members)))
    resource = {"resourceType": "Observation", **{name: members[name] for name in order}}
    spaced = draw(st.booleans())
    line = json.dumps(resource, separators=(", ", ": ") if spaced else (",", ":"))
    return line.encode(), resource


@settings(max_examples=300, deadline=None)
@given(_lines())
def test_a_line_is_routed_by_its_bytes_only_to_its_own_subject(
    case: tuple[bytes, dict[str, Any]],
) -> None:
    """The key read from the bytes is the resource's own subject (a contained resource's never);
    where it cannot be told, None: the line is parsed instead."""
    line, resource = case
    key = _subject_key(line)
    own = resource.get("subject", {}).get("reference")
    assert key is None or key.decode() == own
    plain = "contained" not in resource and resource["code"]["text"] != "subject"
    if own is not None and own.startswith("Patient/") and plain:
        assert key == own.encode()  # the common line is routed unparsed


def test_a_line_naming_the_subject_twice_is_parsed() -> None:
    """JSON readers keep the last of two members of one name: the bytes cannot say which."""
    line = (
        b'{"resourceType":"Observation","subject":{"reference":"Patient/a"},"id":"o",'
        b'"subject":{"reference":"Patient/b"}}'
    )
    assert _subject_key(line) is None
