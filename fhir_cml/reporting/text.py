"""The reading in plain text, for clinicians (``--format text``).

A compact block per patient, with each conclusion's basis (its sentence, rule id and a numbered
source) so a reader can check it against the guideline; the sources are listed at the end.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from datetime import date

from fhir_cml import __version__
from fhir_cml.domain.basis import Basis
from fhir_cml.domain.model import BcrAbl1Result, Issue
from fhir_cml.domain.results import Assessment, ElnReading, Therapy
from fhir_cml.domain.rule import RULESET_VERSION
from fhir_cml.domain.vocabulary import ElnStatus, Guideline, RiskCategory
from fhir_cml.reporting.contract import GENERATOR, LoadSummary
from fhir_cml.reporting.sources import source_text
from fhir_cml.reporting.words import (
    issue_message,
    number,
    pct,
    prediction_text,
    say,
    suggestion_text,
)

WIDTH = 100
_LABEL = 14  # width of the label column


class Sources:
    """Numbers each published source once, so a basis line can cite it briefly."""

    def __init__(self) -> None:
        self.numbers: dict[str, int] = {}

    def cite(self, b: Basis) -> str:
        n = self.numbers.setdefault(source_text(b.rule), len(self.numbers) + 1)
        return f"{say(b)} [{b.rule.id}; source {n}]"

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
    """The first lines: what was read, as of when, against which guideline (reporting/stream.py
    writes them once every patient has been read)."""
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
        tdm += f": imatinib trough {number(a.tdm.trough.ng_ml)} ng/mL on {a.tdm.trough.date.isoformat()}"
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
        out.append(_wrap(f"{suggestion_text(s)} ({s.code.value})", f"  {n}. ", "     "))
        out += [_wrap(cited.cite(b), "     basis: ", "            ") for b in s.basis]
    if a.predictions:
        out.append("Trial evidence (population figures, not individual predictions)")
        for p in a.predictions:
            out.append(_wrap(prediction_text(p), "  - ", "    "))
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
    dose = f" {number(t.daily_dose_mg)} mg/day" if t.daily_dose_mg is not None else ""
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
    return f"{label} {number(value)} {category.value}"


def _issue_line(i: Issue) -> str:
    where = f"{i.resource}: " if i.resource else ""
    return f"{i.severity.value} ({i.code.value}) {where}{issue_message(i)}"


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
