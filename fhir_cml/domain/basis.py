"""The structured basis of a conclusion: which rule found what, with which values, from which inputs.

A basis carries no sentence. It names the rule, a :class:`~fhir_cml.domain.findings.Finding`
(what the rule found) and typed parameters (a result's IS value, a date, the threshold it was
compared with), and the references of the inputs it used. The renderers in
:mod:`fhir_cml.reporting` turn it into text, Markdown, HTML or FHIR, so the words and the
thresholds are never written twice and a program can read the values without parsing English.

The value types below say how a number is meant (an IS percentage, months, copies), so every
renderer formats it the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import TypeAlias

from fhir_cml.domain.findings import Finding
from fhir_cml.domain.frozen import quick_init
from fhir_cml.domain.rule import Rule


class Percent(float):
    """A percentage: BCR::ABL1 on the IS, Ph+ metaphases, a probability."""


class Months(float):
    """A time in months (30.4375 days)."""


class Years(float):
    """A time in years."""


class Copies(int):
    """Control-gene transcript copies."""


class Dose(float):
    """A daily TKI dose in mg/day."""


class NgMl(float):
    """A drug level in ng/mL."""


class Hours(float):
    """A time in hours."""


Value: TypeAlias = "str | int | float | bool | date | StrEnum | Basis | tuple[Value, ...] | None"
Params: TypeAlias = tuple[tuple[str, Value], ...]


@quick_init
@dataclass(frozen=True, slots=True)
class Basis:
    rule: Rule
    finding: Finding
    params: Params = ()
    evidence: tuple[str, ...] = ()

    @property
    def values(self) -> Mapping[str, Value]:
        return dict(self.params)

    def get(self, name: str) -> Value:
        for key, value in self.params:
            if key == name:
                return value
        return None


def basis(rule: Rule, finding: Finding, evidence: tuple[str, ...] = (), **params: Value) -> Basis:
    """A basis; parameters are given by name (their order is kept for the renderers)."""
    return Basis(rule, finding, tuple(params.items()), tuple(evidence))
