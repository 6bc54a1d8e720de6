"""The course chart, drawn on the server as SVG: printable, readable without JavaScript, testable.

One figure, three panels on one time axis (months since the start of first-line TKI):

1. BCR::ABL1 on the International Scale, log scale, with the MMR (0.1 %), MR4 (0.01 %) and
   MR4.5 (0.0032 %) lines and the guideline's milestone targets (each milestone's optimal limit,
   read from the guideline tables, :mod:`fhir_cml.domain.guidelines`). Each result is classified by the domain's own rule
   (:func:`fhir_cml.domain.rules.response_depth.classify`): a detected result is drawn at its IS
   value; an undetectable one at the level its control-gene copies support (MR4, MR4.5, MR5) as
   an open triangle; one with too few copies at its sensitivity (100 % / ABL1 copies) in grey; a
   result not on the IS without a conversion factor, or of an atypical transcript, as a grey
   cross marked "not used".
2. The TKI course: one bar per drug and dose, holds hatched, stops named, changes as dotted
   lines through the panels.
3. Imatinib trough levels against the 1000 ng/mL line (only when there are troughs).

The data behind the chart (:class:`ChartData`) also fills the table under it, so the figure and
the table cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from html import escape
from typing import Final

from fhir_cml.domain import guidelines
from fhir_cml.domain.model import BcrAbl1Result, PatientRecord
from fhir_cml.domain.results import Assessment
from fhir_cml.domain.rules.common import months_between, pct
from fhir_cml.domain.rules.response_depth import classify
from fhir_cml.domain.vocabulary import ControlGene, Guideline, IssueCode, ResponseDepth

# Geometry (SVG user units; the figure scales to the page width).
WIDTH: Final = 960
LEFT: Final = 78
RIGHT: Final = 104
TOP: Final = 44
MAIN_HEIGHT: Final = 300
LANE_GAP: Final = 30
LANE_HEIGHT: Final = 34
TROUGH_GAP: Final = 36
TROUGH_HEIGHT: Final = 110
BOTTOM: Final = 46

REFERENCE_LINES: Final = (("MMR", 0.1), ("MR4", 0.01), ("MR4.5", 0.0032))
# Molecular milestone targets (optimal response) by guideline: (months, IS % at most).
TARGETS: Final = {g: guidelines.targets(g) for g in Guideline}  # from the guideline tables
TROUGH_TARGET: Final = 1000.0  # ng/mL
# IS % an undetectable result is drawn at, by the level its control-gene copies support.
LEVEL_VALUE: Final = {
    ResponseDepth.MR4: 0.01,
    ResponseDepth.MR4_5: 0.0032,
    ResponseDepth.MR5: 0.001,
}
# Copies of GUSB worth one copy of ABL1 (Cross et al. 2015: 24,000 GUSB ~ 10,000 ABL1).
GUSB_PER_ABL1: Final = 2.4

INK: Final = "#1b1b1b"
MUTED: Final = "#595959"
BLUE: Final = "#1f4e99"
GREY: Final = "#6b6b6b"
TARGET: Final = "#9a3f00"
REFERENCE: Final = "#2d6a4f"
DRUG_COLOURS: Final = {
    "imatinib": "#c7d7ef",
    "dasatinib": "#f1d3b5",
    "nilotinib": "#d3e8c8",
    "bosutinib": "#e5d1ec",
    "ponatinib": "#f3c9c9",
    "asciminib": "#d6e6e8",
}


class Marker(StrEnum):
    """How a BCR::ABL1 result is drawn (also its CSS class)."""

    DETECTED = "detected"
    CONVERTED = "converted"  # not on the IS, converted with the laboratory's factor
    UNDETECTABLE = "undetectable"  # not detected, drawn at the level its copies support
    INADEQUATE = "inadequate"  # not detected with too few (or unreported) control-gene copies
    NOT_USED = "not-used"  # not on the IS without a factor, or an atypical transcript


@dataclass(frozen=True, slots=True)
class ResultPoint:
    """One BCR::ABL1 result as drawn and tabulated. ``value`` is where it is drawn (IS %, or
    the laboratory's own % for a result not used); None when there is nowhere to draw it."""

    date: date
    months: float
    marker: Marker
    value: float | None
    depth: str
    result: str
    control: str
    note: str
    used: bool
    ref: str


@dataclass(frozen=True, slots=True)
class TherapyBar:
    drug: str
    daily_dose_mg: float | None
    start: date
    end: date | None
    start_months: float
    end_months: float
    on_hold: bool
    stop_reason: str | None
    ref: str

    @property
    def label(self) -> str:
        dose = f" {_number(self.daily_dose_mg)} mg/day" if self.daily_dose_mg else ""
        return f"{self.drug}{dose}" + (" (held)" if self.on_hold else "")


@dataclass(frozen=True, slots=True)
class TroughPoint:
    date: date
    months: float
    ng_ml: float
    drug: str
    hours_since_dose: float | None
    ref: str


@dataclass(frozen=True, slots=True)
class Target:
    months: float
    value: float

    @property
    def label(self) -> str:
        return f"{_number(self.months)} m: ≤ {self.value:g} %"


@dataclass(frozen=True, slots=True)
class ChartData:
    """Everything the chart and its table show, in one place."""

    origin: date
    origin_is_tki_start: bool
    as_of: date
    guideline: Guideline
    points: tuple[ResultPoint, ...]
    bars: tuple[TherapyBar, ...]
    troughs: tuple[TroughPoint, ...]
    targets: tuple[Target, ...]

    @property
    def as_of_months(self) -> float:
        return months_between(self.origin, self.as_of)

    @property
    def origin_label(self) -> str:
        what = "TKI start" if self.origin_is_tki_start else "first result (no TKI start known)"
        return f"{what}, {self.origin.isoformat()}"


def chart_data(record: PatientRecord, assessment: Assessment) -> ChartData:
    """The chart's data from the patient's record and its assessment (results after the as-of
    date are left out, as the assessment leaves them out)."""
    as_of = assessment.as_of
    results = [r for r in record.bcr_abl1 if r.date <= as_of]
    start = assessment.therapy.start
    origin = start or (results[0].date if results else as_of)
    points = tuple(_point(r, origin) for r in results)
    bars = tuple(
        TherapyBar(
            s.drug.value,
            s.daily_dose_mg,
            s.start,
            s.end,
            months_between(origin, s.start),
            months_between(origin, min(s.end, as_of) if s.end else as_of),
            s.on_hold,
            s.stop_reason.value if s.stop_reason else None,
            s.ref,
        )
        for s in assessment.therapy.segments
        if s.start <= as_of
    )
    troughs = tuple(
        TroughPoint(
            t.date,
            months_between(origin, t.date),
            t.ng_ml,
            t.drug.value,
            t.hours_since_dose,
            t.ref,
        )
        for t in record.troughs
        if t.date <= as_of
    )
    targets = tuple(Target(m, v) for m, v in TARGETS.get(assessment.guideline, ()))
    return ChartData(
        origin, start is not None, as_of, assessment.guideline, points, bars, troughs, targets
    )


def _point(r: BcrAbl1Result, origin: date) -> ResultPoint:
    call = classify(r)
    months = months_between(origin, r.date)
    control = (
        f"{r.control_gene.value if r.control_gene else 'control gene'} {r.control_copies:,}"
        if r.control_copies is not None
        else "not reported"
    )
    if call.problem is IssueCode.NOT_TYPICAL_TRANSCRIPT:
        transcript = r.transcript.value if r.transcript else "atypical"
        return ResultPoint(
            r.date,
            months,
            Marker.NOT_USED,
            r.is_percent if r.is_percent is not None else r.raw_percent,
            call.depth.value,
            _value_text(r),
            control,
            f"transcript {transcript} cannot be reported on the IS: not used",
            False,
            r.ref,
        )
    if r.detectable:
        if r.is_percent is None or not r.on_is:
            return ResultPoint(
                r.date,
                months,
                Marker.NOT_USED,
                r.raw_percent,
                call.depth.value,
                _value_text(r),
                control,
                "not on the International Scale and no conversion factor: not used",
                False,
                r.ref,
            )
        converted = r.raw_percent is not None and r.conversion_factor is not None
        return ResultPoint(
            r.date,
            months,
            Marker.CONVERTED if converted else Marker.DETECTED,
            r.is_percent,
            call.depth.value,
            _value_text(r),
            control,
            (
                f"converted to the IS with the laboratory's factor {r.conversion_factor:g}"
                if converted
                else ""
            ),
            True,
            r.ref,
        )
    level = LEVEL_VALUE.get(call.depth)
    if level is not None:
        return ResultPoint(
            r.date,
            months,
            Marker.UNDETECTABLE,
            level,
            call.depth.value,
            "not detected",
            control,
            f"drawn at {call.depth.value} ({pct(level)}), the level its control-gene copies "
            "support",
            True,
            r.ref,
        )
    sensitivity = _sensitivity(r)
    return ResultPoint(
        r.date,
        months,
        Marker.INADEQUATE,
        sensitivity,
        call.depth.value,
        "not detected",
        control,
        (
            f"too few control-gene copies to call a response level; drawn at its sensitivity "
            f"({pct(sensitivity)})"
            if sensitivity is not None
            else "control-gene copies not reported: sensitivity unknown, drawn at the bottom"
        ),
        False,
        r.ref,
    )


def _sensitivity(r: BcrAbl1Result) -> float | None:
    """The IS % one transcript copy in the sample stands for: 100 / ABL1-equivalent copies."""
    if not r.control_copies:
        return None
    per_abl1 = GUSB_PER_ABL1 if r.control_gene is ControlGene.GUSB else 1.0
    return 100.0 * per_abl1 / r.control_copies


def _value_text(r: BcrAbl1Result) -> str:
    if not r.detectable:
        return "not detected"
    if r.is_percent is not None and r.on_is and r.conversion_factor is not None:
        local = f"{pct(r.raw_percent)} local x " if r.raw_percent is not None else "factor "
        return f"{pct(r.is_percent)} IS ({local}{r.conversion_factor:g})"
    if r.is_percent is not None and r.on_is:
        return f"{pct(r.is_percent)} IS"
    if r.raw_percent is not None:
        return f"{pct(r.raw_percent)} (laboratory scale)"
    return "detected, value not reported"


# --- scales --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scales:
    """Where months and values go on the figure."""

    month_lo: float
    month_hi: float
    decade_top: int  # log10 of the top value (100 % -> 2)
    decade_bottom: int  # log10 of the bottom value (0.001 % -> -3)
    trough_max: float
    has_troughs: bool

    @property
    def plot_right(self) -> float:
        return WIDTH - RIGHT

    @property
    def lane_top(self) -> float:
        return TOP + MAIN_HEIGHT + LANE_GAP

    @property
    def trough_top(self) -> float:
        return self.lane_top + LANE_HEIGHT + TROUGH_GAP

    @property
    def height(self) -> float:
        bottom = (
            self.trough_top + TROUGH_HEIGHT if self.has_troughs else self.lane_top + LANE_HEIGHT
        )
        return bottom + BOTTOM

    def x(self, months: float) -> float:
        span = self.month_hi - self.month_lo
        return LEFT + (months - self.month_lo) / span * (self.plot_right - LEFT)

    def y(self, percent: float) -> float:
        """Log scale: equal distance per decade."""
        decades = self.decade_top - self.decade_bottom
        position = (self.decade_top - math.log10(percent)) / decades
        return TOP + position * MAIN_HEIGHT

    def y_trough(self, ng_ml: float) -> float:
        return self.trough_top + (1 - ng_ml / self.trough_max) * TROUGH_HEIGHT

    @property
    def bottom_value(self) -> float:
        return float(10.0**self.decade_bottom)


def scales(data: ChartData) -> Scales:
    months = [0.0, data.as_of_months]
    months += [p.months for p in data.points]
    months += [b.start_months for b in data.bars] + [t.months for t in data.troughs]
    months += [t.months for t in data.targets]
    lo, hi = min(months), max(months)
    lo = math.floor(lo) - 1 if lo < 0 else 0.0
    hi = hi + max(1.0, (hi - lo) * 0.03)
    values = [p.value for p in data.points if p.value is not None and p.value > 0]
    top = max(2, math.ceil(math.log10(max(values)))) if values else 2
    bottom = min(-3, math.floor(math.log10(min(values)))) if values else -3
    peak = max((t.ng_ml for t in data.troughs), default=0.0)
    trough_max = max(2500.0, math.ceil(peak * 1.15 / 500.0) * 500.0)
    return Scales(lo, hi, top, bottom, trough_max, bool(data.troughs))


def month_ticks(lo: float, hi: float) -> list[float]:
    span = hi - lo
    step = next((s for s in (3, 6, 12, 24, 36, 60, 120) if span / s <= 10), 120)
    first = math.ceil(lo / step) * step
    return [float(m) for m in range(int(first), int(hi) + 1, step)]


# --- drawing -------------------------------------------------------------------------------------


def render_svg(data: ChartData) -> str:
    """The figure as an inline SVG element (every text escaped)."""
    s = scales(data)
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {_n(s.height)}" '
        'role="img" aria-labelledby="chart-title chart-desc" class="course-chart" '
        'font-family="system-ui, -apple-system, \'Segoe UI\', Roboto, sans-serif" font-size="12">',
        '<title id="chart-title">BCR::ABL1 (IS %, log scale) since the start of TKI therapy'
        "</title>",
        f'<desc id="chart-desc">{escape(describe(data))}</desc>',
        _defs(),
    ]
    out += _legend()
    out += _main_axes(data, s)
    out += _targets(data, s)
    out += _changes(data, s)
    out += _results(data, s)
    out += _lane(data, s)
    if s.has_troughs:
        out += _trough_panel(data, s)
    out += _x_axis(data, s)
    out += _as_of(data, s)
    out.append("</svg>")
    return "\n".join(out)


