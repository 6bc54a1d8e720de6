"""The course chart, drawn on the server as SVG: printable, readable without JavaScript, testable.

One figure, panels on one time axis (calendar dates, with months since the start of first-line
TKI under them):

1. BCR::ABL1 on the International Scale, log scale, with the MMR (0.1 %), MR4 (0.01 %) and
   MR4.5 (0.0032 %) lines, the guideline's milestone targets and, where the guideline tables
   give them, its optimal/warning/failure zones per milestone (:func:`milestone_zones`, the one
   place the chart gets them from). Each result is classified by the domain's own rule
   (:func:`fhir_cml.domain.rules.response_depth.classify`): a detected result is drawn at its IS
   value and joined to the next detected one; an undetectable one as an open triangle at the
   level its control-gene copies support (MR4, MR4.5, MR5: the result is at or below it), never
   joined as if measured; one with too few copies at its sensitivity (100 % / ABL1 copies) in
   grey. Kinase-domain mutations are flagged on the panel at the date of the analysis.
2. Results that are not on the IS (no conversion factor, an atypical transcript) are not drawn
   on the IS axis: they sit in a strip of their own, marked "not on the IS".
3. The TKI course: one bar per drug and dose, holds hatched, stops named, changes as dotted
   lines through the panels.
4. Ph+ metaphases (%) when the patient has cytogenetic results (the cytogenetic era).
5. Drug levels against the trough target, a level that is not a valid trough (drawn at the
   wrong time, before steady state, off the drug: the domain's TDM rule decides) hollow.
6. After a TKI stop for treatment-free remission, the months off treatment on a scale of their
   own, so monthly monitoring stays readable however long the course before it.

:data:`WIDE` lays the figure out for a screen or a page; :data:`NARROW` for a phone (375 px):
fewer, larger labels. The data behind the chart (:class:`ChartData`) also fills the tables under
it, so the figure and the tables cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from html import escape
from typing import Final

from fhir_cml.domain import guidelines
from fhir_cml.domain.config import DEFAULT_CONFIG
from fhir_cml.domain.model import BcrAbl1Result, PatientRecord
from fhir_cml.domain.results import Assessment
from fhir_cml.domain.rules.common import add_months, months_between, pct
from fhir_cml.domain.rules.response_depth import classify
from fhir_cml.domain.rules.tdm import read_tdm
from fhir_cml.domain.vocabulary import (
    ControlGene,
    ElnStatus,
    Guideline,
    IssueCode,
    ResponseDepth,
    TdmStatus,
)
from fhir_cml.reporting.words import say


@dataclass(frozen=True, slots=True)
class Layout:
    """Geometry in SVG user units (the figure scales to the width it is shown at)."""

    width: float
    left: float
    right: float
    main_height: float
    font: float
    narrow: bool = False
    top: float = 44
    strip_height: float = 22
    lane_height: float = 34
    panel_height: float = 110
    inset_height: float = 150
    gap: float = 30

    @property
    def small(self) -> float:
        return self.font - 1


WIDE: Final = Layout(width=840, left=74, right=112, main_height=260, font=12)
NARROW: Final = Layout(
    width=420, left=44, right=58, main_height=230, font=13, narrow=True, top=80, inset_height=130
)

REFERENCE_LINES: Final = (("MMR", 0.1), ("MR4", 0.01), ("MR4.5", 0.0032))
# Molecular milestone targets (optimal response) by guideline: (months, IS % at most).
TARGETS: Final = {g: guidelines.targets(g) for g in Guideline}  # from the guideline tables
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
MUTATION: Final = "#8b0000"
ZONE_FILL: Final = {
    ElnStatus.OPTIMAL: "#e3f1e4",
    ElnStatus.WARNING: "#fff1d6",
    ElnStatus.SUBOPTIMAL: "#fff1d6",
    ElnStatus.FAILURE: "#fbe0dd",
}
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
    UNDETECTABLE = "undetectable"  # not detected: at or below the level its copies support
    INADEQUATE = "inadequate"  # not detected with too few (or unreported) control-gene copies
    NOT_USED = "not-used"  # not on the IS without a factor, or an atypical transcript


@dataclass(frozen=True, slots=True)
class ResultPoint:
    """One BCR::ABL1 result as drawn and tabulated. ``value`` is its IS % (or the level or
    sensitivity it is drawn at); for a result not on the IS, the laboratory's own %, shown in
    the table and never on the IS axis. None when there is no value."""

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

    @property
    def on_is_axis(self) -> bool:
        return self.marker is not Marker.NOT_USED


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
    valid: bool = True  # a steady-state trough drawn before the next dose (the TDM rule's call)
    why_not: str = ""


@dataclass(frozen=True, slots=True)
class CytoPoint:
    date: date
    months: float
    ph_positive_percent: float
    method: str
    ref: str


@dataclass(frozen=True, slots=True)
class MutationMark:
    date: date
    months: float
    label: str  # "T315I", or "no mutation found"
    detected: bool
    ref: str


@dataclass(frozen=True, slots=True)
class Target:
    months: float
    value: float

    @property
    def label(self) -> str:
        return f"{_number(self.months)} m: ≤ {self.value:g} %"


@dataclass(frozen=True, slots=True)
class Zone:
    """One band of a milestone: from ``start`` to ``end`` months on therapy, IS % in
    (``low``, ``high``], read as ``status``."""

    start: float
    end: float
    status: ElnStatus
    low: float
    high: float


def milestone_zones(guideline: Guideline) -> tuple[Zone, ...]:
    """The guideline's optimal/warning/failure zones per milestone, for the chart.

    The one seam between the chart and the guideline tables (:mod:`fhir_cml.domain.guidelines`,
    the tables the rules read): no threshold is written here. A milestone's zone spans the
    months its reading applies to: from ``milestone_tolerance_months`` before it until the next
    milestone's window opens (the last: as long again after it). A band that applies only
    under a condition (for example high risk) is left out: the zone shows the plain reading.
    """
    tolerance = DEFAULT_CONFIG.milestone_tolerance_months
    found = guidelines.milestones(guideline)
    zones: list[Zone] = []
    for index, (_, months, bands) in enumerate(found):
        start = max(0.0, months - tolerance)
        end = found[index + 1][1] - tolerance if index + 1 < len(found) else months + tolerance
        for band in bands:
            if band.needs is not None:
                continue
            low = band.above.value if band.above is not None else 0.0
            high = band.upto.value if band.upto is not None else math.inf
            zones.append(Zone(start, end, band.status, low, high))
    return tuple(zones)


@dataclass(frozen=True, slots=True)
class ChartData:
    """Everything the chart and its tables show, in one place."""

    origin: date
    origin_is_tki_start: bool
    as_of: date
    guideline: Guideline
    points: tuple[ResultPoint, ...]
    bars: tuple[TherapyBar, ...]
    troughs: tuple[TroughPoint, ...]
    targets: tuple[Target, ...]
    zones: tuple[Zone, ...] = ()
    cytogenetics: tuple[CytoPoint, ...] = ()
    mutations: tuple[MutationMark, ...] = ()
    tfr_stop: date | None = None  # the TKI stop for treatment-free remission
    trough_target: float = field(default=DEFAULT_CONFIG.trough_target_ng_ml)

    @property
    def as_of_months(self) -> float:
        return months_between(self.origin, self.as_of)

    @property
    def origin_label(self) -> str:
        what = "TKI start" if self.origin_is_tki_start else "first result (no TKI start known)"
        return f"{what}, {self.origin.isoformat()}"

    @property
    def not_on_is(self) -> tuple[ResultPoint, ...]:
        return tuple(p for p in self.points if not p.on_is_axis)

    def date_at(self, months: float) -> date:
        return add_months(self.origin, months)


def chart_data(
    record: PatientRecord, assessment: Assessment, zones: tuple[Zone, ...] | None = None
) -> ChartData:
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
    troughs = []
    for t in record.troughs:
        if t.date > as_of:
            continue
        reading = read_tdm([t], assessment.therapy, DEFAULT_CONFIG)
        invalid = reading.status is TdmStatus.TIMING_INVALID
        why = say(reading.basis) if invalid and reading.basis else ""
        troughs.append(
            TroughPoint(
                t.date,
                months_between(origin, t.date),
                t.ng_ml,
                t.drug.value,
                t.hours_since_dose,
                t.ref,
                not invalid,
                why,
            )
        )
    targets = tuple(Target(m, v) for m, v in TARGETS.get(assessment.guideline, ()))
    cytogenetics = tuple(
        CytoPoint(c.date, months_between(origin, c.date), c.ph_positive_percent, c.method, c.ref)
        for c in record.cytogenetics
        if c.date <= as_of
    )
    mutations = tuple(
        MutationMark(
            m.date,
            months_between(origin, m.date),
            (m.mutation or "mutation") if m.detected else "no mutation found",
            m.detected,
            m.ref,
        )
        for m in record.mutations
        if m.date <= as_of
    )
    return ChartData(
        origin,
        start is not None,
        as_of,
        assessment.guideline,
        points,
        bars,
        tuple(troughs),
        targets,
        milestone_zones(assessment.guideline) if zones is None else zones,
        cytogenetics,
        mutations,
        assessment.tfr.stopped_on,
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
            f"at or below {call.depth.value} ({pct(level)}), the level its control-gene copies "
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
    """Where months and values go on the figure, and where each panel sits."""

    month_lo: float
    month_hi: float
    decade_top: int  # log10 of the top value (100 % -> 2)
    decade_bottom: int  # log10 of the bottom value (0.001 % -> -3)
    trough_max: float
    has_troughs: bool
    layout: Layout = WIDE
    has_strip: bool = False  # results not on the IS
    has_cyto: bool = False
    inset: tuple[float, float] | None = None  # months since the TKI stop shown in the inset

    @property
    def top(self) -> float:
        return self.layout.top

    @property
    def main_height(self) -> float:
        return self.layout.main_height

    @property
    def plot_left(self) -> float:
        return self.layout.left

    @property
    def plot_right(self) -> float:
        return self.layout.width - self.layout.right

    @property
    def main_bottom(self) -> float:
        return self.top + self.main_height

    @property
    def strip_top(self) -> float:
        return self.main_bottom + 8

    @property
    def axis_top(self) -> float:
        """Where the date labels of the time axis start."""
        return self.strip_top + self.layout.strip_height if self.has_strip else self.main_bottom

    @property
    def lane_top(self) -> float:
        return self.axis_top + self.layout.gap + 8

    @property
    def cyto_top(self) -> float:
        return self.lane_top + self.layout.lane_height + self.layout.gap

    @property
    def trough_top(self) -> float:
        base = self.lane_top + self.layout.lane_height
        if self.has_cyto:
            base = self.cyto_top + self.layout.panel_height
        return base + self.layout.gap

    @property
    def panels_bottom(self) -> float:
        """The bottom of the last panel on the shared time axis."""
        if self.has_troughs:
            return self.trough_top + self.layout.panel_height
        if self.has_cyto:
            return self.cyto_top + self.layout.panel_height
        return self.lane_top + self.layout.lane_height

    @property
    def inset_top(self) -> float:
        return self.panels_bottom + self.layout.gap + 26

    @property
    def height(self) -> float:
        bottom = self.panels_bottom + 34
        if self.inset is not None:
            bottom = self.inset_top + self.layout.inset_height + 40
        return bottom

    def x(self, months: float) -> float:
        span = self.month_hi - self.month_lo
        return self.plot_left + (months - self.month_lo) / span * (self.plot_right - self.plot_left)

    def y(self, percent: float) -> float:
        """Log scale: equal distance per decade."""
        return self.y_in(percent, self.top, self.main_height)

    def y_in(self, percent: float, top: float, height: float) -> float:
        decades = self.decade_top - self.decade_bottom
        position = (self.decade_top - math.log10(percent)) / decades
        return top + position * height

    def y_trough(self, ng_ml: float) -> float:
        return self.trough_top + (1 - ng_ml / self.trough_max) * self.layout.panel_height

    def y_cyto(self, percent: float) -> float:
        return self.cyto_top + (1 - percent / 100.0) * self.layout.panel_height

    def x_inset(self, months_off: float) -> float:
        assert self.inset is not None
        lo, hi = self.inset
        return self.plot_left + (months_off - lo) / (hi - lo) * (self.plot_right - self.plot_left)

    @property
    def bottom_value(self) -> float:
        return float(10.0**self.decade_bottom)


def scales(data: ChartData, layout: Layout = WIDE) -> Scales:
    months = [0.0, data.as_of_months]
    months += [p.months for p in data.points]
    months += [b.start_months for b in data.bars] + [t.months for t in data.troughs]
    months += [t.months for t in data.targets] + [c.months for c in data.cytogenetics]
    lo, hi = min(months), max(months)
    lo = math.floor(lo) - 1 if lo < 0 else 0.0
    hi = hi + max(1.0, (hi - lo) * 0.03)
    values = [p.value for p in data.points if p.on_is_axis and p.value is not None and p.value > 0]
    top = max(2, math.ceil(math.log10(max(values)))) if values else 2
    bottom = min(-3, math.floor(math.log10(min(values)))) if values else -3
    peak = max((t.ng_ml for t in data.troughs), default=0.0)
    trough_max = max(2500.0, math.ceil(peak * 1.15 / 500.0) * 500.0)
    inset = None
    if data.tfr_stop is not None and data.tfr_stop <= data.as_of:
        off = months_between(data.tfr_stop, data.as_of)
        inset = (-1.0, max(off, 1.0) + 0.5)
    return Scales(
        lo,
        hi,
        top,
        bottom,
        trough_max,
        bool(data.troughs),
        layout,
        bool(data.not_on_is),
        bool(data.cytogenetics),
        inset,
    )


def month_ticks(lo: float, hi: float, most: int = 10) -> list[float]:
    span = hi - lo
    step = next((s for s in (3, 6, 12, 24, 36, 60, 120) if span / s <= most), 120)
    first = math.ceil(lo / step) * step
    return [float(m) for m in range(int(first), int(hi) + 1, step)]


# --- drawing -------------------------------------------------------------------------------------


def render_svg(data: ChartData, layout: Layout = WIDE) -> str:
    """The figure as an inline SVG element (every text escaped)."""
    s = scales(data, layout)
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_n(layout.width)} {_n(s.height)}" '
        f'role="img" aria-labelledby="chart-title{_id(layout)} chart-desc{_id(layout)}" '
        f'class="course-chart {"narrow" if layout.narrow else "wide"}" '
        "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif\" "
        f'font-size="{_n(layout.font)}">',
        f'<title id="chart-title{_id(layout)}">BCR::ABL1 (IS %, log scale) since the start of TKI '
        "therapy</title>",
        f'<desc id="chart-desc{_id(layout)}">{escape(describe(data))}</desc>',
        _defs(),
    ]
    out += _legend(layout)
    out += _zones(data, s)
    out += _main_axes(data, s)
    out += _targets(data, s)
    out += _changes(data, s)
    out += _mutations(data, s)
    out += _results(data, s)
    if s.has_strip:
        out += _strip(data, s)
    out += _lane(data, s)
    if s.has_cyto:
        out += _cyto_panel(data, s)
    if s.has_troughs:
        out += _trough_panel(data, s)
    out += _x_axis(data, s)
    out += _as_of(data, s)
    if s.inset is not None:
        out += _inset(data, s)
    out.append("</svg>")
    return "\n".join(out)


def _id(layout: Layout) -> str:
    """Element ids differ between the two layouts on one page."""
    return "-narrow" if layout.narrow else ""


def describe(data: ChartData) -> str:
    """The figure in one paragraph, for screen readers (the tables have every value)."""
    used = [p for p in data.points if p.used]
    parts = [
        f"{len(data.points)} BCR::ABL1 results over time since the {data.origin_label}, as of "
        f"{data.as_of.isoformat()}; {len(used)} used for response decisions."
    ]
    if data.points:
        last = data.points[-1]
        parts.append(f"Latest on {last.date.isoformat()}: {last.result} ({last.depth}).")
    if data.not_on_is:
        parts.append(f"{len(data.not_on_is)} not on the International Scale, not drawn on it.")
    found = [m for m in data.mutations if m.detected]
    if found:
        parts.append(
            "Kinase-domain mutations: "
            + "; ".join(f"{m.label} on {m.date.isoformat()}" for m in found)
            + "."
        )
    if data.bars:
        parts.append(
            "Therapy: "
            + "; ".join(f"{b.label} from {b.start.isoformat()}" for b in data.bars)
            + "."
        )
    if data.tfr_stop is not None:
        parts.append(f"Stopped for treatment-free remission on {data.tfr_stop.isoformat()}.")
    if data.troughs:
        parts.append(
            "Drug levels: "
            + "; ".join(
                f"{_number(t.ng_ml)} ng/mL on {t.date.isoformat()}"
                + ("" if t.valid else " (not a valid trough)")
                for t in data.troughs
            )
            + f" (trough target above {data.trough_target:g} ng/mL)."
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


def _legend(layout: Layout) -> list[str]:
    items = [
        (Marker.DETECTED, "BCR::ABL1 IS"),
        (Marker.CONVERTED, "converted to IS"),
        (Marker.UNDETECTABLE, "not detected (at or below)"),
        (Marker.INADEQUATE, "too few copies"),
    ]
    out = ['<g class="legend" aria-hidden="true">']
    x, y = float(layout.left), 16.0
    step = layout.font * 0.56
    for marker, text in items:
        width = 30 + len(text) * step
        if x + width > layout.width - 8:
            x, y = float(layout.left), y + layout.font + 8
        out.append(_marker(marker, x + 5, y))
        out.append(f'<text x="{_n(x + 14)}" y="{_n(y + 4)}" fill="{INK}">{escape(text)}</text>')
        x += width
    if x + 110 > layout.width - 8:
        x, y = float(layout.left), y + layout.font + 8
    out.append(
        f'<line x1="{_n(x)}" y1="{_n(y)}" x2="{_n(x + 16)}" y2="{_n(y)}" stroke="{TARGET}" '
        'stroke-width="3"/>'
    )
    out.append(f'<text x="{_n(x + 22)}" y="{_n(y + 4)}" fill="{INK}">ELN target</text>')
    out.append("</g>")
    return out


def _zones(data: ChartData, s: Scales) -> list[str]:
    """Each milestone's bands as shaded areas of the panel (from the guideline tables)."""
    out = ['<g class="zones">']
    top, bottom = float(10.0**s.decade_top), s.bottom_value
    for z in data.zones:
        start, end = max(z.start, s.month_lo), min(z.end, s.month_hi)
        if start >= end:
            continue
        high, low = min(z.high, top), max(z.low, bottom)
        if high <= low:
            continue
        y1, y2 = s.y(high), s.y(low)
        out.append(
            f'<rect class="zone {z.status.value}" data-status="{z.status.value}" '
            f'x="{_n(s.x(start))}" y="{_n(y1)}" width="{_n(s.x(end) - s.x(start))}" '
            f'height="{_n(y2 - y1)}" fill="{ZONE_FILL.get(z.status, "#eeeeee")}">'
            f"<title>{escape(f'{data.guideline.label} {z.status.value}: {_number(z.start)}-{_number(z.end)} months, IS {z.low:g}-{z.high:g} %')}"
            "</title></rect>"
        )
    out.append("</g>")
    return out


