"""The JSON contract (``--format json``): field names in docs/outbound.md, added, never renamed.

A *basis* item carries the sentence (``text``), the rule with its title, guideline and sources,
and, for programs, the structured finding: its code (``finding``), its parameters (``params``)
and its citations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Final

from fhir_cml import __version__
from fhir_cml.domain.basis import Basis, Value
from fhir_cml.domain.model import BcrAbl1Result, Issue
from fhir_cml.domain.results import Assessment, ElnReading, MilestoneReading, Therapy
from fhir_cml.domain.rule import RULESET_VERSION, Rule
from fhir_cml.domain.vocabulary import Guideline
from fhir_cml.reporting.sources import citation_item, once_per_rule, source_text
from fhir_cml.reporting.words import issue_message, prediction_text, say, suggestion_text

GENERATOR = "fhir-cml"


@dataclass(frozen=True, slots=True)
class LoadSummary:
    """What the reader saw, for the ``summary`` block (patients assessed are counted here)."""

    files: int = 0
    resources: int = 0
    unreadable: int = 0
    skipped: int = 0


def to_contract(
    assessments: Sequence[Assessment],
    *,
    as_of: date,
    guideline: Guideline,
    load_summary: LoadSummary | None = None,
    issues: Iterable[Issue] = (),
) -> dict[str, Any]:
    """The ``--format json`` document; ``issues`` are those not tied to an assessed patient."""
    return {
        **contract_head(as_of=as_of, guideline=guideline),
        "patients": [patient_contract(a) for a in assessments],
        **contract_tail(len(assessments), load_summary=load_summary, issues=issues),
    }


def contract_head(*, as_of: date, guideline: Guideline) -> dict[str, Any]:
    """The members before ``patients``: known before any patient is (reporting/stream.py)."""
    return {
        "as_of": as_of.isoformat(),
        "guideline": guideline.value,
        "ruleset_version": RULESET_VERSION,
        "generator": {"name": GENERATOR, "version": __version__},
    }


def contract_tail(
    assessed: int, *, load_summary: LoadSummary | None = None, issues: Iterable[Issue] = ()
) -> dict[str, Any]:
    """The members after ``patients``: what is known once every patient has been read."""
    summary = load_summary or LoadSummary()
    return {
        "issues": [issue_item(i) for i in issues],
        "summary": {
            "patients": assessed + summary.skipped,
            "assessed": assessed,
            "skipped": summary.skipped,
            "resources": summary.resources,
            "files": summary.files,
            "unreadable": summary.unreadable,
        },
    }


def patient_contract(a: Assessment) -> dict[str, Any]:
    """One entry of ``patients[]``."""
    return {
        "patient": a.patient,
        "as_of": a.as_of.isoformat(),
        "guideline": a.guideline.value,
        "therapy": _therapy(a.therapy),
        "latest_bcr_abl1": _latest(a.latest_bcr_abl1),
        "molecular_response": a.molecular_response.depth.value,
        "molecular_response_reasons": [basis_item(a.molecular_response.basis)],
        "eln": _eln(a.eln),
        "loss_of_mmr": {
            "lost": a.loss_of_mmr.lost,
            "confirmed": a.loss_of_mmr.confirmed,
            "confirmed_eln2013": a.loss_of_mmr.confirmed_eln2013,
            "reasons": _items([a.loss_of_mmr.basis]),
        },
        "tfr": {
            "status": a.tfr.status.value,
            "reasons": _items(a.tfr.reasons),
            "optimal_criteria_met": a.tfr.optimal_criteria_met,
            "stopped_on": _iso(a.tfr.stopped_on),
            "months_since_stop": _months(a.tfr.months_since_stop),
            "stim1_relapse": a.tfr.stim1_relapse,
        },
        "tdm": {
            "status": a.tdm.status.value,
            "trough_ng_ml": a.tdm.trough.ng_ml if a.tdm.trough else None,
            "date": _iso(a.tdm.trough.date) if a.tdm.trough else None,
            "observation": a.tdm.trough.ref if a.tdm.trough else None,
            "hours_since_dose": a.tdm.trough.hours_since_dose if a.tdm.trough else None,
            "at_current_dose": a.tdm.at_current_dose,
            "reasons": _items([a.tdm.basis]),
        },
        "risk_scores": {
            s.name: {"value": s.value, "category": s.category.value, "reasons": _items([s.basis])}
            for s in a.risk_scores
        },
        "next_pcr_due": _iso(a.monitoring.next_pcr_due),
        "pcr_overdue": a.monitoring.overdue,
        "monitoring": {
            "interval_days": a.monitoring.interval_days,
            "phase": a.monitoring.phase,
            "reasons": _items([a.monitoring.basis]),
        },
        "interactions": [
            {
                "medication": i.medication,
                "effect": i.effect,
                "resource": i.ref,
                "reasons": _items([i.basis]),
            }
            for i in a.interactions
        ],
        "recommendations": [
            {
                "code": s.code.value,
                "text": suggestion_text(s),
                "finding": s.finding.value,
                "params": params(s.params),
                "basis": _items(s.basis),
            }
            for s in a.recommendations
        ],
        "predictions": [
            {
                "outcome": p.outcome,
                "text": prediction_text(p),
                "probability": p.probability,
                "years": p.years,
                "basis": _items([p.basis]),
            }
            for p in a.predictions
        ],
        "issues": [issue_item(i) for i in a.issues],
        "inputs": list(a.inputs),
        # the site's rule settings that differ from the defaults (docs/rules.md)
        "rule_settings": {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in a.config.changed().items()
        },
    }


def basis_item(b: Basis) -> dict[str, Any]:
    """A *reason* / *basis* item: ``{text, rule, rule_title, guideline, source, evidence[],
    finding, params, citations[]}``."""
    rule, citations = _rule_members(b.rule)
    return {
        "text": say(b),
        **rule,
        "evidence": list(b.evidence),
        "finding": str.__str__(b.finding),
        "params": params(b.params),
        "citations": list(citations),  # shared by every item of the rule: never changed
    }


@once_per_rule
def _rule_members(rule: Rule) -> tuple[dict[str, Any], tuple[dict[str, Any], ...]]:
    """What a basis item says of its rule."""
    head = {
        "rule": rule.id,
        "rule_title": rule.title,
        "guideline": rule.guideline,
        "source": source_text(rule),
    }
    return head, tuple(citation_item(c) for c in rule.citations)


def params(values: Iterable[tuple[str, Value]]) -> dict[str, Any]:
    """A finding's parameters as JSON: numbers, ISO dates, codes; a nested basis as its text."""
    return {name: value if type(value) in _AS_IS else _json(value) for name, value in values}