def describe(data: ChartData) -> str:
    """The figure in one paragraph, for screen readers (the table under it has every value)."""
    used = [p for p in data.points if p.used]
    parts = [
        f"{len(data.points)} BCR::ABL1 results over time since the {data.origin_label}, as of "
        f"{data.as_of.isoformat()}; {len(used)} used for response decisions."
    ]
    if data.points:
        last = data.points[-1]
        parts.append(f"Latest on {last.date.isoformat()}: {last.result} ({last.depth}).")
    if data.bars:
        parts.append(
            "Therapy: "
            + "; ".join(f"{b.label} from {b.start.isoformat()}" for b in data.bars)
            + "."
        )
    if data.troughs:
        parts.append(
            "Trough levels: "
            + "; ".join(f"{_number(t.ng_ml)} ng/mL on {t.date.isoformat()}" for t in data.troughs)
            + f" (target above {TROUGH_TARGET:g} ng/mL)."
        )
    return " ".join(parts)


def _defs() -> str:
    return (
        "<defs>"
        '<pattern id="hold-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)">'
        f'<rect width="6" height="6" fill="#ffffff"/><line x1="0" y1="0" x2="0" y2="6" '
        f'stroke="{GREY}" stroke-width="2"/></pattern>'
        "</defs>"
    )


