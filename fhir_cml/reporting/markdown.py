"""Bases in Markdown (CommonMark, as CDS Hooks card details are): the sentence and the rule id, and
the list of sources a set of bases cites."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from fhir_cml.domain.basis import Basis
from fhir_cml.reporting.sources import source_text
from fhir_cml.reporting.words import say

_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|])")


def escape(text: str) -> str:
    """Text shown as written: Markdown's special characters escaped."""
    return _SPECIAL.sub(r"\\\1", text)


def basis_line(b: Basis) -> str:
    """ "The sentence (`rule-id`)"."""
    return f"{escape(say(b))} (`{b.rule.id}`)"


def unique(bases: Iterable[Basis]) -> Sequence[Basis]:
    """Bases without repeats (the same rule and sentence count once)."""
    seen: dict[tuple[str, str], Basis] = {}
    for b in bases:
        seen.setdefault((b.rule.id, say(b)), b)
    return list(seen.values())


def sources(bases: Iterable[Basis]) -> list[str]:
    """A "Sources" block: each rule cited, with its literature."""
    rules = {b.rule.id: b.rule for b in bases}
    if not rules:
        return []
    return ["", "**Sources**", ""] + [
        f"- `{rid}`: {escape(source_text(rule))}" for rid, rule in rules.items()
    ]