def _main_axes(data: ChartData, s: Scales) -> list[str]:
    lay = s.layout
    out = ['<g class="axes">']
    fill = "none" if data.zones else "#ffffff"
    out.append(
        f'<rect x="{_n(s.plot_left)}" y="{_n(s.top)}" width="{_n(s.plot_right - s.plot_left)}" '
        f'height="{_n(s.main_height)}" fill="{fill}" stroke="#8a8a8a"/>'
    )
    for decade in range(s.decade_bottom, s.decade_top + 1):
        value = 10.0**decade
        y = s.y(value)
        out.append(
            f'<line class="decade" x1="{_n(s.plot_left)}" y1="{_n(y)}" x2="{_n(s.plot_right)}" '
            f'y2="{_n(y)}" stroke="#d9d9d9"/>'
        )
        out.append(
            f'<text x="{_n(s.plot_left - 5)}" y="{_n(y + 4)}" text-anchor="end" fill="{INK}">'
            f"{escape(_percent_label(value, lay.narrow))}</text>"
        )
    if not lay.narrow:
        out.append(
            f'<text transform="translate(16 {_n(s.top + s.main_height / 2)}) rotate(-90)" '
            f'text-anchor="middle" fill="{INK}">BCR::ABL1 IS (%, log scale)</text>'
        )
    for name, value in REFERENCE_LINES:
        y = s.y(value)
        out.append(
            f'<line class="reference" data-level="{escape(name)}" data-value="{value:g}" '
            f'x1="{_n(s.plot_left)}" y1="{_n(y)}" x2="{_n(s.plot_right)}" y2="{_n(y)}" '
            f'stroke="{REFERENCE}" stroke-width="1.3" stroke-dasharray="6 4"/>'
        )
        label = name if lay.narrow else f"{name} {value:g} %"
        out.append(
            f'<text x="{_n(s.plot_right + 4)}" y="{_n(y + 4)}" fill="{REFERENCE}">'
            f"{escape(label)}</text>"
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
            f'<line x1="{_n(x)}" y1="{_n(s.top)}" x2="{_n(x)}" y2="{_n(s.main_bottom)}" '
            f'stroke="{TARGET}" stroke-opacity="0.35" stroke-dasharray="2 3"/>'
        )
        out.append(
            f'<line class="milestone-target" data-months="{t.months:g}" data-value="{t.value:g}" '
            f'x1="{_n(x - 9)}" y1="{_n(y)}" x2="{_n(x + 9)}" y2="{_n(y)}" stroke="{TARGET}" '
            f'stroke-width="3"><title>{escape(data.guideline.label)} target at '
            f"{escape(t.label)}</title></line>"
        )
        if not s.layout.narrow:
            out.append(
                f'<text x="{_n(x + 11)}" y="{_n(y - 5)}" fill="{TARGET}" '
                f'font-size="{_n(s.layout.small)}">{escape(t.label)}</text>'
            )
    out.append("</g>")
    return out