def _legend() -> list[str]:
    items = [
        (Marker.DETECTED, "BCR::ABL1 IS"),
        (Marker.CONVERTED, "converted to IS"),
        (Marker.UNDETECTABLE, "not detected"),
        (Marker.INADEQUATE, "not detected, few copies"),
        (Marker.NOT_USED, "not IS: not used"),
    ]
    out = ['<g class="legend" aria-hidden="true">']
    x = float(LEFT)
    for marker, text in items:
        out.append(_marker(marker, x + 5, 16))
        out.append(f'<text x="{_n(x + 14)}" y="20" fill="{INK}">{escape(text)}</text>')
        x += 30 + len(text) * 6.8
    out.append(
        f'<line x1="{_n(x)}" y1="16" x2="{_n(x + 16)}" y2="16" stroke="{TARGET}" stroke-width="3"/>'
    )
    out.append(f'<text x="{_n(x + 22)}" y="20" fill="{INK}">ELN target</text>')
    out.append("</g>")
    return out


def _main_axes(data: ChartData, s: Scales) -> list[str]:
    out = ['<g class="axes">']
    out.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{_n(s.plot_right - LEFT)}" height="{MAIN_HEIGHT}" '
        'fill="#ffffff" stroke="#8a8a8a"/>'
    )
    for decade in range(s.decade_bottom, s.decade_top + 1):
        value = 10.0**decade
        y = s.y(value)
        out.append(
            f'<line class="decade" x1="{LEFT}" y1="{_n(y)}" x2="{_n(s.plot_right)}" '
            f'y2="{_n(y)}" stroke="#d9d9d9"/>'
        )
        out.append(
            f'<text x="{LEFT - 6}" y="{_n(y + 4)}" text-anchor="end" fill="{INK}">'
            f"{escape(_percent_label(value))}</text>"
        )
    out.append(
        f'<text transform="translate(16 {_n(TOP + MAIN_HEIGHT / 2)}) rotate(-90)" '
        f'text-anchor="middle" fill="{INK}">BCR::ABL1 IS (%, log scale)</text>'
    )
    for name, value in REFERENCE_LINES:
        y = s.y(value)
        out.append(
            f'<line class="reference" data-level="{escape(name)}" data-value="{value:g}" '
            f'x1="{LEFT}" y1="{_n(y)}" x2="{_n(s.plot_right)}" y2="{_n(y)}" '
            f'stroke="{REFERENCE}" stroke-width="1.3" stroke-dasharray="6 4"/>'
        )
        out.append(
            f'<text x="{_n(s.plot_right + 6)}" y="{_n(y + 4)}" fill="{REFERENCE}">'
            f"{escape(name)} {value:g} %</text>"
        )
    out.append("</g>")
    return out


