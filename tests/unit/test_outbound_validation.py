"""The quick walk of fhir_cml.fhir.outbound.validation accepts nothing the fhir.resources models
refuse: on what the builders make of every example, and on those resources broken at random."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from fhir_cml.domain import assess
from fhir_cml.errors import OperationOutcomeError
from fhir_cml.fhir.inbound import MappingOptions, load_paths
from fhir_cml.fhir.outbound import build, validate
from fhir_cml.fhir.outbound.validation import conforms

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOW = datetime(2025, 6, 30, 12, tzinfo=UTC)


@cache
def corpus() -> tuple[dict[str, Any], ...]:
    loaded = load_paths([EXAMPLES], MappingOptions(now=NOW))
    out: list[dict[str, Any]] = []
    for record in loaded.records:
        out += build(assess(record, date(2025, 6, 30)), NOW).resources
    return tuple(out)


def models_accept(resource: dict[str, Any]) -> bool:
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except (ValidationError, ValueError, TypeError, KeyError):
        return False
    return True


def test_what_the_builders_make_takes_the_quick_walk() -> None:
    for resource in corpus():
        assert conforms(resource), resource["resourceType"]
        assert models_accept(resource)


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (
            lambda r: r.__setitem__("occurrenceDateTime", "2025-13-01"),
            "RiskAssessment.occurrenceDateTime",
        ),
        (lambda r: r.__setitem__("status", 3), "RiskAssessment.status"),
        (lambda r: r.__setitem__("surprise", True), "RiskAssessment.surprise"),
        (lambda r: r.pop("subject"), "RiskAssessment.subject"),
        (lambda r: r.__setitem__("occurrencePeriod", {"start": "2025-06-30"}), "RiskAssessment"),
        (lambda r: r["note"].append(None), "RiskAssessment.note"),
        (lambda r: r.__setitem__("id", "not an id"), "RiskAssessment.id"),
    ],
)
def test_the_walk_finds_problems_and_the_models_name_them(change: Any, path: str) -> None:
    risk = copy.deepcopy(next(r for r in corpus() if r["resourceType"] == "RiskAssessment"))
    change(risk)
    assert not conforms(risk)
    with pytest.raises(OperationOutcomeError) as caught:
        validate(risk)
    assert caught.value.status == 500
    assert any(path in str(i.get("expression")) for i in caught.value.outcome["issue"]) or path in (
        caught.value.message
    )


# --- broken at random ----------------------------------------------------------------------------

BREAKS: list[Any] = [
    None,
    "",
    " ",
    "x y",
    "2025-13-45",
    "2025-06-30T25:00:00",
    0,
    -1,
    1.5,
    float("nan"),
    True,
    [],
    [None],
    {},
    {"unknown": 1},
    ["a"],
    [{}],
    "urn:uuid:not-one",
]


def nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value (keys and list indexes)."""
    out = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            out += nodes(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += nodes(item, (*path, i))
    return out


def broken(resource: dict[str, Any], path: tuple[Any, ...], how: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    holder: Any = out
    for step in path[:-1]:
        holder = holder[step]
    last = path[-1]
    if how == "replace":
        holder[last] = copy.deepcopy(value)
    elif how == "delete":
        del holder[last]
    elif how == "wrap":
        holder[last] = [holder[last]]
    elif how == "unwrap" and isinstance(holder[last], list) and holder[last]:
        holder[last] = holder[last][0]
    elif how == "add" and isinstance(holder[last], dict):
        holder[last]["valueString" if "url" in holder[last] else "text"] = copy.deepcopy(value)
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_walk_accepts_nothing_the_models_refuse(data: st.DataObject) -> None:
    resource = data.draw(st.sampled_from(corpus()))
    paths = [p for p in nodes(resource) if p and p != ("resourceType",)]
    path = data.draw(st.sampled_from(paths))
    how = data.draw(st.sampled_from(["replace", "delete", "wrap", "unwrap", "add"]))
    value = data.draw(st.sampled_from(BREAKS))
    changed = broken(resource, path, how, value)
    if conforms(changed):
        assert models_accept(changed), f"{how} {path} with {value!r}"
