"""Reports written patient by patient: the same documents as the whole-list renderers, and a file
that appears only once complete."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

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


def test_the_contract_report_is_the_contract(assessments: list[Assessment]) -> None:
    def write(sink: Sink) -> None:
        report = ContractReport(sink, as_of=AS_OF, guideline=Guideline.ELN2020)
        for a in assessments:
            report.add(report.render(a))
        report.finish(SUMMARY, [])

    streamed = json.loads(written(write))
    whole = to_contract(assessments, as_of=AS_OF, guideline=Guideline.ELN2020, load_summary=SUMMARY)
    assert streamed == json.loads(json.dumps(whole))
    assert streamed["summary"]["assessed"] == len(assessments) == len(list(EXAMPLES.glob("*.json")))
    assert streamed["summary"]["patients"] == len(assessments) + 2


def test_the_text_report_is_the_text(assessments: list[Assessment]) -> None:
    def write(sink: Sink) -> None:
        report = TextReport(sink, as_of=AS_OF, guideline=Guideline.ELN2020)
        for a in assessments:
            report.add(report.render(a))
        report.finish(SUMMARY, [])

    whole = to_text(assessments, as_of=AS_OF, guideline=Guideline.ELN2020, load_summary=SUMMARY)
    assert written(write).decode() == whole


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