def _changes(data: ChartData, s: Scales) -> list[str]:
    """Dotted lines through the panels where the drug or dose changed, or therapy stopped."""
    out = ['<g class="therapy-changes">']
    for months, text in therapy_changes(data.bars):
        x = s.x(months)
        out.append(
            f'<line class="therapy-change" x1="{_n(x)}" y1="{_n(s.top)}" x2="{_n(x)}" '
            f'y2="{_n(s.panels_bottom)}" stroke="{MUTED}" stroke-dasharray="1 3">'
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


def _mutations(data: ChartData, s: Scales) -> list[str]:
    """A flag at the date of each kinase-domain mutation analysis: the mutation named in red,
    a negative analysis as a small grey tick."""
    out = ['<g class="mutations">']
    for m in data.mutations:
        if not s.month_lo <= m.months <= s.month_hi:
            continue
        x = s.x(m.months)
        title = f"{m.date.isoformat()}: kinase-domain mutation analysis, {m.label}"
        if m.detected:
            out.append(
                f'<g class="mutation detected" data-date="{m.date.isoformat()}">'
                f"<title>{escape(title)}</title>"
                f'<line x1="{_n(x)}" y1="{_n(s.top)}" x2="{_n(x)}" y2="{_n(s.main_bottom)}" '
                f'stroke="{MUTATION}" stroke-width="1.5" stroke-dasharray="5 3"/>'
                f'<text x="{_n(x + 3)}" y="{_n(s.top + s.layout.font + 2)}" fill="{MUTATION}" '
                f'font-weight="700">{escape(m.label)}</text></g>'
            )
        else:
            out.append(
                f'<g class="mutation none-found" data-date="{m.date.isoformat()}">'
                f"<title>{escape(title)}</title>"
                f'<line x1="{_n(x)}" y1="{_n(s.top)}" x2="{_n(x)}" y2="{_n(s.top + 10)}" '
                f'stroke="{GREY}" stroke-width="2"/></g>'
            )
    out.append("</g>")
    return out


def _results(data: ChartData, s: Scales) -> list[str]:
    out = ['<g class="results">']
    for run in measured_runs(data.points):
        path = " ".join(f"{_n(s.x(p.months))},{_n(s.y(_value(p, s)))}" for p in run)
        out.append(
            f'<polyline class="trend" points="{path}" fill="none" stroke="{BLUE}" '
            'stroke-opacity="0.45" stroke-width="1.5"/>'
        )
    for p in data.points:
        if not p.on_is_axis:
            continue
        x, y = s.x(p.months), s.y(_value(p, s))
        out.append(_result_group(p, _marker(p.marker, x, y)))
    out.append("</g>")
    return out


def measured_runs(points: Sequence[ResultPoint]) -> list[list[ResultPoint]]:
    """Consecutive measured results (detected on the IS) joined by the trend line: a result
    that was not measured (not detected, not on the IS) breaks the line."""
    runs: list[list[ResultPoint]] = [[]]
    for p in points:
        if p.marker in (Marker.DETECTED, Marker.CONVERTED) and p.value is not None:
            runs[-1].append(p)
        elif runs[-1]:
            runs.append([])
    return [r for r in runs if len(r) > 1]


def _result_group(p: ResultPoint, marker: str) -> str:
    note = f"; {p.note}" if p.note else ""
    title = f"{p.date.isoformat()}: {p.result}, {p.depth} (control {p.control}){note}"
    return (
        f'<g class="result {p.marker.value}" data-date="{p.date.isoformat()}" '
        f'data-value="{"" if p.value is None else f"{p.value:g}"}">'
        f"<title>{escape(title)}</title>{marker}</g>"
    )


def _strip(data: ChartData, s: Scales) -> list[str]:
    """Results not on the IS, at their dates, off the IS axis."""
    top, height = s.strip_top, s.layout.strip_height
    out = ['<g class="not-on-is">']
    out.append(
        f'<rect x="{_n(s.plot_left)}" y="{_n(top)}" width="{_n(s.plot_right - s.plot_left)}" '
        f'height="{_n(height)}" fill="#f2f2f2" stroke="#b0b0b0"/>'
    )
    out.append(
        f'<text x="{_n(s.plot_right + 4)}" y="{_n(top + height / 2 + 4)}" fill="{MUTED}" '
        f'font-size="{_n(s.layout.small)}">{"not IS" if s.layout.narrow else "not on the IS"}'
        "</text>"
    )
    for p in data.not_on_is:
        x = s.x(p.months)
        out.append(_result_group(p, _marker(Marker.NOT_USED, x, top + height / 2)))
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
    lay = s.layout
    out = ['<g class="therapy">']
    out.append(
        f'<text x="{_n(s.plot_left - 5)}" y="{_n(top + 21)}" text-anchor="end" fill="{INK}">'
        "TKI</text>"
    )
    if not data.bars:
        out.append(
            f'<text x="{_n(s.plot_left + 6)}" y="{_n(top + 21)}" fill="{MUTED}">'
            "No TKI course recorded</text>"
        )
    char = lay.font * 0.54
    for b in data.bars:
        x1, x2 = s.x(b.start_months), s.x(max(b.end_months, b.start_months))
        width = max(x2 - x1, 2.0)
        fill = "url(#hold-hatch)" if b.on_hold else DRUG_COLOURS.get(b.drug, "#dddddd")
        out.append(
            f'<rect class="therapy-bar{" on-hold" if b.on_hold else ""}" x="{_n(x1)}" '
            f'y="{_n(top + 6)}" width="{_n(width)}" height="22" fill="{fill}" stroke="#7a7a7a">'
            f"<title>{escape(_bar_title(b))}</title></rect>"
        )
        text = b.label if width > len(b.label) * char + 8 else _short(b)
        if width > len(text) * char + 4:
            out.append(
                f'<text x="{_n(x1 + 4)}" y="{_n(top + 21)}" fill="{INK}">{escape(text)}</text>'
            )
    if data.bars and data.bars[-1].end is not None:
        last = data.bars[-1]
        x = s.x(last.end_months)
        why = f" ({last.stop_reason})" if last.stop_reason else ""
        anchor = ' text-anchor="end"' if x > s.plot_right - 80 else ""
        dx = -4 if anchor else 4
        out.append(
            f'<text class="therapy-stop" x="{_n(x + dx)}" y="{_n(top + 21)}" fill="{INK}"'
            f"{anchor}>stopped{escape(why)}</text>"
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


def _panel_frame(s: Scales, top: float, label: str) -> list[str]:
    lay = s.layout
    out = [
        f'<rect x="{_n(s.plot_left)}" y="{_n(top)}" width="{_n(s.plot_right - s.plot_left)}" '
        f'height="{_n(lay.panel_height)}" fill="#ffffff" stroke="#8a8a8a"/>'
    ]
    if lay.narrow:
        out.append(
            f'<text x="{_n(s.plot_left)}" y="{_n(top - 4)}" fill="{INK}" '
            f'font-size="{_n(lay.small)}">{escape(label)}</text>'
        )
    else:
        out.append(
            f'<text transform="translate(16 {_n(top + lay.panel_height / 2)}) rotate(-90)" '
            f'text-anchor="middle" fill="{INK}" font-size="{_n(lay.small)}">{escape(label)}</text>'
        )
    return out


def _cyto_panel(data: ChartData, s: Scales) -> list[str]:
    """Ph+ metaphases (%), linear 0-100, for patients followed cytogenetically."""
    top = s.cyto_top
    out = ['<g class="cytogenetics">', *_panel_frame(s, top, "Ph+ (%)")]
    for value in (0.0, 50.0, 100.0):
        y = s.y_cyto(value)
        out.append(
            f'<text x="{_n(s.plot_left - 5)}" y="{_n(y + 4)}" text-anchor="end" fill="{INK}" '
            f'font-size="{_n(s.layout.small)}">{value:g}</text>'
        )
    for c in data.cytogenetics:
        x, y = s.x(c.months), s.y_cyto(c.ph_positive_percent)
        title = f"{c.date.isoformat()}: Ph+ {_number(c.ph_positive_percent)} % ({c.method})"
        out.append(
            f'<g class="cyto" data-date="{c.date.isoformat()}" '
            f'data-value="{c.ph_positive_percent:g}"><title>{escape(title)}</title>'
            f'<rect x="{_n(x - 5)}" y="{_n(y - 5)}" width="10" height="10" fill="#5b2a86"/></g>'
        )
    out.append("</g>")
    return out


def _trough_panel(data: ChartData, s: Scales) -> list[str]:
    top = s.trough_top
    lay = s.layout
    label = "Level (ng/mL)" if lay.narrow else "Trough (ng/mL)"
    out = ['<g class="troughs">', *_panel_frame(s, top, label)]
    step = 1000.0 if s.trough_max > 3000 else 500.0
    if lay.narrow:
        step *= 2
    value = 0.0
    while value <= s.trough_max:
        y = s.y_trough(value)
        out.append(
            f'<text x="{_n(s.plot_left - 5)}" y="{_n(y + 4)}" text-anchor="end" fill="{INK}" '
            f'font-size="{_n(lay.small)}">{_number(value)}</text>'
        )
        value += step
    y = s.y_trough(data.trough_target)
    out.append(
        f'<line class="trough-target" x1="{_n(s.plot_left)}" y1="{_n(y)}" '
        f'x2="{_n(s.plot_right)}" y2="{_n(y)}" stroke="{TARGET}" stroke-width="1.3" '
        'stroke-dasharray="6 4"/>'
    )
    out.append(
        f'<text x="{_n(s.plot_right + 4)}" y="{_n(y + 4)}" fill="{TARGET}">'
        f"{data.trough_target:g}{'' if lay.narrow else ' ng/mL'}</text>"
    )
    for t in data.troughs:
        x, y = s.x(t.months), s.y_trough(min(t.ng_ml, s.trough_max))
        hours = f", {t.hours_since_dose:g} h after the dose" if t.hours_since_dose else ""
        what = "trough" if t.valid else "level, not a valid trough"
        why = f": {t.why_not}" if t.why_not else ""
        title = f"{t.date.isoformat()}: {t.drug} {what} {_number(t.ng_ml)} ng/mL{hours}{why}"
        fill = TARGET if t.valid else "#ffffff"
        out.append(
            f'<rect class="trough{"" if t.valid else " not-trough"}" '
            f'data-date="{t.date.isoformat()}" data-value="{t.ng_ml:g}" '
            f'x="{_n(x - 4.5)}" y="{_n(y - 4.5)}" width="9" height="9" fill="{fill}" '
            f'stroke="{TARGET}" stroke-width="2"><title>{escape(title)}</title></rect>'
        )
    out.append("</g>")
    return out


def _x_axis(data: ChartData, s: Scales) -> list[str]:
    """Calendar dates on the axis, months on therapy under them; grid lines through the
    panels below."""
    lay = s.layout
    out = ['<g class="x-axis">']
    most = 4 if lay.narrow else 10
    y = s.axis_top
    for months in month_ticks(s.month_lo, s.month_hi, most):
        x = s.x(months)
        when = data.date_at(months)
        out.append(
            f'<line x1="{_n(x)}" y1="{_n(s.main_bottom)}" x2="{_n(x)}" y2="{_n(y + 4)}" '
            f'stroke="{INK}"/>'
        )
        out.append(
            f'<text class="tick-date" x="{_n(x)}" y="{_n(y + lay.font + 4)}" '
            f'text-anchor="middle" fill="{INK}" font-size="{_n(lay.small)}">'
            f"{when.strftime('%Y-%m')}</text>"
        )
        out.append(
            f'<text class="tick-months" x="{_n(x)}" y="{_n(y + 2 * lay.font + 6)}" '
            f'text-anchor="middle" fill="{MUTED}" font-size="{_n(lay.small)}">'
            f"{months:g} m</text>"
        )
        out.append(
            f'<line class="grid" x1="{_n(x)}" y1="{_n(s.lane_top)}" x2="{_n(x)}" '
            f'y2="{_n(s.panels_bottom)}" stroke="#e3e3e3"/>'
        )
    caption = (
        f"m = months since {data.origin_label}"
        if lay.narrow
        else f"Dates; m = months since {data.origin_label}"
    )
    out.append(
        f'<text x="{_n((s.plot_left + s.plot_right) / 2)}" y="{_n(s.panels_bottom + 24)}" '
        f'text-anchor="middle" fill="{INK}" font-size="{_n(lay.small)}">{escape(caption)}</text>'
    )
    out.append("</g>")
    return out


def _as_of(data: ChartData, s: Scales) -> list[str]:
    x = s.x(data.as_of_months)
    return [
        f'<g class="as-of"><line x1="{_n(x)}" y1="{_n(s.top - 6)}" x2="{_n(x)}" '
        f'y2="{_n(s.panels_bottom)}" stroke="{INK}" stroke-width="1.2" stroke-dasharray="4 3"/>'
        f'<text x="{_n(x)}" y="{_n(s.top - 10)}" text-anchor="end" fill="{INK}" '
        f'font-size="{_n(s.layout.small)}">as of {data.as_of.isoformat()}</text></g>'
    ]


def _inset(data: ChartData, s: Scales) -> list[str]:
    """The months after a TKI stop for treatment-free remission, on a scale of their own."""
    assert s.inset is not None
    assert data.tfr_stop is not None
    lay = s.layout
    stop = data.tfr_stop
    top, height = s.inset_top, lay.inset_height
    lo, hi = s.inset
    out = ['<g class="tfr-inset">']
    out.append(
        f'<text x="{_n(s.plot_left)}" y="{_n(top - 8)}" fill="{INK}" font-weight="700">'
        f"After the TKI stop on {stop.isoformat()}</text>"
    )
    out.append(
        f'<rect x="{_n(s.plot_left)}" y="{_n(top)}" width="{_n(s.plot_right - s.plot_left)}" '
        f'height="{_n(height)}" fill="#ffffff" stroke="#8a8a8a"/>'
    )
    for decade in range(s.decade_bottom, s.decade_top + 1):
        value = 10.0**decade
        y = s.y_in(value, top, height)
        out.append(
            f'<line x1="{_n(s.plot_left)}" y1="{_n(y)}" x2="{_n(s.plot_right)}" y2="{_n(y)}" '
            f'stroke="#ececec"/>'
        )
        if decade % 2 == 0 or not lay.narrow:
            out.append(
                f'<text x="{_n(s.plot_left - 5)}" y="{_n(y + 4)}" text-anchor="end" '
                f'fill="{INK}" font-size="{_n(lay.small)}">'
                f"{escape(_percent_label(value, lay.narrow))}</text>"
            )
    for name, value in REFERENCE_LINES[:1]:
        y = s.y_in(value, top, height)
        out.append(
            f'<line class="reference" data-level="{escape(name)}" x1="{_n(s.plot_left)}" '
            f'y1="{_n(y)}" x2="{_n(s.plot_right)}" y2="{_n(y)}" stroke="{REFERENCE}" '
            'stroke-width="1.3" stroke-dasharray="6 4"/>'
        )
        out.append(
            f'<text x="{_n(s.plot_right + 4)}" y="{_n(y + 4)}" fill="{REFERENCE}">'
            f"{escape(name)}</text>"
        )
    x0 = s.x_inset(0.0)
    out.append(
        f'<line class="stop" x1="{_n(x0)}" y1="{_n(top)}" x2="{_n(x0)}" y2="{_n(top + height)}" '
        f'stroke="{INK}" stroke-width="1.2"/>'
    )
    shown = [p for p in data.points if p.on_is_axis and lo <= months_between(stop, p.date) <= hi]
    measured = measured_runs(shown)
    for run in measured:
        path = " ".join(
            f"{_n(s.x_inset(months_between(stop, p.date)))},{_n(s.y_in(_value(p, s), top, height))}"
            for p in run
        )
        out.append(
            f'<polyline class="trend" points="{path}" fill="none" stroke="{BLUE}" '
            'stroke-opacity="0.45" stroke-width="1.5"/>'
        )
    for p in shown:
        x = s.x_inset(months_between(stop, p.date))
        y = s.y_in(_value(p, s), top, height)
        out.append(
            _result_group(p, _marker(p.marker, x, y)).replace(
                'class="result', 'class="inset-result', 1
            )
        )
    step = next(m for m in (1, 2, 3, 6, 12, 24) if (hi - lo) / m <= (4 if lay.narrow else 12))
    month = 0
    while month <= hi:
        x = s.x_inset(float(month))
        out.append(
            f'<text x="{_n(x)}" y="{_n(top + height + lay.font + 4)}" text-anchor="middle" '
            f'fill="{INK}" font-size="{_n(lay.small)}">{month}</text>'
        )
        month += step
    out.append(
        f'<text x="{_n((s.plot_left + s.plot_right) / 2)}" y="{_n(top + height + 2 * lay.font + 10)}" '
        f'text-anchor="middle" fill="{INK}" font-size="{_n(lay.small)}">Months off TKI</text>'
    )
    out.append("</g>")
    return out


def _percent_label(value: float, short: bool = False) -> str:
    return f"{value:g}" if short else f"{value:g} %"


def _number(value: float | None) -> str:
    if value is None:
        return ""
    text = f"{value:,.4f}".rstrip("0").rstrip(".")
    return text or "0"


def _n(value: float) -> str:
    """A coordinate: two decimals at most."""
    return f"{value:.2f}".rstrip("0").rstrip(".")
