"""Renders assessments for programs (the JSON contract) and for clinicians (plain text).

The JSON field names are a contract (docs/outbound.md): fields are added, never renamed. The text
says the same in a compact block per patient, with each suggestion's basis (rule and source) so a
reader can check it against the guideline. This module sits beside the FHIR adapters and knows
only the domain.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir_cml import __version__
from fhir_cml.domain.model import BcrAbl1Result, Issue
from fhir_cml.domain.results import (
    Assessment,
    Basis,
    ElnReading,
    MilestoneReading,
    Therapy,
)
from fhir_cml.domain.rules.catalogue import RULESET_VERSION
from fhir_cml.domain.rules.common import pct
from fhir_cml.domain.vocabulary import ElnStatus, Guideline, RiskCategory

__all__ = [
    "LoadSummary",
    "Sources",
    "basis_item",
    "contract_head",
    "contract_tail",
    "patient_contract",
    "patient_text",
    "text_head",
    "text_tail",
    "to_contract",
    "to_text",
]

GENERATOR = "fhir-cml"


@dataclass(frozen=True, slots=True)
class LoadSummary:
    """What the reader saw, for the ``summary`` block (patients assessed are counted here)."""

    files: int = 0
    resources: int = 0
    unreadable: int = 0
    skipped: int = 0


# --- The JSON contract -------------------------------------------------------------------------


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
    """The members of the JSON contract before ``patients`` (known before any patient is)."""
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
            {"code": s.code.value, "text": s.text, "basis": _items(s.basis)}
            for s in a.recommendations
        ],
        "predictions": [
            {
                "outcome": p.outcome,
                "text": p.text,
                "probability": p.probability,
                "years": p.years,
                "basis": _items([p.basis]),
            }
            for p in a.predictions
        ],
        "issues": [issue_item(i) for i in a.issues],
        "inputs": list(a.inputs),
    }


def basis_item(b: Basis) -> dict[str, Any]:
    """A *reason* / *basis* item: ``{text, rule, rule_title, guideline, source, evidence[]}``."""
    return {
        "text": b.statement,
        "rule": b.rule.id,
        "rule_title": b.rule.title,
        "guideline": b.rule.guideline,
        "source": b.rule.source,
        "evidence": list(b.evidence),
    }


def issue_item(i: Issue) -> dict[str, Any]:
    return {
        "severity": i.severity.value,
        "code": i.code.value,
        "message": i.message,
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
        "reasons": [basis_item(h.basis)],
    }


def _items(bases: Iterable[Basis | None]) -> list[dict[str, Any]]:
    return [basis_item(b) for b in bases if b is not None]


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _months(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


# --- Plain text for clinicians -----------------------------------------------------------------

WIDTH = 100
_LABEL = 14  # width of the label column


class Sources:
    """Numbers each published source once, so a basis line can cite it briefly."""

    def __init__(self) -> None:
        self.numbers: dict[str, int] = {}

    def cite(self, b: Basis) -> str:
        n = self.numbers.setdefault(b.rule.source, len(self.numbers) + 1)
        return f"{b.statement} [{b.rule.id}; source {n}]"

    def lines(self) -> list[str]:
        return [_wrap(src, f"  {n}. ", "     ") for src, n in self.numbers.items()]


def to_text(
    assessments: Sequence[Assessment],
    *,
    as_of: date,
    guideline: Guideline,
    load_summary: LoadSummary | None = None,
    issues: Iterable[Issue] = (),
) -> str:
    """Every patient as a compact block, then what could not be read, then the sources cited."""
    sources = Sources()
    lines = text_head(len(assessments), as_of=as_of, guideline=guideline, load_summary=load_summary)
    for a in assessments:
        lines += ["", *patient_text(a, sources)]
    lines += text_tail(sources, issues)
    return "\n".join(lines) + "\n"


def text_head(
    assessed: int, *, as_of: date, guideline: Guideline, load_summary: LoadSummary | None = None
) -> list[str]:
    """The first lines of the text: what was read, as of when, against which guideline."""
    summary = load_summary or LoadSummary()
    return [
        f"{GENERATOR} {__version__} (rules {RULESET_VERSION}) - {guideline.label} - as of "
        f"{as_of.isoformat()}",
        f"{_count(assessed, 'patient')} assessed, {summary.skipped} skipped "
        f"({_count(summary.files, 'file')}, {_count(summary.resources, 'resource')}, "
        f"{summary.unreadable} unreadable). Suggestions for a clinician to review; not orders.",
    ]


def text_tail(sources: Sources, issues: Iterable[Issue] = ()) -> list[str]:
    """The lines after the patients: the input issues, then the sources the patients cited."""
    lines: list[str] = []
    general = list(issues)
    if general:
        lines += ["", "Input issues"]
        lines += [_wrap(_issue_line(i), "  - ", "    ") for i in general]
    if sources.numbers:
        lines += ["", "Sources", *sources.lines()]
    return lines


def patient_text(a: Assessment, sources: Sources | None = None) -> list[str]:
    """One patient's block; without a shared ``sources`` the block lists its own at the end."""
    own = sources is None
    cited = sources if sources is not None else Sources()

    def row(label: str, text: str) -> str:
        return _wrap(text, f"{label:<{_LABEL}}", " " * _LABEL)

    def reasons(bases: Iterable[Basis | None]) -> list[str]:
        return [_wrap(cited.cite(b), " " * _LABEL + "- ", " " * (_LABEL + 2)) for b in bases if b]

    out = [f"== {a.patient} =="]
    out.append(row("Therapy", _therapy_text(a.therapy)))
    out.append(row("Latest PCR", _latest_text(a.latest_bcr_abl1)))
    out.append(row("Response", a.molecular_response.depth.value))
    out += reasons([a.molecular_response.basis])
    out.append(row(a.guideline.label, _eln_text(a.eln)))
    out += reasons(a.eln.reasons)
    if a.loss_of_mmr.lost:
        state = "confirmed" if a.loss_of_mmr.confirmed else "not yet confirmed"
        out.append(row("Loss of MMR", state))
        out += reasons([a.loss_of_mmr.basis])
    out.append(row("TFR", a.tfr.status.value.replace("-", " ")))
    out += reasons(a.tfr.reasons)
    tdm = a.tdm.status.value
    if a.tdm.trough is not None:
        tdm += f": imatinib trough {_number(a.tdm.trough.ng_ml)} ng/mL on {a.tdm.trough.date.isoformat()}"
    out.append(row("TDM", tdm))
    out += reasons([a.tdm.basis] if a.tdm.trough is not None else [])
    out.append(
        row(
            "Risk scores",
            "; ".join(_score_text(s.name, s.value, s.category) for s in a.risk_scores),
        )
    )
    due = a.monitoring.next_pcr_due
    pcr = (
        "no schedule"
        if due is None
        else f"OVERDUE since {due.isoformat()}"
        if a.monitoring.overdue
        else f"due by {due.isoformat()}"
    )
    out.append(row("Next PCR", pcr))
    out += reasons([a.monitoring.basis])
    for i in a.interactions:
        out.append(row("Interaction", f"{i.medication} ({i.effect}) - {i.ref}"))
    out.append("Suggestions")
    if not a.recommendations:
        out.append("  none")
    for n, s in enumerate(a.recommendations, 1):
        out.append(_wrap(f"{s.text} ({s.code.value})", f"  {n}. ", "     "))
        out += [_wrap(cited.cite(b), "     basis: ", "            ") for b in s.basis]
    if a.predictions:
        out.append("Trial evidence (population figures, not individual predictions)")
        for p in a.predictions:
            out.append(_wrap(p.text, "  - ", "    "))
            out.append(_wrap(cited.cite(p.basis), "    basis: ", "           "))
    if a.issues:
        out.append("Data issues")
        out += [_wrap(_issue_line(i), "  - ", "    ") for i in a.issues]
    if own:
        out += ["Sources", *cited.lines()]
    return out


