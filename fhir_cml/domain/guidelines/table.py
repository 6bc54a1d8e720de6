"""The shape of a guideline's response table: rows (milestones), bands (a status over a range of
one measure, with its comparators) and criteria (events such as a resistance mutation).

A band is the guideline's cell read literally: ``Band(WARNING, BCR_ABL1, above=Bound(GT, 1),
upto=Bound(LE, 10))`` is "> 1-10 %". Everything that reads or shows a threshold - the milestone
rule, the SMART chart, the rule catalogue, the PlanDefinitions, the boundary tests - takes it
from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fhir_cml.domain.citations import Citation
from fhir_cml.domain.rule import Rule, rule
from fhir_cml.domain.vocabulary import ElnStatus, Guideline, Milestone, Recommendation


class Measure(StrEnum):
    BCR_ABL1 = "bcr-abl1"  # BCR::ABL1 on the International Scale, %
    PH_POSITIVE = "ph-positive"  # Ph+ metaphases (or FISH nuclei), %
    CHR = "chr"  # complete hematologic response: 1 present, 0 absent


class Op(StrEnum):
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


@dataclass(frozen=True, slots=True)
class Bound:
    op: Op
    value: float

    def admits(self, x: float) -> bool:
        if self.op is Op.LT:
            return x < self.value
        if self.op is Op.LE:
            return x <= self.value
        if self.op is Op.GT:
            return x > self.value
        return x >= self.value


class Condition(StrEnum):
    """Something a band needs besides the value."""

    # ELN 2020 at 3 months: "> 10 % if confirmed within 1-3 months" (by a later result > 10 %)
    CONFIRMED_LATER = "confirmed-later"


@dataclass(frozen=True, slots=True)
class Band:
    status: ElnStatus
    measure: Measure
    above: Bound | None = None  # the lower edge (> or >=); None: no lower edge
    upto: Bound | None = None  # the upper edge (< or <=); None: no upper edge
    needs: Condition | None = None

    def contains(self, x: float) -> bool:
        return (self.above is None or self.above.admits(x)) and (
            self.upto is None or self.upto.admits(x)
        )

    @property
    def thresholds(self) -> tuple[Bound, ...]:
        return tuple(b for b in (self.above, self.upto) if b is not None)


class Event(StrEnum):
    """Criteria that are not a value in a band."""

    HIGH_RISK_ELTS = "high-risk-elts"
    HIGH_RISK_ACA = "high-risk-aca"  # at diagnosis (baseline row) or emerging on treatment
    CLONAL_ABNORMALITY_PH_POSITIVE = "clonal-abnormality-ph-positive"
    RESISTANCE_MUTATION = "resistance-mutation"
    MUTATION_POORLY_SENSITIVE = "mutation-poorly-sensitive"  # to imatinib (ELN 2009)
    MUTATION_SENSITIVE = "mutation-sensitive"  # still sensitive to imatinib (ELN 2009)
    LOSS_OF_MMR = "loss-of-mmr"
    CONFIRMED_LOSS_OF_MMR = "confirmed-loss-of-mmr"  # 2 consecutive tests, one >= 1 % (ELN 2013)
    LOSS_OF_MMR_AFTER_STOP = "loss-of-mmr-after-stop"
    LOSS_OF_CCYR = "loss-of-ccyr"
    LOSS_OF_CHR = "loss-of-chr"


@dataclass(frozen=True, slots=True)
class Criterion:
    event: Event
    status: ElnStatus


@dataclass(frozen=True, slots=True)
class Row:
    """One milestone of the table: its bands per measure and its event criteria."""

    milestone: Milestone
    months: float | None  # None for baseline and 'any time'
    rule: Rule
    bands: tuple[Band, ...] = ()
    criteria: tuple[Criterion, ...] = ()

    def bands_for(self, measure: Measure) -> tuple[Band, ...]:
        return tuple(b for b in self.bands if b.measure is measure)

    def band(self, measure: Measure, value: float, met: frozenset[Condition]) -> Band | None:
        """The band the value falls in; a band needing a condition counts only when it is met,
        and then before the band without it."""
        found = [
            b
            for b in self.bands_for(measure)
            if b.contains(value) and (b.needs is None or b.needs in met)
        ]
        found.sort(key=lambda b: b.needs is None)
        return found[0] if found else None

    def criterion(self, event: Event) -> Criterion | None:
        return next((c for c in self.criteria if c.event is event), None)

    @property
    def measures(self) -> tuple[Measure, ...]:
        return tuple(dict.fromkeys(b.measure for b in self.bands))


@dataclass(frozen=True, slots=True)
class GuidelineTable:
    guideline: Guideline
    citation: Citation
    where: str  # the table of the paper
    rows: tuple[Row, ...]

    def row(self, milestone: Milestone) -> Row | None:
        return next((r for r in self.rows if r.milestone is milestone), None)

    @property
    def timed(self) -> tuple[Row, ...]:
        """The rows read at a time on therapy (3, 6, 12 and 18 months), earliest first."""
        return tuple(r for r in self.rows if r.months is not None)

    @property
    def statuses(self) -> tuple[ElnStatus, ...]:
        """The response categories this guideline uses, best first."""
        used = {b.status for r in self.rows for b in r.bands} | {
            c.status for r in self.rows for c in r.criteria
        }
        return tuple(s for s in _STATUS_ORDER if s in used)

    def bands(self, milestone: Milestone, measure: Measure = Measure.BCR_ABL1) -> tuple[Band, ...]:
        row = self.row(milestone)
        return row.bands_for(measure) if row is not None else ()


_STATUS_ORDER = (ElnStatus.OPTIMAL, ElnStatus.WARNING, ElnStatus.SUBOPTIMAL, ElnStatus.FAILURE)


@dataclass(frozen=True, slots=True)
class Source:
    """Where a guideline's rows come from: the rule ids, titles and citations follow from it."""

    guideline: Guideline
    label: str  # "ELN 2020"
    citation: Citation
    where: str

    def row(
        self,
        milestone: Milestone,
        months: float | None,
        bands: tuple[Band, ...] = (),
        criteria: tuple[Criterion, ...] = (),
        leads_to: tuple[Recommendation, ...] = (),
    ) -> Row:
        """A row with its rule (id ``<guideline>-<milestone>``, title in the table's notation)."""
        made = rule(
            f"{self.guideline.value}-{milestone.value}",
            describe(self.label, milestone, months, bands, criteria),
            (self.citation,),
            self.where,
            self.guideline.value,
            leads_to,
        )
        return Row(milestone, months, made, bands, criteria)

    def table(self, *rows: Row) -> GuidelineTable:
        return GuidelineTable(self.guideline, self.citation, self.where, rows)