def _targets(data: ChartData, s: Scales) -> list[str]:
    out = ['<g class="targets">']
    for t in data.targets:
        if not s.month_lo <= t.months <= s.month_hi:
            continue
        x, y = s.x(t.months), s.y(t.value)
        out.append(
            f'<line x1="{_n(x)}" y1="{TOP}" x2="{_n(x)}" y2="{TOP + MAIN_HEIGHT}" '
            f'stroke="{TARGET}" stroke-opacity="0.35" stroke-dasharray="2 3"/>'
        )
        out.append(
            f'<line class="milestone-target" data-months="{t.months:g}" data-value="{t.value:g}" '
            f'x1="{_n(x - 9)}" y1="{_n(y)}" x2="{_n(x + 9)}" y2="{_n(y)}" stroke="{TARGET}" '
            f'stroke-width="3"><title>{escape(data.guideline.label)} target at '
            f"{escape(t.label)}</title></line>"
        )
        out.append(
            f'<text x="{_n(x + 11)}" y="{_n(y - 5)}" fill="{TARGET}" font-size="11">'
            f"{escape(t.label)}</text>"
        )
    out.append("</g>")
    return out


def _changes(data: ChartData, s: Scales) -> list[str]:
    """Dotted lines through the panels where the drug or dose changed, or therapy stopped."""
    out = ['<g class="therapy-changes">']
    bottom = (s.trough_top + TROUGH_HEIGHT) if s.has_troughs else (s.lane_top + LANE_HEIGHT)
    for months, text in therapy_changes(data.bars):
        x = s.x(months)
        out.append(
            f'<line class="therapy-change" x1="{_n(x)}" y1="{TOP}" x2="{_n(x)}" '
            f'y2="{_n(bottom)}" stroke="{MUTED}" stroke-dasharray="1 3">'
            f"<title>{escape(text)}</title></line>"
        )
    out.append("</g>")
    return out