def _json(value: Value) -> Any:
    kind = type(value)
    if kind in _AS_IS:
        return value
    convert = _CONVERTERS.get(kind)
    if convert is None:  # the conversion depends on the type alone: found once per type
        convert = _CONVERTERS[kind] = _converter(kind)
    return convert(value)


def _converter(kind: type) -> Callable[[Any], Any]:
    if issubclass(kind, Basis):
        return say
    if issubclass(kind, date):
        return kind.isoformat
    if issubclass(kind, StrEnum):
        return str.__str__  # the member's value
    if issubclass(kind, tuple):
        return lambda value: [_json(v) for v in value]
    if issubclass(kind, bool):
        return bool
    if issubclass(kind, int):
        return int  # Copies and other int types as plain numbers
    if issubclass(kind, float):
        return float
    return lambda value: value


_AS_IS: Final = frozenset({str, int, float, bool, type(None)})
_CONVERTERS: dict[type, Callable[[Any], Any]] = {}


def issue_item(i: Issue) -> dict[str, Any]:
    return {
        "severity": i.severity.value,
        "code": i.code.value,
        "message": issue_message(i),
        "resource": i.resource,
    }


def _therapy(t: Therapy) -> dict[str, Any]:
    return {
        "drug": t.drug.value if t.drug else None,
        "start": _iso(t.start),
        "daily_dose_mg": t.daily_dose_mg,
        "months_on_therapy": _months(t.months_on_therapy),
        "status": t.status.value,
        "line": t.line,
        "current_start": _iso(t.current_start),
        "last_dose_change": _iso(t.last_dose_change),
        "stopped_on": _iso(t.stopped_on),
        "stop_reason": t.stop_reason.value if t.stop_reason else None,
        "segments": [
            {
                "drug": s.drug.value,
                "daily_dose_mg": s.daily_dose_mg,
                "start": s.start.isoformat(),
                "end": _iso(s.end),
                "stop_reason": s.stop_reason.value if s.stop_reason else None,
                "on_hold": s.on_hold,
                "resource": s.ref,
            }
            for s in t.segments
        ],
        "gaps": [
            {"start": g.start.isoformat(), "end": _iso(g.end), "resource": g.ref} for g in t.gaps
        ],
    }


def _latest(r: BcrAbl1Result | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {
        "date": r.date.isoformat(),
        "is_percent": r.is_percent,
        "detectable": r.detectable,
        "control_gene": r.control_gene.value if r.control_gene else None,
        "control_copies": r.control_copies,
        "observation": r.ref,
        "on_is": r.on_is,
        "raw_percent": r.raw_percent,
        "conversion_factor": r.conversion_factor,
        "transcript": r.transcript.value if r.transcript else None,
    }


def _eln(e: ElnReading) -> dict[str, Any]:
    return {
        "status": e.status.value,
        "milestone": e.milestone.value if e.milestone else None,
        "reasons": _items(e.reasons),
        "history": [_reading(h) for h in e.history],
    }


def _reading(h: MilestoneReading) -> dict[str, Any]:
    return {
        "date": h.date.isoformat(),
        "months": _months(h.months),
        "milestone": h.milestone.value if h.milestone else None,
        "status": h.status.value,
        "kind": h.kind,
        "role": h.role,
        "reasons": [basis_item(h.basis)],
    }


def _items(bases: Iterable[Basis | None]) -> list[dict[str, Any]]:
    return [basis_item(b) for b in bases if b is not None]


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _months(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None
