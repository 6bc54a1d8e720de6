"""Bases and the status line as HTML fragments (escaped), for pages and FHIR narratives.

``labels`` turns an evidence reference into words ("BCR::ABL1 0.031 % IS on 2025-05-26") where the
caller knows them; otherwise the reference itself is shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape

from fhir_cml.domain.basis import Basis
from fhir_cml.domain.results import Assessment
from fhir_cml.reporting.sources import source_text
from fhir_cml.reporting.summary import status_parts
from fhir_cml.reporting.words import say


def basis_html(b: Basis, labels: Mapping[str, str] | None = None) -> str:
    """``<li>`` with the sentence, the rule id (its sources as a tooltip) and the evidence."""
    known = labels or {}
    evidence = ", ".join(escape(known.get(ref, ref)) for ref in b.evidence)
    used = f' <span class="evidence">({evidence})</span>' if evidence else ""
    return (
        f'<li>{escape(say(b))} <code title="{escape(source_text(b.rule))}">{escape(b.rule.id)}'
        f"</code>{used}</li>"
    )


def bases_html(bases: Iterable[Basis], labels: Mapping[str, str] | None = None) -> str:
    return "<ul>" + "".join(basis_html(b, labels) for b in bases) + "</ul>"


def status_html(a: Assessment) -> str:
    """The one-line status as a ``<p>``, its parts separated by semicolons."""
    return '<p class="status">' + "; ".join(escape(p) for p in status_parts(a)) + "</p>"
