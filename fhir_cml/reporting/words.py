"""Structured bases in words: one sentence per basis, suggestion, prediction and issue.

A basis names a :class:`~fhir_cml.domain.findings.Finding` and typed parameters; the sentence for
each finding is in :mod:`fhir_cml.reporting.messages`. Values are written the way a clinician
writes them (an IS percentage "0.0058 %", a dose "600 mg/day", copies "32,000"), by their type,
so every face words a number the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date
from enum import StrEnum
from functools import cache
from typing import Any, Final

from fhir_cml.domain.basis import (
    Basis,
    Copies,
    Dose,
    Hours,
    Months,
    NgMl,
    Params,
    Percent,
    Value,
    Years,
)
from fhir_cml.domain.findings import Finding
from fhir_cml.domain.model import Issue
from fhir_cml.domain.results import Prediction, Suggestion
from fhir_cml.reporting.memo import by_identity


def pct(value: float) -> str:
    """An IS percentage as a clinician writes it: 12 %, 0.8 %, 0.0032 %."""
    return f"{value:.4g} %"


def number(value: float) -> str:
    """400, 1250, 0.83: no trailing zeros, no exponent."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return text or "0"


def word(value: Value) -> str:
    """One parameter in words, by its type."""
    kind = type(value)
    writer = _WRITERS.get(kind)
    if writer is None:  # the writer depends on the type alone: found once per type
        writer = _WRITERS[kind] = _writer(kind)
    return writer(value)


def either(values: Iterable[Value]) -> str:
    """Alternatives in words: "ponatinib or asciminib", "dasatinib, nilotinib or bosutinib"."""
    names = [word(v) for v in values]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _writer(kind: type) -> Callable[[Any], str]:
    if kind is type(None):
        return lambda _: ""
    if issubclass(kind, Basis):
        return say
    if issubclass(kind, bool):
        return lambda value: "yes" if value else "no"
    if issubclass(kind, Percent):
        return pct
    if issubclass(kind, Copies):
        return lambda value: f"{value:,}"
    if issubclass(kind, (Months, Years)):
        return lambda value: f"{value:.1f}"
    if issubclass(kind, (Dose, NgMl, Hours, float)):
        return lambda value: f"{value:g}"
    if issubclass(kind, date):
        return kind.isoformat
    if issubclass(kind, StrEnum):
        return str.__str__  # the member's value
    if issubclass(kind, tuple):
        return lambda value: ", ".join(word(v) for v in value)
    return str


_WRITERS: dict[type, Callable[[Any], str]] = {}


class P:
    """A finding's parameters for its sentence: ``p.date`` in words, ``p.raw("date")`` as is."""

    __slots__ = ("_values",)

    def __init__(self, params: Params) -> None:
        self._values = dict(params)

    def __getattr__(self, name: str) -> str:
        try:
            return word(self._values[name])
        except KeyError:
            raise AttributeError(name) from None

    def raw(self, name: str) -> Value:
        return self._values.get(name)

    def num(self, name: str) -> float:
        value = self._values.get(name)
        return float(value) if isinstance(value, (int, float)) else 0.0

    def items(self, name: str) -> tuple[Any, ...]:
        value = self._values.get(name)
        return value if isinstance(value, tuple) else ()

    def has(self, name: str) -> bool:
        return self._values.get(name) not in (None, (), False)


def sentence(finding: Finding, params: Params) -> str:
    """The sentence for a finding with its parameters."""
    return _messages()[finding](P(params))


@cache
def _messages() -> Mapping[Finding, Callable[[P], str]]:
    from fhir_cml.reporting.messages import MESSAGES  # the messages use the helpers above

    return MESSAGES


SAID_MOST: Final = 4096  # sentences kept: a report says most of its bases several times


@by_identity(SAID_MOST)
def say(b: Basis) -> str:
    """The sentence for a basis (a basis is frozen: its sentence is worked out once)."""
    return sentence(b.finding, b.params)


def suggestion_text(s: Suggestion) -> str:
    return sentence(s.finding, s.params)


def prediction_text(p: Prediction) -> str:
    return sentence(p.finding, p.params)


def issue_message(i: Issue) -> str:
    """An issue's message: the reader's words, or the sentence of the rules' basis."""
    if i.basis is not None and not i.message:
        return say(i.basis)
    return i.message