def therapy_changes(bars: Sequence[TherapyBar]) -> list[tuple[float, str]]:
    """(months, what changed) at each change of drug or dose, hold, restart and stop."""
    changes = [(b.start_months, f"{b.start.isoformat()}: {b.label}") for b in bars[1:]]
    last = bars[-1] if bars else None
    if last is not None and last.end is not None:
        why = f" ({last.stop_reason})" if last.stop_reason else ""
        changes.append((last.end_months, f"{last.end.isoformat()}: {last.drug} stopped{why}"))
    return changes


def _results(data: ChartData, s: Scales) -> list[str]:
    out = ['<g class="results">']
    trend = [p for p in data.points if p.used and p.value is not None]
    if len(trend) > 1:
        path = " ".join(f"{_n(s.x(p.months))},{_n(s.y(_value(p, s)))}" for p in trend)
        out.append(
            f'<polyline class="trend" points="{path}" fill="none" stroke="{BLUE}" '
            'stroke-opacity="0.45" stroke-width="1.5"/>'
        )
    for p in data.points:
        x, y = s.x(p.months), s.y(_value(p, s))
        note = f"; {p.note}" if p.note else ""
        title = f"{p.date.isoformat()}: {p.result}, {p.depth} (control {p.control}){note}"
        out.append(
            f'<g class="result {p.marker.value}" data-date="{p.date.isoformat()}" '
            f'data-value="{"" if p.value is None else f"{p.value:g}"}">'
            f"<title>{escape(title)}</title>{_marker(p.marker, x, y)}</g>"
        )
    out.append("</g>")
    return out


