"""Reading files: Bundles, single resources, NDJSON, directories, Bulk exports, and bad input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from fhir_cml.domain.vocabulary import IssueCode, Severity
from fhir_cml.fhir.inbound import load_paths
from fhir_cml.fhir.inbound.loader import Reader, size_text
from tests.unit.inbound_builders import DATA, OPTIONS, obs


def _read(*paths: Path, limit: int | None = None) -> tuple[Reader, list[str]]:
    reader = Reader() if limit is None else Reader(limit)
    sources = [entry.source for entry in reader.read_paths(paths)]
    return reader, sources


def test_bundle_entries_are_read_with_their_full_urls() -> None:
    reader = Reader()
    entries = list(reader.read_path(DATA / "bundle-collection-urn.json"))
    assert len(entries) == 7
    assert entries[0].full_url == "urn:uuid:0b5c1f3e-1111-4c4c-9c9c-000000000001"
    assert entries[0].source.endswith("bundle-collection-urn.json entry 1")
    assert (reader.files, reader.resources, reader.unreadable, reader.issues) == (1, 7, 0, [])


def test_nested_bundles_are_flattened() -> None:
    reader = Reader()
    entries = list(reader.read_path(DATA / "nested-searchset.json"))
    types = [e.resource["resourceType"] for e in entries]
    assert types == ["Patient", "Observation", "Observation", "OperationOutcome"]
    assert entries[1].source.endswith("nested-searchset.json entry 2 entry 1")


def test_single_resource_file() -> None:
    reader, sources = _read(DATA / "single-observation.json")
    assert len(sources) == 1
    assert reader.resources == 1


def test_ndjson_with_a_bad_line_goes_on_reading() -> None:
    reader, sources = _read(DATA / "lines-with-bad-line.ndjson")
    assert [s.rsplit(" ", 1)[-1] for s in sources] == ["1", "5"]
    messages = [i.message for i in reader.issues]
    assert len(messages) == 2
    assert "lines-with-bad-line.ndjson line 2 is not valid JSON" in messages[0]
    assert "lines-with-bad-line.ndjson line 4 is not a FHIR resource" in messages[1]
    assert reader.unreadable == 2
    assert all(i.code is IssueCode.UNREADABLE for i in reader.issues)


def test_ndjson_is_streamed_line_by_line(tmp_path: Path) -> None:
    """An NDJSON file far over the one-document limit is read, as long as each line is under it."""
    path = tmp_path / "Observation.ndjson"
    line = json.dumps(obs("69380-4", valueQuantity={"value": 1, "unit": "%"}))
    path.write_text("\n".join([line] * 200) + "\n")
    reader, sources = _read(path, limit=len(line) + 10)
    assert len(sources) == 200
    assert reader.issues == []


def test_ndjson_line_over_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.ndjson"
    path.write_text(json.dumps({"resourceType": "Patient", "id": "x" * 500}) + "\n")
    reader, sources = _read(path, limit=100)
    assert sources == []
    assert "line 1 is" in reader.issues[0].message


def test_json_document_over_the_limit_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "entry": [], "pad": "x" * 3000}))
    reader, sources = _read(path, limit=1024)
    assert sources == []
    (problem,) = reader.issues
    assert problem.severity is Severity.ERROR
    assert str(path) in problem.message
    assert (
        "is 3 KB, over the 1 KB limit for one JSON document; export it as NDJSON" in problem.message
    )


def test_default_limit_is_64_mib() -> None:
    assert Reader().max_json_bytes == 64 * 1024 * 1024
    assert OPTIONS.max_json_bytes == 64 * 1024 * 1024


@pytest.mark.parametrize(
    ("size", "text"), [(200 * 1024 * 1024, "200 MB"), (64 * 1024 * 1024, "64 MB"), (5, "5 bytes")]
)
def test_size_text(size: int, text: str) -> None:
    assert size_text(size) == text


def test_not_json() -> None:
    reader, sources = _read(DATA / "not-json.json")
    assert sources == []
    assert "not-json.json is not valid JSON" in reader.issues[0].message
    assert reader.unreadable == 1


def test_garbage_bundle_entries_name_the_entry() -> None:
    reader, sources = _read(DATA / "garbage-entries.json")
    assert len(sources) == 1
    messages = [i.message for i in reader.issues]
    assert any("entry 1 is not a Bundle entry (a JSON number)" in m for m in messages)
    assert any("entry 2 has no resource" in m for m in messages)
    assert any("entry 3 is not a FHIR resource (a JSON string" in m for m in messages)
    assert any("entry 4 is not a FHIR resource (it has no resourceType)" in m for m in messages)
    assert reader.unreadable == 4


def test_bundle_entry_that_is_not_a_list(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "entry": {"resource": {}}}))
    reader, _ = _read(path)
    assert "Bundle.entry is not a list" in reader.issues[0].message


def test_json_array_of_resources() -> None:
    reader, sources = _read(DATA / "array-of-resources.json")
    assert len(sources) == 2
    assert "item 3 is not a FHIR resource" in reader.issues[0].message


def test_json_file_holding_ndjson_is_read_line_by_line() -> None:
    reader, sources = _read(DATA / "ndjson-in-json.json")
    assert len(sources) == 2
    assert reader.issues == []


def test_directory_is_read_recursively_and_ignores_other_files() -> None:
    reader, sources = _read(DATA / "bulk")
    assert reader.files == 6  # five NDJSON files and the manifest, not README.txt
    assert any("part2" in s for s in sources)
    assert reader.issues == []  # the Bulk Data manifest is not an error


def test_missing_path() -> None:
    reader, sources = _read(Path("/nonexistent/fhir-cml/input.json"))
    assert sources == []
    assert "does not exist" in reader.issues[0].message
    assert reader.issues[0].severity is Severity.ERROR


def test_empty_directory(tmp_path: Path) -> None:
    reader, _ = _read(tmp_path)
    assert "no .json or .ndjson files" in reader.issues[0].message


def test_directory_named_like_a_file_is_walked(tmp_path: Path) -> None:
    path = tmp_path / "dir.json"
    path.mkdir()
    (path / "inner.txt").write_text("x")
    reader, _ = _read(path)
    assert "no .json or .ndjson files" in reader.issues[0].message


@pytest.mark.parametrize(
    ("depth", "said"),
    [
        (100_000, "not valid JSON"),  # beyond the parser's limit
        (1000, "nested too deeply"),  # within it: not walked to the end either
    ],
)
def test_deeply_nested_json(tmp_path: Path, depth: int, said: str) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * depth + "]" * depth)
    reader, sources = _read(path)
    assert sources == []
    assert said in reader.issues[0].message


def test_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.ndjson"
    path.write_bytes(b'{"resourceType": "Patient", "name": "\xe9"}\n')
    reader, sources = _read(path)
    assert sources == []
    assert "line 1 is not valid JSON" in reader.issues[0].message


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"resourceType": "Patient", "id": "1"}).encode())
    _, sources = _read(path)
    assert len(sources) == 1


def test_load_paths_reports_counts_and_nothing_raises(tmp_path: Path) -> None:
    options = replace(OPTIONS, max_json_bytes=10_000)
    result = load_paths(
        [DATA / "lines-with-bad-line.ndjson", DATA / "not-json.json", tmp_path / "missing"],
        options,
    )
    assert result.files == 2
    assert result.resources == 2
    assert result.unreadable == 3
    assert [r.patient for r in result.records] == ["Patient/pat-3"]


def test_load_paths_without_input() -> None:
    result = load_paths([], OPTIONS)
    assert result.records == []
    assert result.issues[0].message == "No input given."


def test_load_paths_with_files_but_no_resources(tmp_path: Path) -> None:
    (tmp_path / "empty.ndjson").write_text("\n\n")
    result = load_paths([tmp_path], OPTIONS)
    assert "No FHIR resources found" in result.issues[0].message


def test_a_line_cut_short_says_so(tmp_path: Path) -> None:
    path = tmp_path / "Observation.ndjson"
    path.write_text('{"resourceType": "Observation", "id": "a"}\n{"resourceType": "Observ')
    reader, sources = _read(path)
    assert len(sources) == 1
    [issue] = reader.issues
    assert "line 2 is not valid JSON" in issue.message
    assert "cut short" in issue.message