_THERAPY_STATUS = {
    "active": "active",
    "interrupted": "interrupted",
    "stopped": "stopped",
    "tfr": "off TKI for treatment-free remission",
    "none": "none",
}


def _therapy_text(t: Therapy) -> str:
    if t.drug is None:
        return f"no usable TKI record ({t.status.value})"
    dose = f" {_number(t.daily_dose_mg)} mg/day" if t.daily_dose_mg is not None else ""
    parts = [f"{t.drug.value}{dose}, {_THERAPY_STATUS.get(t.status.value, t.status.value)}"]
    if t.start is not None:
        line = {1: "first line", 2: "second line", 3: "third line"}.get(t.line, f"line {t.line}")
        months = f", {t.months_on_therapy:.1f} months" if t.months_on_therapy is not None else ""
        parts.append(f"{line}; TKI since {t.start.isoformat()}{months}")
    if t.current_start is not None and t.current_start != t.start:
        parts.append(f"current drug since {t.current_start.isoformat()}")
    if t.stopped_on is not None:
        why = f" ({t.stop_reason.value})" if t.stop_reason else ""
        parts.append(f"stopped {t.stopped_on.isoformat()}{why}")
    return "; ".join(parts)


def _latest_text(r: BcrAbl1Result | None) -> str:
    if r is None:
        return "none recorded"
    if r.detectable and r.is_percent is not None:
        value = f"{pct(r.is_percent)} {'IS' if r.on_is else '(converted to IS)'}"
    elif r.detectable:
        raw = (
            f" ({pct(r.raw_percent)} on the laboratory's scale)"
            if r.raw_percent is not None
            else ""
        )
        value = f"detected, not on the IS{raw}"
    else:
        value = "not detected"
    copies = (
        f", {r.control_gene.value if r.control_gene else 'control gene'} {r.control_copies:,} copies"
        if r.control_copies is not None
        else ", control-gene copies not reported"
    )
    return f"{value} on {r.date.isoformat()}{copies} ({r.ref})"


def _eln_text(e: ElnReading) -> str:
    if e.status is ElnStatus.NOT_EVALUABLE:
        return "not evaluable"
    if e.milestone is None:
        return e.status.value
    when = "any time" if e.milestone.value == "any" else f"{e.milestone.value[:-1]} months"
    return f"{e.status.value} ({when})"


def _score_text(name: str, value: float | None, category: RiskCategory) -> str:
    label = "Sokal" if name == "sokal" else name.upper()
    if category is RiskCategory.NOT_EVALUABLE or value is None:
        return f"{label} not evaluable"
    return f"{label} {_number(value)} {category.value}"


def _issue_line(i: Issue) -> str:
    where = f"{i.resource}: " if i.resource else ""
    return f"{i.severity.value} ({i.code.value}) {where}{i.message}"


def _number(value: float) -> str:
    """As a clinician writes it: 400, 1250, 0.83 - no trailing zeros, no exponent."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return text or "0"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _wrap(text: str, first: str, rest: str) -> str:
    return textwrap.fill(
        text,
        width=WIDTH,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    )
