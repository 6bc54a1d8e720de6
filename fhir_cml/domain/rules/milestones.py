"""Reading the course against a guideline's milestones: ELN 2020, ELN 2013, or eln2009.

Each result is read against the milestone its time on therapy falls in (months from the start of
first-line TKI; a milestone's window opens ``milestone_tolerance_months`` before it; after the last
milestone the 'any time' criteria apply). The current reading is that of the latest results in the
latest milestone window (the worse of molecular, cytogenetic and hematologic where the guideline
reads several), made worse by any-time events: resistance mutations, loss of MMR, CCyR or CHR,
clonal abnormalities. When the latest results cannot be read (too few control-gene copies, not on
the IS) the reading rests on the latest readable ones and says so, naming both; with none readable
it is not evaluable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from operator import attrgetter

from fhir_cml.domain.config import RuleConfig
from fhir_cml.domain.frozen import quick_init
from fhir_cml.domain.model import BcrAbl1Result, CytogeneticResult, MutationResult
from fhir_cml.domain.results import Basis, ElnReading, LossOfMmr, MilestoneReading, Therapy
from fhir_cml.domain.rules import catalogue as rules
from fhir_cml.domain.rules.catalogue import Rule
from fhir_cml.domain.rules.common import months_between, pct
from fhir_cml.domain.rules.hematology import ChrAssessment
from fhir_cml.domain.rules.response_depth import DepthCall
from fhir_cml.domain.vocabulary import (
    ElnStatus,
    Guideline,
    Milestone,
    RiskCategory,
    TherapyStatus,
)

MOLECULAR, CYTOGENETIC, HEMATOLOGIC = "molecular", "cytogenetic", "hematologic"
_TIMED = {
    Guideline.ELN2020: (Milestone.M3, Milestone.M6, Milestone.M12),
    Guideline.ELN2013: (Milestone.M3, Milestone.M6, Milestone.M12),
    Guideline.ELN2009: (Milestone.M3, Milestone.M6, Milestone.M12, Milestone.M18),
}
_MONTHS = {Milestone.M3: 3.0, Milestone.M6: 6.0, Milestone.M12: 12.0, Milestone.M18: 18.0}
_RANK = {
    ElnStatus.NOT_EVALUABLE: 0,
    ElnStatus.OPTIMAL: 1,
    ElnStatus.WARNING: 2,
    ElnStatus.SUBOPTIMAL: 2,
    ElnStatus.FAILURE: 3,
}
_NAMES = {
    Guideline.ELN2020: "ELN 2020",
    Guideline.ELN2013: "ELN 2013",
    Guideline.ELN2009: "eln2009",
}
_BY_DATE_AND_KIND = attrgetter("date", "kind")
DOSE_SENSITIVE_MUTATIONS = frozenset({"M351T", "L384M"})


@quick_init
@dataclass(frozen=True, slots=True)
class Item:
    """One dated piece of evidence that a guideline can read."""

    kind: str
    date: date
    ref: str
    value: float | None  # IS %, Ph+ %, or 1.0/0.0 for CHR yes/no
    text: str
    why_unreadable: str | None = None


@quick_init
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
    return a if _RANK[a] >= _RANK[b] else b


# Each guideline's timed milestones with their months, latest first.
_LATEST_FIRST = {
    guideline: tuple((ms, _MONTHS[ms]) for ms in reversed(timed))
    for guideline, timed in _TIMED.items()
}


def milestone_for(guideline: Guideline, months: float, tolerance: float) -> Milestone | None:
    """The latest milestone whose window has opened; 'any time' once past the last one."""
    steps = _LATEST_FIRST[guideline]
    for index, (ms, at) in enumerate(steps):
        if months >= at - tolerance:
            if index == 0 and months > at + tolerance:
                return Milestone.ANY
            return ms
    return None


def read(
    guideline: Guideline,
    therapy: Therapy,
    evidence: Evidence,
    as_of: date,
    cfg: RuleConfig,
) -> ElnReading:
    name = _NAMES[guideline]
    if therapy.start is None:
        return ElnReading(
            ElnStatus.NOT_EVALUABLE,
            None,
            (
                Basis(
                    rules.MILESTONE_WINDOW,
                    "No TKI start date is known, so time on therapy and the milestones cannot be "
                    "placed.",
                ),
            ),
        )
    start = therapy.start
    stopped = therapy.stopped_on if therapy.status is TherapyStatus.TFR else None
    items = _items(evidence, start)
    history: list[MilestoneReading] = []
    for item in items:
        months = months_between(start, item.date)
        if stopped is not None and item.date > stopped:
            ms: Milestone | None = Milestone.ANY
        else:
            ms = milestone_for(guideline, months, cfg.milestone_tolerance_months)
        if ms is None:
            continue
        call = _read_item(guideline, item, ms, months, items, evidence, stopped, cfg)
        if call is None:
            continue
        status, rule, statement = call
        history.append(
            MilestoneReading(
                item.date,
                round(months, 1),
                ms,
                status,
                Basis(rule, statement, (item.ref,)),
                item.kind,
            )
        )

    reasons: list[Basis] = []
    status, milestone = _current(guideline, history, items, start, as_of, cfg, reasons, name)
    if (
        status is ElnStatus.NOT_EVALUABLE
        and milestone is None
        and guideline is Guideline.ELN2020
        and evidence.elts is RiskCategory.HIGH
        and evidence.elts_basis is not None
    ):
        status = ElnStatus.WARNING
        reasons.append(
            Basis(
                rules.ELN2020_BASELINE,
                "High-risk ELTS score at baseline is a warning under ELN 2020.",
                evidence.elts_basis.evidence,
            )
        )
    for event_status, basis in _events(guideline, therapy, evidence, stopped, as_of):
        if _RANK[event_status] > _RANK[status]:
            milestone = Milestone.ANY
        status = worst(status, event_status)
        reasons.append(basis)
    if status is not ElnStatus.FAILURE:
        earlier = [
            h
            for h in history
            if h.status is ElnStatus.FAILURE and h.date >= (therapy.current_start or start)
        ]
        if earlier:
            first = earlier[0]
            reasons.append(
                Basis(
                    first.basis.rule,
                    f"Note: an earlier result was read as failure ({first.milestone.value if first.milestone else ''} "
                    f"milestone, {first.date.isoformat()}) on the current TKI.",
                    first.basis.evidence,
                )
            )
    return ElnReading(status, milestone, tuple(reasons), tuple(history))


def _items(evidence: Evidence, start: date) -> list[Item]:
    items: list[Item] = []
    for result, call in evidence.molecular:
        if result.date < start:
            continue
        items.append(
            Item(
                MOLECULAR,
                result.date,
                result.ref,
                call.value,
                _describe(result, call),
                None if call.value is not None else call.statement,
            )
        )
    for cyto in evidence.cytogenetics:
        if cyto.date < start:
            continue
        method = "FISH" if cyto.method == "fish" else "metaphases"
        items.append(
            Item(
                CYTOGENETIC,
                cyto.date,
                cyto.ref,
                cyto.ph_positive_percent,
                f"Ph+ {cyto.ph_positive_percent:g} % ({method}) on {cyto.date.isoformat()}",
            )
        )
    for chr_ in evidence.chr:
        if chr_.date < start:
            continue
        items.append(
            Item(
                HEMATOLOGIC, chr_.date, chr_.refs[0], 1.0 if chr_.complete else 0.0, chr_.statement
            )
        )
    items.sort(key=_BY_DATE_AND_KIND)
    return items


def _describe(result: BcrAbl1Result, call: DepthCall) -> str:
    when = result.date.isoformat()
    if call.value is None:
        return f"BCR::ABL1 result of {when}"
    if not result.detectable:
        return f"BCR::ABL1 not detected on {when} ({call.depth.value})"
    return f"BCR::ABL1 {pct(call.value)} (IS) on {when}"


def _at(item: Item, months: float, ms: Milestone) -> str:
    where = (
        "read against the 'any time' criteria"
        if ms is Milestone.ANY
        else f"read against the {ms.value} milestone"
    )
    return f"{item.text}, at {months:.1f} months on TKI, {where}"


ReadOut = tuple[ElnStatus, Rule, str] | None


def _read_item(
    guideline: Guideline,
    item: Item,
    ms: Milestone,
    months: float,
    items: list[Item],
    evidence: Evidence,
    stopped: date | None,
    cfg: RuleConfig,
) -> ReadOut:
    if item.kind == MOLECULAR and item.value is None:
        rule = _molecular_rule(guideline, ms)
        if rule is None:
            return None
        return (
            ElnStatus.NOT_EVALUABLE,
            rule,
            f"{item.why_unreadable} Not read against the milestone.",
        )
    if guideline is Guideline.ELN2020:
        return _eln2020(item, ms, months, items, stopped, cfg) if item.kind == MOLECULAR else None
    if guideline is Guideline.ELN2013:
        return _eln2013(item, ms, months)
    return _eln2009(item, ms, months, items)


def _molecular_rule(guideline: Guideline, ms: Milestone) -> Rule | None:
    table = {
        Guideline.ELN2020: {
            Milestone.M3: rules.ELN2020_3M,
            Milestone.M6: rules.ELN2020_6M,
            Milestone.M12: rules.ELN2020_12M,
            Milestone.ANY: rules.ELN2020_ANY,
        },
        Guideline.ELN2013: {
            Milestone.M3: rules.ELN2013_3M,
            Milestone.M6: rules.ELN2013_6M,
            Milestone.M12: rules.ELN2013_12M,
            Milestone.ANY: rules.ELN2013_ANY,
        },
        Guideline.ELN2009: {Milestone.M18: rules.ELN2009_18M, Milestone.ANY: rules.ELN2009_ANY},
    }
    return table[guideline].get(ms)


def _three_level(
    value: float, optimal: float, warning: float, *, strict_optimal: bool = False
) -> ElnStatus:
    ok = value < optimal if strict_optimal else value <= optimal
    if ok:
        return ElnStatus.OPTIMAL
    return ElnStatus.WARNING if value <= warning else ElnStatus.FAILURE


def _eln2020(
    item: Item,
    ms: Milestone,
    months: float,
    items: list[Item],
    stopped: date | None,
    cfg: RuleConfig,
) -> ReadOut:
    v = item.value
    assert v is not None
    head = _at(item, months, ms)
    if ms is Milestone.M3:
        if v <= 10:
            return ElnStatus.OPTIMAL, rules.ELN2020_3M, f"{head}: <= 10 % is optimal (ELN 2020)."
        lo, hi = cfg.confirm_window_days
        confirming = [
            other
            for other in items
            if other.kind == MOLECULAR
            and other.value is not None
            and other.value > 10
            and lo <= abs((other.date - item.date).days) <= hi
        ]
        if confirming:
            return (
                ElnStatus.FAILURE,
                rules.ELN2020_3M,
                f"{head}: > 10 %, and {confirming[0].text} is > 10 % "
                "too: failure (ELN 2020: > 10 % confirmed within 1-3 months).",
            )
        return (
            ElnStatus.WARNING,
            rules.ELN2020_3M,
            f"{head}: > 10 % is a warning (ELN 2020); failure if confirmed within 1-3 months.",
        )
    if ms is Milestone.M6:
        status = _three_level(v, 1, 10)
        return (
            status,
            rules.ELN2020_6M,
            f"{head}: {_band(status, '<= 1 %', '> 1-10 %', '> 10 %')} (ELN 2020).",
        )
    if stopped is not None and item.date > stopped:
        if v > 0.1:
            return (
                ElnStatus.FAILURE,
                rules.ELN2020_ANY,
                f"{item.text}, after stopping TKI on {stopped.isoformat()}: loss of MMR after "
                "stopping is failure (ELN 2020).",
            )
        return (
            ElnStatus.OPTIMAL,
            rules.ELN2020_ANY,
            f"{item.text}, after stopping TKI on {stopped.isoformat()}: MMR maintained.",
        )
    status = _three_level(v, 0.1, 1)
    rule = rules.ELN2020_12M if ms is Milestone.M12 else rules.ELN2020_ANY
    return status, rule, f"{head}: {_band(status, '<= 0.1 %', '> 0.1-1 %', '> 1 %')} (ELN 2020)."


def _band(status: ElnStatus, optimal: str, warning: str, failure: str) -> str:
    if status is ElnStatus.OPTIMAL:
        return f"{optimal} is optimal"
    if status is ElnStatus.FAILURE:
        return f"{failure} is failure"
    return f"{warning} is a {status.value}"


def _eln2013(item: Item, ms: Milestone, months: float) -> ReadOut:
    v = item.value
    assert v is not None
    head = _at(item, months, ms)
    rule = {
        Milestone.M3: rules.ELN2013_3M,
        Milestone.M6: rules.ELN2013_6M,
        Milestone.M12: rules.ELN2013_12M,
    }.get(ms, rules.ELN2013_ANY)
    if item.kind == MOLECULAR:
        if ms is Milestone.M3:
            status = ElnStatus.OPTIMAL if v <= 10 else ElnStatus.WARNING
            text = "<= 10 % is optimal" if v <= 10 else "> 10 % is a warning"
        elif ms is Milestone.M6:
            status = _three_level(v, 1, 10, strict_optimal=True)
            text = _band(status, "< 1 %", "1-10 %", "> 10 %")
        elif ms is Milestone.M12:
            status = _three_level(v, 0.1, 1)
            text = _band(status, "<= 0.1 %", "> 0.1-1 %", "> 1 %")
        else:
            status = ElnStatus.OPTIMAL if v <= 0.1 else ElnStatus.WARNING
            text = "MMR or better is optimal" if v <= 0.1 else "> 0.1 % is a warning"
        return status, rule, f"{head}: {text} (ELN 2013)."
    if item.kind == CYTOGENETIC:
        if ms is Milestone.M3:
            status = _three_level(v, 35, 95)
            text = _band(status, "Ph+ <= 35 %", "Ph+ 36-95 %", "Ph+ > 95 %")
        elif ms is Milestone.M6:
            status = _three_level(v, 0, 35)
            text = _band(status, "Ph+ 0", "Ph+ 1-35 %", "Ph+ > 35 %")
        else:
            status = ElnStatus.OPTIMAL if v == 0 else ElnStatus.FAILURE
            text = "Ph+ 0 (CCyR)" if v == 0 else "Ph+ > 0 (no CCyR) is failure"
        return status, rule, f"{head}: {text} (ELN 2013)."
    if ms is Milestone.M3 and v == 0.0:
        return ElnStatus.FAILURE, rule, f"{item.text} At 3 months no CHR is failure (ELN 2013)."
    return None


def _eln2009(item: Item, ms: Milestone, months: float, items: list[Item]) -> ReadOut:
    v = item.value
    assert v is not None
    head = _at(item, months, ms)
    if item.kind == HEMATOLOGIC:
        if ms is Milestone.M3:
            if v == 1.0:
                return (
                    ElnStatus.OPTIMAL,
                    rules.ELN2009_3M,
                    f"{item.text} CHR at 3 months (eln2009).",
                )
            return (
                ElnStatus.SUBOPTIMAL,
                rules.ELN2009_3M,
                f"{item.text} No CHR at 3 months is a suboptimal response (eln2009, seed 003).",
            )
        return None
    if item.kind == CYTOGENETIC:
        if ms is Milestone.M3:
            return None
        if ms is Milestone.M6:
            if v > 95:
                return (
                    ElnStatus.FAILURE,
                    rules.ELN2009_6M,
                    f"{head}: Ph+ > 95 % (no cytogenetic response) is failure (ELN 2009).",
                )
            if v > 35:
                return (
                    ElnStatus.SUBOPTIMAL,
                    rules.ELN2009_6M,
                    f"{head}: Ph+ > 35 % (no PCyR) is a suboptimal response (seed 003).",
                )
            return ElnStatus.OPTIMAL, rules.ELN2009_6M, f"{head}: Ph+ <= 35 % (PCyR reached)."
        if ms is Milestone.M12:
            if v > 35:
                return (
                    ElnStatus.FAILURE,
                    rules.ELN2009_12M,
                    f"{head}: Ph+ > 35 % (less than PCyR) is failure (ELN 2009).",
                )
            if v > 0:
                return (
                    ElnStatus.SUBOPTIMAL,
                    rules.ELN2009_12M,
                    f"{head}: Ph+ > 0 % (no CCyR) is a suboptimal response (seed 003).",
                )
            return ElnStatus.OPTIMAL, rules.ELN2009_12M, f"{head}: Ph+ 0 (CCyR reached)."
        if v == 0:
            return ElnStatus.OPTIMAL, _rule_2009(ms), f"{head}: Ph+ 0 (CCyR)."
        had_ccyr = any(i.kind == CYTOGENETIC and i.value == 0 and i.date < item.date for i in items)
        if had_ccyr and ms is Milestone.ANY:
            return (
                ElnStatus.SUBOPTIMAL,
                rules.ELN2009_ANY,
                f"{head}: loss of CCyR is a suboptimal response (seed 003).",
            )
        return (
            ElnStatus.FAILURE,
            _rule_2009(ms),
            f"{head}: Ph+ > 0 (less than CCyR) at or after 18 months is failure (ELN 2009).",
        )
    # molecular: the seed's table reads MMR from 18 months on
    if ms not in (Milestone.M18, Milestone.ANY):
        return None
    if v <= 0.1:
        return ElnStatus.OPTIMAL, _rule_2009(ms), f"{head}: MMR (<= 0.1 %)."
    had_mmr = any(
        i.kind == MOLECULAR and i.value is not None and i.value <= 0.1 and i.date < item.date
        for i in items
    )
    if had_mmr:
        return (
            ElnStatus.SUBOPTIMAL,
            rules.ELN2009_ANY,
            f"{head}: loss of MMR is a suboptimal response (seed 003).",
        )
    return (
        ElnStatus.SUBOPTIMAL,
        _rule_2009(ms),
        f"{head}: no MMR at or after 18 months is a suboptimal response (seed 003).",
    )


def _rule_2009(ms: Milestone) -> Rule:
    return rules.ELN2009_18M if ms is Milestone.M18 else rules.ELN2009_ANY


def _current(
    guideline: Guideline,
    history: list[MilestoneReading],
    items: list[Item],
    start: date,
    as_of: date,
    cfg: RuleConfig,
    reasons: list[Basis],
    name: str,
) -> tuple[ElnStatus, Milestone | None]:
    months_now = months_between(start, as_of)
    if not history:
        first = _TIMED[guideline][0]
        reasons.append(
            Basis(
                rules.MILESTONE_WINDOW,
                f"No result has been read against a {name} milestone yet ({months_now:.1f} months on "
                f"TKI; the first milestone is at {first.value}).",
                tuple(i.ref for i in items[-1:]),
            )
        )
        return ElnStatus.NOT_EVALUABLE, None
    readable = [h for h in history if h.status is not ElnStatus.NOT_EVALUABLE]
    if not readable:
        latest_each: dict[str, MilestoneReading] = {h.kind: h for h in history}
        reasons.extend(r.basis for r in latest_each.values())
        return ElnStatus.NOT_EVALUABLE, None
    latest = readable[-1]
    by_kind: dict[str, MilestoneReading] = {}
    for reading in readable:  # the latest readable reading of each kind in the current window
        if reading.milestone is latest.milestone:
            by_kind[reading.kind] = reading
    status = ElnStatus.NOT_EVALUABLE
    for reading in by_kind.values():
        status = worst(status, reading.status)
    reasons.extend(r.basis for r in by_kind.values())
    unread = [h for h in history if h.status is ElnStatus.NOT_EVALUABLE and h.date > latest.date]
    if unread:
        dates = ", ".join(h.date.isoformat() for h in unread)
        reasons.append(
            Basis(
                unread[-1].basis.rule,
                f"The later result(s) of {dates} could not be read ({unread[-1].basis.statement}) "
                f"The reading therefore rests on the result(s) of {latest.date.isoformat()}.",
                tuple(e for h in unread for e in h.basis.evidence),
            )
        )
    return status, latest.milestone


def _events(
    guideline: Guideline,
    therapy: Therapy,
    evidence: Evidence,
    stopped: date | None,
    as_of: date,
) -> list[tuple[ElnStatus, Basis]]:
    out: list[tuple[ElnStatus, Basis]] = []
    since = therapy.current_start or therapy.start or date.min
    for mut in evidence.mutations:
        if not mut.detected or mut.date < since or (mut.mutation is None and mut.hgvs is None):
            continue
        label = mut.mutation or mut.hgvs or "a kinase-domain mutation"
        when = mut.date.isoformat()
        if guideline is Guideline.ELN2020:
            out.append(
                (
                    ElnStatus.FAILURE,
                    Basis(
                        rules.ELN2020_ANY,
                        f"Resistance mutation {label} detected on {when}: failure (ELN 2020).",
                        (mut.ref,),
                    ),
                )
            )
        elif guideline is Guideline.ELN2013:
            out.append(
                (
                    ElnStatus.FAILURE,
                    Basis(
                        rules.ELN2013_ANY,
                        f"Mutation {label} detected on {when}: failure (ELN 2013).",
                        (mut.ref,),
                    ),
                )
            )
        elif label == "T315I":
            out.append(
                (
                    ElnStatus.FAILURE,
                    Basis(
                        rules.ELN2009_ANY,
                        f"T315I detected on {when}: poorly sensitive to imatinib, failure (ELN 2009).",
                        (mut.ref,),
                    ),
                )
            )
        else:
            out.append(
                (
                    ElnStatus.SUBOPTIMAL,
                    Basis(
                        rules.ELN2009_ANY,
                        f"Mutation {label} detected on {when}: a suboptimal response (ELN 2009).",
                        (mut.ref,),
                    ),
                )
            )
    loss = evidence.loss_of_mmr
    if loss.lost and loss.basis is not None and stopped is None:
        if guideline is Guideline.ELN2020:
            out.append(
                (
                    ElnStatus.WARNING,
                    Basis(
                        rules.ELN2020_ANY,
                        loss.basis.statement + " Loss of MMR is a warning (ELN 2020).",
                        loss.basis.evidence,
                    ),
                )
            )
        elif guideline is Guideline.ELN2013:
            if loss.confirmed_eln2013:
                out.append(
                    (
                        ElnStatus.FAILURE,
                        Basis(
                            rules.ELN2013_ANY,
                            loss.basis.statement
                            + " Confirmed loss of MMR (one result >= 1 %) is failure (ELN 2013).",
                            loss.basis.evidence,
                        ),
                    )
                )
        else:
            out.append(
                (
                    ElnStatus.SUBOPTIMAL,
                    Basis(
                        rules.ELN2009_ANY,
                        loss.basis.statement + " Loss of MMR is a suboptimal response (seed 003).",
                        loss.basis.evidence,
                    ),
                )
            )
    cytos = [c for c in evidence.cytogenetics if c.date >= (therapy.start or date.min)]
    if cytos and guideline is not Guideline.ELN2020:
        latest = cytos[-1]
        if latest.ph_positive_percent > 0 and any(c.ph_positive_percent == 0 for c in cytos[:-1]):
            status = ElnStatus.FAILURE if guideline is Guideline.ELN2013 else ElnStatus.SUBOPTIMAL
            rule = rules.ELN2013_ANY if guideline is Guideline.ELN2013 else rules.ELN2009_ANY
            out.append(
                (
                    status,
                    Basis(
                        rule,
                        f"Loss of CCyR: Ph+ {latest.ph_positive_percent:g} % on {latest.date.isoformat()} after Ph+ 0 earlier.",
                        (latest.ref,),
                    ),
                )
            )
    chrs = [c for c in evidence.chr if c.date >= (therapy.start or date.min)]
    if chrs and guideline is not Guideline.ELN2020:
        latest_chr = chrs[-1]
        if not latest_chr.complete and any(c.complete for c in chrs[:-1]):
            status = ElnStatus.FAILURE if guideline is Guideline.ELN2013 else ElnStatus.SUBOPTIMAL
            rule = rules.ELN2013_ANY if guideline is Guideline.ELN2013 else rules.ELN2009_ANY
            out.append(
                (status, Basis(rule, f"Loss of CHR: {latest_chr.statement}", latest_chr.refs))
            )
    for cyto in evidence.cytogenetics:
        if cyto.date > as_of:
            continue
        baseline = therapy.start is not None and cyto.date <= therapy.start
        if cyto.high_risk_aca and guideline is Guideline.ELN2020:
            if baseline:
                out.append(
                    (
                        ElnStatus.WARNING,
                        Basis(
                            rules.ELN2020_BASELINE,
                            f"High-risk additional chromosomal abnormality at baseline ({cyto.date.isoformat()}): warning (ELN 2020).",
                            (cyto.ref,),
                        ),
                    )
                )
            else:
                out.append(
                    (
                        ElnStatus.FAILURE,
                        Basis(
                            rules.ELN2020_ANY,
                            f"High-risk additional chromosomal abnormality on {cyto.date.isoformat()}: failure (ELN 2020).",
                            (cyto.ref,),
                        ),
                    )
                )
        if (
            cyto.clonal_abnormality_in_ph_positive
            and not baseline
            and guideline is not Guideline.ELN2020
        ):
            status = ElnStatus.FAILURE if guideline is Guideline.ELN2013 else ElnStatus.SUBOPTIMAL
            rule = rules.ELN2013_ANY if guideline is Guideline.ELN2013 else rules.ELN2009_ANY
            out.append(
                (
                    status,
                    Basis(
                        rule,
                        f"Clonal chromosome abnormality in Ph+ cells on {cyto.date.isoformat()}.",
                        (cyto.ref,),
                    ),
                )
            )
    return out
