"""Reports written patient by patient: the same documents as the whole-list renderers, and a file
that appears only once complete."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_cml.domain import Assessment, assess
from fhir_cml.domain.vocabulary import Guideline
from fhir_cml.fhir.inbound import MappingOptions, load_paths
from fhir_cml.reporting import LoadSummary, to_contract, to_text
from fhir_cml.reporting.stream import (
    ContractReport,
    JsonDocument,
    NdjsonLines,
    Sink,
    TextReport,
    encode,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
AS_OF = date(2025, 6, 30)
SUMMARY = LoadSummary(files=20, resources=400, unreadable=1, skipped=2)


@pytest.fixture(scope="module")
def assessments() -> list[Assessment]:
    loaded = load_paths([EXAMPLES], MappingOptions(now=datetime(2025, 7, 1, tzinfo=UTC)))
    return [assess(r, AS_OF, Guideline.ELN2020) for r in loaded.records]


def written(write: Any) -> bytes:
    out = io.BytesIO()
    write(Sink(stream=out))
    return out.getvalue()


@pytest.mark.parametrize(
    ("head", "items", "tail"),
    [
        ({"a": 1, "b": "é"}, [], {"c": [1, 2], "d": {}}),
        ({"a": 1}, [{"x": [1, {"y": None}], "z": True}, {"x": []}, 3, "s"], {"c": []}),
        ({}, [{"x": 1}], {}),
    ],
)
def test_a_json_document_is_laid_out_as_json_dumps_does(
    head: dict[str, Any], items: list[Any], tail: dict[str, Any]
) -> None:
    def write(sink: Sink) -> None:
        document = JsonDocument(sink, head, "items")
        for item in items:
            document.add(item)
        document.finish(tail)

    expected = json.dumps({**head, "items": items, **tail}, indent=2, ensure_ascii=False)
    assert written(write).decode() == expected + "\n"


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)  # what orjson encodes
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=12,
)


@given(_JSON)
def test_an_item_encoded_in_place_is_the_item_encoded_then_indented(item: Any) -> None:
    assert JsonDocument.encode_piece(item) == JsonDocument.piece(encode(item))


def reported(kind: type[ContractReport | TextReport], assessments: list[Assessment]) -> bytes:
    """What a report writes for these assessments, each rendered and added as assess does."""

    def write(sink: Sink) -> None:
        report = kind(sink, as_of=AS_OF, guideline=Guideline.ELN2020)
        for a in assessments:
            report.add(report.render(a))  # type: ignore[arg-type]
        report.finish(SUMMARY, [])

    return written(write)


def test_the_contract_report_is_the_contract(assessments: list[Assessment]) -> None:
    streamed = json.loads(reported(ContractReport, assessments))
    whole = to_contract(assessments, as_of=AS_OF, guideline=Guideline.ELN2020, load_summary=SUMMARY)
    assert streamed == json.loads(json.dumps(whole))
    assert streamed["summary"]["assessed"] == len(assessments) == len(list(EXAMPLES.glob("*.json")))
    assert streamed["summary"]["patients"] == len(assessments) + 2


def test_the_text_report_is_the_text(assessments: list[Assessment]) -> None:
    whole = to_text(assessments, as_of=AS_OF, guideline=Guideline.ELN2020, load_summary=SUMMARY)
    assert reported(TextReport, assessments).decode() == whole


def test_ndjson_lines() -> None:
    def write(sink: Sink) -> None:
        lines = NdjsonLines(sink)
        lines.add({"a": "é\nb"})
        lines.add_encoded(b'{"b":2}')
        lines.finish()

    assert written(write).decode().splitlines() == ['{"a":"é\\nb"}', '{"b":2}']


def test_a_file_appears_under_its_name_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    target.write_text("the previous result")
    sink = Sink(target)
    sink.write(b"half a docu")
    assert target.read_text() == "the previous result"
    sink.abort()
    assert target.read_text() == "the previous result"  # a failed run loses nothing
    assert list(tmp_path.iterdir()) == [target]
    sink = Sink(target)
    sink.write(b"{}\n")
    sink.commit()
    assert target.read_text() == "{}\n"
    assert list(tmp_path.iterdir()) == [target]


def test_a_stream_is_left_as_written_when_a_run_fails() -> None:
    out = io.BytesIO()
    document = JsonDocument(Sink(stream=out), {"a": 1}, "items")
    assert out.getvalue() == b""  # nothing before the first item
    document.add({"x": 1})
    document.sink.abort()
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.getvalue())  # unterminated: no reader takes it for a whole document


@pytest.mark.parametrize("to_file", [True, False])  # the kernel copies, or this process does
@pytest.mark.parametrize("split", [0, 1, 2, 4])
def test_items_laid_out_by_workers_give_the_same_document(
    tmp_path: Path, assessments: list[Assessment], to_file: bool, split: int
) -> None:
    """Pieces laid out in worker processes (in files, or as bytes) and added a part at a time
    give the document byte for byte, whatever the parts and the first of them."""
    expected = reported(ContractReport, assessments)
    parts = [assessments[:split], assessments[split : split + 3], assessments[split + 3 :]]
    target = tmp_path / "out.json"
    out = io.BytesIO()
    sink = Sink(target) if to_file else Sink(stream=out)
    report = ContractReport(sink, as_of=AS_OF, guideline=Guideline.ELN2020)
    for number, part in enumerate(parts):
        pieces = [report.piece(report.render(a)) for a in part]
        joined = b"".join(piece for piece, _ in pieces)
        count = sum(n for _, n in pieces)
        if number % 2:
            report.add_pieces(joined, count)
        else:
            spooled = tmp_path / f"part-{number}"
            spooled.write_bytes(joined)
            report.add_pieces(spooled, count)
    report.finish(SUMMARY, [])
    assert (target.read_bytes() if to_file else out.getvalue()) == expected


def test_ndjson_pieces_from_a_file(tmp_path: Path) -> None:
    spooled = tmp_path / "lines"
    spooled.write_bytes(NdjsonLines.piece(b'{"a":1}') + NdjsonLines.piece(b'{"b":2}'))

    def write(sink: Sink) -> None:
        lines = NdjsonLines(sink)
        lines.add_encoded(b'{"z":0}')
        lines.add_pieces(spooled, 2)
        lines.add_pieces(NdjsonLines.piece(b'{"c":3}'), 1)
        lines.finish()

    assert written(write).decode().splitlines() == ['{"z":0}', '{"a":1}', '{"b":2}', '{"c":3}']