def describe(
    label: str,
    milestone: Milestone,
    months: float | None,
    bands: tuple[Band, ...],
    criteria: tuple[Criterion, ...],
) -> str:
    """A row in the guideline's own notation, for the rule catalogue: "ELN 2020 at 12 months:
    optimal BCR::ABL1 <= 0.1 %; warning BCR::ABL1 > 0.1-1 %; failure BCR::ABL1 > 1 %"."""
    when = f"at {months:g} months" if months is not None else f"at {milestone.value}"
    when = {Milestone.BASELINE: "at baseline", Milestone.ANY: "at any time"}.get(milestone, when)
    parts: list[str] = []
    for status in _STATUS_ORDER:
        cells = [band_text(b) for b in bands if b.status is status]
        cells += [EVENT_LABELS[c.event] for c in criteria if c.status is status]
        if cells:
            parts.append(f"{status.value} {', '.join(cells)}")
    return f"{label} {when}: " + "; ".join(parts)


# The events as the guidelines name them.
EVENT_LABELS = {
    Event.HIGH_RISK_ELTS: "high-risk ELTS score",
    Event.HIGH_RISK_ACA: "high-risk ACA",
    Event.CLONAL_ABNORMALITY_PH_POSITIVE: "clonal chromosome abnormality in Ph+ cells",
    Event.RESISTANCE_MUTATION: "resistance mutation",
    Event.MUTATION_POORLY_SENSITIVE: "mutation poorly sensitive to imatinib",
    Event.MUTATION_SENSITIVE: "mutation still sensitive to imatinib",
    Event.LOSS_OF_MMR: "loss of MMR",
    Event.CONFIRMED_LOSS_OF_MMR: "confirmed loss of MMR",
    Event.LOSS_OF_MMR_AFTER_STOP: "loss of MMR after stopping TKI",
    Event.LOSS_OF_CCYR: "loss of CCyR",
    Event.LOSS_OF_CHR: "loss of CHR",
}
_MEASURE = {Measure.BCR_ABL1: "BCR::ABL1", Measure.PH_POSITIVE: "Ph+", Measure.CHR: "CHR"}


def band_text(band: Band) -> str:
    name = _MEASURE[band.measure]
    if band.measure is Measure.CHR:
        text = "no CHR" if band.upto is not None else "CHR"
    elif band.above is not None and band.upto is not None:
        text = f"{name} {band.above.op} {band.above.value:g}-{band.upto.value:g} %"
        if band.upto.op is Op.LT:
            text = f"{name} {band.above.op} {band.above.value:g} and < {band.upto.value:g} %"
    elif band.upto is not None and band.upto.op is Op.LE and band.upto.value == 0:
        text = f"{name} 0 %"
    else:
        edge = band.above or band.upto
        assert edge is not None
        text = f"{name} {edge.op} {edge.value:g} %"
    if band.needs is Condition.CONFIRMED_LATER:
        text += " confirmed by a later result within 1-3 months"
    return text