def _value(p: ResultPoint, s: Scales) -> float:
    return p.value if p.value is not None and p.value > 0 else s.bottom_value


def _marker(marker: Marker, x: float, y: float) -> str:
    if marker is Marker.DETECTED:
        return f'<circle cx="{_n(x)}" cy="{_n(y)}" r="4.5" fill="{BLUE}"/>'
    if marker is Marker.CONVERTED:
        return (
            f'<path d="M{_n(x)} {_n(y - 6)} L{_n(x + 6)} {_n(y)} L{_n(x)} {_n(y + 6)} '
            f'L{_n(x - 6)} {_n(y)} Z" fill="{BLUE}" stroke="#ffffff"/>'
        )
    if marker in (Marker.UNDETECTABLE, Marker.INADEQUATE):
        colour = BLUE if marker is Marker.UNDETECTABLE else GREY
        dash = ' stroke-dasharray="2 1.5"' if marker is Marker.INADEQUATE else ""
        return (
            f'<path d="M{_n(x - 6)} {_n(y - 5)} L{_n(x + 6)} {_n(y - 5)} L{_n(x)} {_n(y + 5)} Z" '
            f'fill="#ffffff" stroke="{colour}" stroke-width="2"{dash}/>'
        )
    return (
        f'<path d="M{_n(x - 5)} {_n(y - 5)} L{_n(x + 5)} {_n(y + 5)} M{_n(x - 5)} {_n(y + 5)} '
        f'L{_n(x + 5)} {_n(y - 5)}" stroke="{GREY}" stroke-width="2"/>'
    )


def _lane(data: ChartData, s: Scales) -> list[str]:
    top = s.lane_top
    out = ['<g class="therapy">']
    out.append(f'<text x="{LEFT - 6}" y="{_n(top + 21)}" text-anchor="end" fill="{INK}">TKI</text>')
    if not data.bars:
        out.append(
            f'<text x="{LEFT + 6}" y="{_n(top + 21)}" fill="{MUTED}">No TKI course recorded</text>'
        )
    for b in data.bars:
        x1, x2 = s.x(b.start_months), s.x(max(b.end_months, b.start_months))
        width = max(x2 - x1, 2.0)
        fill = "url(#hold-hatch)" if b.on_hold else DRUG_COLOURS.get(b.drug, "#dddddd")
        out.append(
            f'<rect class="therapy-bar{" on-hold" if b.on_hold else ""}" x="{_n(x1)}" '
            f'y="{_n(top + 6)}" width="{_n(width)}" height="22" fill="{fill}" stroke="#7a7a7a">'
            f"<title>{escape(_bar_title(b))}</title></rect>"
        )
        text = b.label if width > len(b.label) * 6.4 + 8 else _short(b)
        if width > len(text) * 6.4 + 4:
            out.append(
                f'<text x="{_n(x1 + 4)}" y="{_n(top + 21)}" fill="{INK}">{escape(text)}</text>'
            )
    if data.bars and data.bars[-1].end is not None:
        last = data.bars[-1]
        x = s.x(last.end_months)
        why = f" ({last.stop_reason})" if last.stop_reason else ""
        out.append(
            f'<text class="therapy-stop" x="{_n(x + 4)}" y="{_n(top + 21)}" fill="{INK}">'
            f"stopped{escape(why)}</text>"
        )
    out.append("</g>")
    return out


def _bar_title(b: TherapyBar) -> str:
    end = b.end.isoformat() if b.end else "ongoing"
    why = f", ended: {b.stop_reason}" if b.stop_reason else ""
    return f"{b.label}: {b.start.isoformat()} to {end}{why}"


def _short(b: TherapyBar) -> str:
    if b.on_hold:
        return "held"
    return _number(b.daily_dose_mg) if b.daily_dose_mg else b.drug[:3]


