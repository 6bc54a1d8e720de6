"""Reading the course against a guideline table: ELN 2020, ELN 2013 or ELN 2009.

Time runs from the start of first-line TKI. A milestone's window opens ``milestone_tolerance_months``
before it and lasts until the next one opens; after the last milestone the 'any time' row applies.
In each window, per measure (BCR::ABL1, Ph+, CHR):

- the result read **at** the milestone is the one nearest to it (the reading names it and why);
- a later result in the same window is *interim*: it can make the reading worse (a rising value,
  the confirmation of a 3-month value), never better - "a later result never erases a milestone
  warning already reached";
- an earlier one is shown, and does not count.

ELN 2020's 3-month failure needs a **later** result > 10 % taken 1-3 months after the 3-month one
("> 10 % if confirmed within 1-3 months"); an earlier sample never confirms. Results after a stop
for treatment-free remission are off treatment: they are not read against the milestones (their
loss of MMR is read as the TFR relapse). Any-time events (mutations, losses of response, clonal
abnormalities) make the reading worse. The baseline row (e.g. a high-risk ACA at diagnosis, a
high-risk ELTS) sets the reading only until the first milestone has been read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from operator import attrgetter

from fhir_cml.domain.basis import Basis, Months, Percent, Value, basis
from fhir_cml.domain.config import RuleConfig
from fhir_cml.domain.findings import Finding
from fhir_cml.domain.frozen import quick_init
from fhir_cml.domain.guidelines import Band, Condition, Event, GuidelineTable, Measure, Row, table
from fhir_cml.domain.guidelines.eln2009 import SUMMARY_CALLS_SUBOPTIMAL
from fhir_cml.domain.model import BcrAbl1Result, CytogeneticResult, MutationResult
from fhir_cml.domain.results import ElnReading, Gap, LossOfMmr, MilestoneReading, Therapy
from fhir_cml.domain.rules import catalogue as rules
from fhir_cml.domain.rules.common import months_between
from fhir_cml.domain.rules.hematology import ChrAssessment
from fhir_cml.domain.rules.response_depth import MMR_LIMIT, DepthCall
from fhir_cml.domain.vocabulary import ElnStatus, Guideline, Milestone, RiskCategory, TherapyStatus

MOLECULAR, CYTOGENETIC, HEMATOLOGIC = "molecular", "cytogenetic", "hematologic"
_KIND = {Measure.BCR_ABL1: MOLECULAR, Measure.PH_POSITIVE: CYTOGENETIC, Measure.CHR: HEMATOLOGIC}
RANK = {
    ElnStatus.NOT_EVALUABLE: 0,
    ElnStatus.OPTIMAL: 1,
    ElnStatus.WARNING: 2,
    ElnStatus.SUBOPTIMAL: 2,
    ElnStatus.FAILURE: 3,
}
_BY_DATE_AND_KIND = attrgetter("date", "kind")
DOSE_SENSITIVE_MUTATIONS = frozenset({"M351T", "L384M"})
# The roles of results read on continuous treatment (not off treatment after a TFR stop, not in
# re-treatment after a relapse off treatment): only these count as "prior treatment failure".
ON_TREATMENT = frozenset({"milestone", "interim", "early", "any-time"})
# Poorly sensitive to imatinib (ELN 2009 "mutations poorly sensitive to imatinib"): only T315I is
# named with certainty by the sources at hand; other mutations read as still sensitive.
POORLY_SENSITIVE_MUTATIONS = frozenset({"T315I"})


@quick_init
@dataclass(frozen=True, slots=True)
class Item:
    """One dated piece of evidence that a guideline can read."""

    measure: Measure
    date: date
    ref: str
    value: float | None  # IS %, Ph+ %, or 1.0/0.0 for CHR yes/no; None: not readable
    what: Basis  # the result itself (a depth call, a CHR call) or why it cannot be read

    @property
    def kind(self) -> str:
        return _KIND[self.measure]


@dataclass(frozen=True, slots=True)
class Evidence:
    """Everything the milestone reading needs, already filtered to the as-of date."""

    molecular: Sequence[tuple[BcrAbl1Result, DepthCall]]
    cytogenetics: Sequence[CytogeneticResult]
    chr: Sequence[ChrAssessment]
    mutations: Sequence[MutationResult]
    loss_of_mmr: LossOfMmr
    elts: RiskCategory = RiskCategory.NOT_EVALUABLE
    elts_basis: Basis | None = None


def worst(a: ElnStatus, b: ElnStatus) -> ElnStatus:
    return a if RANK[a] >= RANK[b] else b


def milestone_for(guideline: Guideline, months: float, tolerance: float) -> Milestone | None:
    """The latest milestone whose window has opened; 'any time' once past the last one."""
    timed = table(guideline).timed
    for index, row in enumerate(reversed(timed)):
        assert row.months is not None
        if months >= row.months - tolerance:
            if index == 0 and months > row.months + tolerance:
                return Milestone.ANY
            return row.milestone
    return None


def read(
    guideline: Guideline,
    therapy: Therapy,
    evidence: Evidence,
    as_of: date,
    cfg: RuleConfig,
) -> ElnReading:
    tab = table(guideline)
    if therapy.start is None:
        return ElnReading(
            ElnStatus.NOT_EVALUABLE, None, (basis(rules.MILESTONE_WINDOW, Finding.ELN_NO_START),)
        )
    start = therapy.start
    items = _items(evidence, start)
    now = course(therapy, items)
    history = _history(tab, items, now, cfg)
    stopped = therapy.stopped_on if therapy.status is TherapyStatus.TFR else None
    reasons: list[Basis] = []
    status, milestone = _current(tab, history, items, start, as_of, reasons)
    baseline = _baseline(tab, therapy, evidence)
    if status is ElnStatus.NOT_EVALUABLE and milestone is None and baseline:
        # Before the first milestone, the baseline row is the reading; after it, a note.
        status, milestone = ElnStatus.NOT_EVALUABLE, Milestone.BASELINE
        for event_status, found in baseline:
            status = worst(status, event_status)
            reasons.append(found)
        baseline = []
    for event_status, found in _events(tab, therapy, evidence, stopped, as_of):
        if RANK[event_status] > RANK[status]:
            milestone = Milestone.ANY
        status = worst(status, event_status)
        reasons.append(found)
    if status is not ElnStatus.FAILURE:
        since = therapy.current_start or start
        earlier = [
            h
            for h in history
            if h.status is ElnStatus.FAILURE and h.date >= since and h.role in ON_TREATMENT
        ]
        if earlier:
            first = earlier[0]
            reasons.append(
                basis(
                    first.basis.rule,
                    Finding.ELN_EARLIER_FAILURE,
                    first.basis.evidence,
                    milestone=first.milestone,
                    date=first.date,
                )
            )
    reasons.extend(found for _, found in baseline)
    return ElnReading(status, milestone, tuple(reasons), tuple(history))


def _items(evidence: Evidence, start: date) -> list[Item]:
    items: list[Item] = []
    for result, call in evidence.molecular:
        if result.date >= start:
            items.append(Item(Measure.BCR_ABL1, result.date, result.ref, call.value, call.basis))
    for cyto in evidence.cytogenetics:
        if cyto.date >= start:
            what = basis(
                rules.MILESTONE_WINDOW,
                Finding.PH_POSITIVE_RESULT,
                (cyto.ref,),
                value=Percent(cyto.ph_positive_percent),
                method=cyto.method,
                date=cyto.date,
            )
            items.append(
                Item(Measure.PH_POSITIVE, cyto.date, cyto.ref, cyto.ph_positive_percent, what)
            )
    for chr_call in evidence.chr:
        if chr_call.date >= start:
            value = 1.0 if chr_call.complete else 0.0
            items.append(Item(Measure.CHR, chr_call.date, chr_call.refs[0], value, chr_call.basis))
    items.sort(key=_BY_DATE_AND_KIND)
    return items


@dataclass(frozen=True, slots=True)
class Course:
    """Where the course stands for each result: off treatment after a TFR stop, re-treated after
    a relapse off treatment (until MMR is regained), or on first-line-timed treatment."""

    start: date
    off: tuple[Gap, ...]
    restarted: date | None
    regained: date | None  # the first result <= MMR after the restart

    def off_since(self, day: date) -> date | None:
        """The stop the day falls after, when it falls in a time off TKI for TFR."""
        for gap in self.off:
            if gap.start < day and (gap.end is None or day < gap.end):
                return gap.start
        return None

    def retreating(self, day: date) -> bool:
        return (
            self.restarted is not None
            and day >= self.restarted
            and (self.regained is None or day < self.regained)
        )


def course(therapy: Therapy, items: Sequence[Item]) -> Course:
    assert therapy.start is not None
    restarted = therapy.restarted
    regained = None
    if restarted is not None:
        regained = next(
            (
                i.date
                for i in items
                if i.measure is Measure.BCR_ABL1
                and i.value is not None
                and i.value <= MMR_LIMIT
                and i.date >= restarted
            ),
            None,
        )
    return Course(therapy.start, therapy.tfr_stops, restarted, regained)


def _history(
    tab: GuidelineTable, items: list[Item], now: Course, cfg: RuleConfig
) -> list[MilestoneReading]:
    """Every result read against its milestone, with the role it plays there."""
    tolerance = cfg.milestone_tolerance_months
    windows: dict[tuple[Milestone, Measure], list[tuple[Item, float]]] = {}
    placed: list[tuple[Item, float, Milestone]] = []
    for item in items:
        months = months_between(now.start, item.date)
        after_restart = now.restarted is not None and item.date >= now.restarted
        if now.off_since(item.date) is not None or after_restart:
            ms: Milestone | None = Milestone.ANY  # not read against the timed milestones
        else:
            ms = milestone_for(tab.guideline, months, tolerance)
        if ms is None:
            continue
        placed.append((item, months, ms))
        if item.value is not None and ms is not Milestone.ANY:
            windows.setdefault((ms, item.measure), []).append((item, months))
    at_milestone: dict[tuple[Milestone, Measure], Item] = {}
    for (ms, measure), members in windows.items():
        row = tab.row(ms)
        if row is None or row.months is None:
            continue
        at = row.months
        # nearest to the milestone; of two as near, the later
        nearest = min(members, key=lambda m: (abs(m[1] - at), -m[1]))
        at_milestone[(ms, measure)] = nearest[0]
    history: list[MilestoneReading] = []
    for item, months, ms in placed:
        row = tab.row(ms)
        if row is None:
            continue
        reading = _read_item(tab, row, item, months, items, now, at_milestone, cfg)
        if reading is not None:
            history.append(reading)
    return history


def _role(
    item: Item,
    ms: Milestone,
    now: Course,
    at_milestone: dict[tuple[Milestone, Measure], Item],
) -> str:
    if item.value is None:
        return "unreadable"
    if now.off_since(item.date) is not None:
        return "off-treatment"
    if item.measure is Measure.BCR_ABL1 and now.retreating(item.date):
        return "retreatment"
    if ms is Milestone.ANY:
        return "any-time"
    chosen = at_milestone.get((ms, item.measure))
    if chosen is item:
        return "milestone"
    return "interim" if chosen is not None and item.date > chosen.date else "early"


def _read_item(
    tab: GuidelineTable,
    row: Row,
    item: Item,
    months: float,
    items: list[Item],
    now: Course,
    at_milestone: dict[tuple[Milestone, Measure], Item],
    cfg: RuleConfig,
) -> MilestoneReading | None:
    role = _role(item, row.milestone, now, at_milestone)
    at = round(months, 1)
    if item.value is None:
        if not row.bands_for(item.measure):
            return None
        found = basis(row.rule, Finding.ELN_UNREADABLE, (item.ref,), why=item.what)
        return MilestoneReading(
            item.date, at, row.milestone, ElnStatus.NOT_EVALUABLE, found, item.kind, role
        )
    if role == "off-treatment":
        return _off_treatment(tab, row, item, at, now.off_since(item.date))
    if role == "retreatment":
        return _retreatment(tab, row, item, at, now, cfg)
    confirmation = _confirmation(row, item, items, cfg)
    met = frozenset({Condition.CONFIRMED_LATER}) if confirmation is not None else frozenset()
    band = row.band(item.measure, item.value, met)
    if band is None:
        return None
    params: dict[str, Value] = {}
    if confirmation is not None and band.needs is Condition.CONFIRMED_LATER:
        params = {"confirmed_by": confirmation.what, "confirmed_on": confirmation.date}
    elif any(b.needs is Condition.CONFIRMED_LATER and b.contains(item.value) for b in row.bands):
        params = {"failure_if_confirmed": True}
    found = basis(
        row.rule,
        Finding.ELN_BAND,
        (item.ref,),
        result=item.what,
        months=Months(months),
        milestone=row.milestone,
        role=role,
        status=band.status,
        band=_band_value(band),
        guideline=tab.guideline,
        summary_differs=(row.milestone, item.measure) in SUMMARY_CALLS_SUBOPTIMAL
        and tab.guideline is Guideline.ELN2009,
        **params,
    )
    return MilestoneReading(item.date, at, row.milestone, band.status, found, item.kind, role)


def _retreatment(
    tab: GuidelineTable, row: Row, item: Item, at: float, now: Course, cfg: RuleConfig
) -> MilestoneReading:
    """A result after restarting the TKI for a relapse off treatment, before MMR is regained.

    ELN 2020: restart the same TKI; almost all patients regain MMR, most within 3-6 months. It is
    not read as an on-treatment failure: it counts as loss of MMR (the guideline's any-time
    criterion, a warning in ELN 2020) until MMR is regained.
    """
    assert now.restarted is not None
    criterion = row.criterion(Event.LOSS_OF_MMR)
    status = criterion.status if criterion is not None else ElnStatus.WARNING
    found = basis(
        row.rule,
        Finding.ELN_RETREATMENT,
        (item.ref,),
        result=item.what,
        restarted=now.restarted,
        months=Months(months_between(now.restarted, item.date)),
        expected=Months(cfg.retreatment_mmr_months),
        status=status,
        guideline=tab.guideline,
    )
    return MilestoneReading(item.date, at, Milestone.ANY, status, found, item.kind, "retreatment")


def _band_value(band: Band) -> tuple[Value, ...]:
    """A band as values: the measure, then (comparator, threshold) for each edge."""
    return (band.measure, *((b.op, b.value) for b in band.thresholds))


def _confirmation(row: Row, item: Item, items: list[Item], cfg: RuleConfig) -> Item | None:
    """A later result that confirms a value in a band needing confirmation (ELN 2020 at 3 months:
    "> 10 % if confirmed within 1-3 months"), taken within the configured 1-3 months after it."""
    value = item.value
    assert value is not None
    needing = [b for b in row.bands_for(item.measure) if b.needs is Condition.CONFIRMED_LATER]
    if not any(b.contains(value) for b in needing):
        return None
    lo, hi = cfg.confirm_window_days
    for other in items:
        if (
            other.measure is item.measure
            and other.value is not None
            and lo <= (other.date - item.date).days <= hi
            and any(b.contains(other.value) for b in needing)
        ):
            return other
    return None


def _off_treatment(
    tab: GuidelineTable, row: Row, item: Item, at: float, stopped: date | None
) -> MilestoneReading | None:
    """A result after a stop for TFR: ELN 2020 reads loss of MMR then as failure after TFR (its
    footnote); other guidelines read it against their any-time bands. Either way it is not an
    on-treatment reading (the TFR reading says what to do)."""
    assert item.value is not None
    assert stopped is not None
    band = row.band(item.measure, item.value, frozenset())
    criterion = row.criterion(Event.LOSS_OF_MMR_AFTER_STOP)
    lost = item.measure is Measure.BCR_ABL1 and item.value > MMR_LIMIT
    if lost and criterion is not None:
        status = criterion.status
    elif band is not None:
        status = band.status
    else:
        return None
    found = basis(
        row.rule,
        Finding.ELN_OFF_TREATMENT,
        (item.ref,),
        result=item.what,
        stopped=stopped,
        lost=lost,
        limit=Percent(MMR_LIMIT),
        status=status,
        guideline=tab.guideline,
    )
    return MilestoneReading(item.date, at, Milestone.ANY, status, found, item.kind, "off-treatment")


def _current(
    tab: GuidelineTable,
    history: list[MilestoneReading],
    items: list[Item],
    start: date,
    as_of: date,
    reasons: list[Basis],
) -> tuple[ElnStatus, Milestone | None]:
    """The reading now: that of the latest window with a readable result."""
    months_now = months_between(start, as_of)
    if not history:
        reasons.append(
            basis(
                rules.MILESTONE_WINDOW,
                Finding.ELN_NO_MILESTONE_YET,
                tuple(i.ref for i in items[-1:]),
                guideline=tab.guideline,
                months=Months(months_now),
                first=tab.timed[0].milestone,
            )
        )
        return ElnStatus.NOT_EVALUABLE, None
    readable = [h for h in history if h.status is not ElnStatus.NOT_EVALUABLE]
    if not readable:
        latest_each: dict[str, MilestoneReading] = {h.kind: h for h in history}
        reasons.extend(r.basis for r in latest_each.values())
        return ElnStatus.NOT_EVALUABLE, None
    latest = readable[-1]
    window = [r for r in readable if r.milestone is latest.milestone]
    counted: dict[str, list[MilestoneReading]] = {}
    for reading in window:
        if reading.role in ("early",):
            continue
        if reading.role in ("any-time", "off-treatment", "retreatment"):
            counted[reading.kind] = [reading]  # any time: the latest result of each kind
        else:
            counted.setdefault(reading.kind, []).append(reading)  # at the milestone, then interim
    status = ElnStatus.NOT_EVALUABLE
    for readings in counted.values():
        for reading in readings:
            status = worst(status, reading.status)
    # the milestone's own reading first, then any interim that made it worse
    for readings in counted.values():
        reasons.append(readings[0].basis)
        reasons.extend(r.basis for r in readings[1:] if RANK[r.status] > RANK[readings[0].status])
    unread = [h for h in history if h.status is ElnStatus.NOT_EVALUABLE and h.date > latest.date]
    if unread:
        reasons.append(
            basis(
                unread[-1].basis.rule,
                Finding.ELN_LATER_UNREADABLE,
                tuple(e for h in unread for e in h.basis.evidence),
                dates=tuple(h.date for h in unread),
                why=unread[-1].basis,
                rests_on=latest.date,
            )
        )
    return status, latest.milestone


def _baseline(
    tab: GuidelineTable, therapy: Therapy, evidence: Evidence
) -> list[tuple[ElnStatus, Basis]]:
    """The baseline row: what was known at diagnosis (up to the start of TKI)."""
    row = tab.row(Milestone.BASELINE)
    if row is None:
        return []
    out: list[tuple[ElnStatus, Basis]] = []
    elts = row.criterion(Event.HIGH_RISK_ELTS)
    if elts is not None and evidence.elts is RiskCategory.HIGH and evidence.elts_basis is not None:
        out.append(
            (
                elts.status,
                basis(
                    row.rule,
                    Finding.ELN_BASELINE_ELTS,
                    evidence.elts_basis.evidence,
                    status=elts.status,
                    guideline=tab.guideline,
                ),
            )
        )
    start = therapy.start
    for cyto in evidence.cytogenetics:
        if start is None or cyto.date > start:
            continue
        for event, present in (
            (Event.HIGH_RISK_ACA, cyto.high_risk_aca),
            (Event.CLONAL_ABNORMALITY_PH_POSITIVE, cyto.clonal_abnormality_in_ph_positive),
        ):
            criterion = row.criterion(event)
            if criterion is not None and present:
                out.append(
                    (
                        criterion.status,
                        basis(
                            row.rule,
                            Finding.ELN_BASELINE_ABNORMALITY,
                            (cyto.ref,),
                            event=event,
                            date=cyto.date,
                            status=criterion.status,
                            guideline=tab.guideline,
                        ),
                    )
                )
    return out


def _event(
    tab: GuidelineTable, row: Row, event: Event, evidence: tuple[str, ...], **values: Value
) -> tuple[ElnStatus, Basis] | None:
    criterion = row.criterion(event)
    if criterion is None:
        return None
    differs = (
        Milestone.ANY,
        event,
    ) in SUMMARY_CALLS_SUBOPTIMAL and tab.guideline is Guideline.ELN2009
    return criterion.status, basis(
        row.rule,
        Finding.ELN_EVENT,
        evidence,
        event=event,
        status=criterion.status,
        guideline=tab.guideline,
        summary_differs=differs,
        **values,
    )


def _events(
    tab: GuidelineTable,
    therapy: Therapy,
    evidence: Evidence,
    stopped: date | None,
    as_of: date,
) -> list[tuple[ElnStatus, Basis]]:
    """Any-time criteria: mutations, losses of response, clonal abnormalities on treatment."""
    row = tab.row(Milestone.ANY)
    assert row is not None
    found: list[tuple[ElnStatus, Basis] | None] = []
    since = therapy.current_start or therapy.start or date.min
    for mut in evidence.mutations:
        if not mut.detected or mut.date < since or (mut.mutation is None and mut.hgvs is None):
            continue
        label = mut.mutation or mut.hgvs
        event = Event.RESISTANCE_MUTATION
        if row.criterion(event) is None:
            poorly = mut.mutation in POORLY_SENSITIVE_MUTATIONS
            event = Event.MUTATION_POORLY_SENSITIVE if poorly else Event.MUTATION_SENSITIVE
        found.append(_event(tab, row, event, (mut.ref,), mutation=label, date=mut.date))
    loss = evidence.loss_of_mmr
    if loss.lost and loss.basis is not None and stopped is None:
        if loss.confirmed_eln2013 and row.criterion(Event.CONFIRMED_LOSS_OF_MMR) is not None:
            found.append(
                _event(tab, row, Event.CONFIRMED_LOSS_OF_MMR, loss.basis.evidence, loss=loss.basis)
            )
        else:
            found.append(_event(tab, row, Event.LOSS_OF_MMR, loss.basis.evidence, loss=loss.basis))
    start = therapy.start or date.min
    cytos = [c for c in evidence.cytogenetics if c.date >= start]
    if cytos:
        latest = cytos[-1]
        if latest.ph_positive_percent > 0 and any(c.ph_positive_percent == 0 for c in cytos[:-1]):
            found.append(
                _event(
                    tab,
                    row,
                    Event.LOSS_OF_CCYR,
                    (latest.ref,),
                    value=Percent(latest.ph_positive_percent),
                    date=latest.date,
                )
            )
    chrs = [c for c in evidence.chr if c.date >= start]
    if chrs and not chrs[-1].complete and any(c.complete for c in chrs[:-1]):
        found.append(_event(tab, row, Event.LOSS_OF_CHR, chrs[-1].refs, chr=chrs[-1].basis))
    at_baseline = any(
        c.high_risk_aca for c in evidence.cytogenetics if therapy.start and c.date <= therapy.start
    )
    for cyto in evidence.cytogenetics:
        if cyto.date > as_of or therapy.start is None or cyto.date <= therapy.start:
            continue
        in_ph_positive = cyto.clonal_abnormality_in_ph_positive is not False
        if cyto.high_risk_aca and in_ph_positive and not at_baseline:
            found.append(_event(tab, row, Event.HIGH_RISK_ACA, (cyto.ref,), date=cyto.date))
        if cyto.clonal_abnormality_in_ph_positive:
            found.append(
                _event(tab, row, Event.CLONAL_ABNORMALITY_PH_POSITIVE, (cyto.ref,), date=cyto.date)
            )
    return [f for f in found if f is not None]