def _trough_panel(data: ChartData, s: Scales) -> list[str]:
    top = s.trough_top
    out = ['<g class="troughs">']
    out.append(
        f'<rect x="{LEFT}" y="{_n(top)}" width="{_n(s.plot_right - LEFT)}" '
        f'height="{TROUGH_HEIGHT}" fill="#ffffff" stroke="#8a8a8a"/>'
    )
    step = 1000.0 if s.trough_max > 3000 else 500.0
    value = 0.0
    while value <= s.trough_max:
        y = s.y_trough(value)
        out.append(
            f'<text x="{LEFT - 6}" y="{_n(y + 4)}" text-anchor="end" fill="{INK}" '
            f'font-size="11">{_number(value)}</text>'
        )
        value += step
    out.append(
        f'<text transform="translate(16 {_n(top + TROUGH_HEIGHT / 2)}) rotate(-90)" '
        f'text-anchor="middle" fill="{INK}" font-size="11">Trough (ng/mL)</text>'
    )
    y = s.y_trough(TROUGH_TARGET)
    out.append(
        f'<line class="trough-target" x1="{LEFT}" y1="{_n(y)}" x2="{_n(s.plot_right)}" '
        f'y2="{_n(y)}" stroke="{TARGET}" stroke-width="1.3" stroke-dasharray="6 4"/>'
    )
    out.append(
        f'<text x="{_n(s.plot_right + 6)}" y="{_n(y + 4)}" fill="{TARGET}">'
        f"{TROUGH_TARGET:g} ng/mL</text>"
    )
    for t in data.troughs:
        x, y = s.x(t.months), s.y_trough(min(t.ng_ml, s.trough_max))
        hours = f", {t.hours_since_dose:g} h after the dose" if t.hours_since_dose else ""
        out.append(
            f'<rect class="trough" data-date="{t.date.isoformat()}" data-value="{t.ng_ml:g}" '
            f'x="{_n(x - 4.5)}" y="{_n(y - 4.5)}" width="9" height="9" fill="{TARGET}">'
            f"<title>{escape(f'{t.date.isoformat()}: {t.drug} trough {_number(t.ng_ml)} ng/mL{hours}')}"
            "</title></rect>"
        )
    out.append("</g>")
    return out


def _x_axis(data: ChartData, s: Scales) -> list[str]:
    bottom = (s.trough_top + TROUGH_HEIGHT) if s.has_troughs else (s.lane_top + LANE_HEIGHT)
    out = ['<g class="x-axis">']
    for months in month_ticks(s.month_lo, s.month_hi):
        x = s.x(months)
        out.append(
            f'<line x1="{_n(x)}" y1="{_n(TOP + MAIN_HEIGHT)}" x2="{_n(x)}" '
            f'y2="{_n(TOP + MAIN_HEIGHT + 5)}" stroke="{INK}"/>'
        )
        out.append(
            f'<text x="{_n(x)}" y="{_n(TOP + MAIN_HEIGHT + 17)}" text-anchor="middle" '
            f'fill="{INK}" font-size="11">{months:g}</text>'
        )
        if s.has_troughs:
            out.append(
                f'<text x="{_n(x)}" y="{_n(bottom + 15)}" text-anchor="middle" fill="{INK}" '
                f'font-size="11">{months:g}</text>'
            )
    out.append(
        f'<text x="{_n((LEFT + s.plot_right) / 2)}" y="{_n(bottom + 34)}" text-anchor="middle" '
        f'fill="{INK}">Months since {escape(data.origin_label)}</text>'
    )
    out.append("</g>")
    return out


def _as_of(data: ChartData, s: Scales) -> list[str]:
    x = s.x(data.as_of_months)
    bottom = (s.trough_top + TROUGH_HEIGHT) if s.has_troughs else (s.lane_top + LANE_HEIGHT)
    return [
        f'<g class="as-of"><line x1="{_n(x)}" y1="{TOP - 6}" x2="{_n(x)}" y2="{_n(bottom)}" '
        f'stroke="{INK}" stroke-width="1.2" stroke-dasharray="4 3"/>'
        f'<text x="{_n(x)}" y="{TOP - 10}" text-anchor="end" fill="{INK}" font-size="11">'
        f"as of {data.as_of.isoformat()}</text></g>"
    ]


def _percent_label(value: float) -> str:
    return f"{value:g} %"


def _number(value: float | None) -> str:
    if value is None:
        return ""
    text = f"{value:,.4f}".rstrip("0").rstrip(".")
    return text or "0"


def _n(value: float) -> str:
    """A coordinate: two decimals at most."""
    return f"{value:.2f}".rstrip("0").rstrip(".")
