"""Boundary tests generated from the guideline tables: at, just below and just above every threshold
of every band, for every guideline, each read by the engine at its milestone.

The expected status is worked out here from the band's comparators (not with the table's own
``Band.contains``), so a wrong comparator, a wrong band order or a result read at the wrong
milestone fails. The thresholds themselves are pinned by test_guideline_tables.py.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from fhir_cml.domain import assess
from fhir_cml.domain.guidelines import TABLES, Band, Condition, Measure, Op, Row
from fhir_cml.domain.model import PatientRecord
from fhir_cml.domain.vocabulary import ElnStatus, Guideline, LabKind, Milestone

from .builders import cyto, lab, months, pcr, record

COMPARE: dict[Op, Callable[[float, float], bool]] = {
    Op.LT: operator.lt,
    Op.LE: operator.le,
    Op.GT: operator.gt,
    Op.GE: operator.ge,
}
ANY_TIME_MONTHS = 30.0  # well after the last timed milestone of every guideline


@dataclass(frozen=True)
class Case:
    guideline: Guideline
    row: Row
    measure: Measure
    value: float
    confirmed: bool  # a later result, in the band needing confirmation, 2 months after

    @property
    def id(self) -> str:
        extra = "-confirmed" if self.confirmed else ""
        return f"{self.row.rule.id}-{self.measure.value}-{self.value:g}{extra}"


def _admits(band: Band, value: float) -> bool:
    return all(COMPARE[b.op](value, b.value) for b in band.thresholds)


def expected(case: Case) -> ElnStatus | None:
    """The status the table gives the value: the band admitting it, one needing confirmation only
    when confirmed (and then before the others); None when no band admits it."""
    bands = [b for b in case.row.bands if b.measure is case.measure and _admits(b, case.value)]
    conditional = [b for b in bands if b.needs is Condition.CONFIRMED_LATER]
    if conditional and case.confirmed:
        return conditional[0].status
    plain = [b for b in bands if b.needs is None]
    assert len(plain) <= 1, f"bands overlap at {case.value}: {plain}"
    return plain[0].status if plain else None


def _around(threshold: float) -> tuple[float, ...]:
    step = max(abs(threshold) * 0.01, 0.0001)
    return tuple(v for v in (threshold - step, threshold, threshold + step) if v >= 0)


def cases() -> Iterator[Case]:
    for guideline, tab in TABLES.items():
        for row in tab.rows:
            for measure in (Measure.BCR_ABL1, Measure.PH_POSITIVE):
                values = sorted(
                    {
                        v
                        for b in row.bands_for(measure)
                        for t in b.thresholds
                        for v in _around(t.value)
                    }
                )
                for value in values:
                    yield Case(guideline, row, measure, value, False)
                    if any(b.needs for b in row.bands_for(measure)):
                        yield Case(guideline, row, measure, value, True)


CASES = list(cases())


def test_every_timed_row_and_measure_is_covered() -> None:
    covered = {(c.guideline, c.row.milestone, c.measure) for c in CASES}
    for guideline, tab in TABLES.items():
        for row in tab.rows:
            for measure in row.measures:
                if measure is not Measure.CHR:
                    assert (guideline, row.milestone, measure) in covered


def _at(row: Row) -> float:
    return row.months if row.months is not None else ANY_TIME_MONTHS


def _record(case: Case) -> tuple[PatientRecord, str]:
    when = months(_at(case.row))
    if case.measure is Measure.BCR_ABL1:
        result = pcr(when, case.value)
        later = [pcr(when + timedelta(days=61), case.value)] if case.confirmed else []
        return record(bcr_abl1=[result, *later]), result.ref
    found = cyto(when, case.value)
    return record(cytogenetics=[found]), found.ref


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_engine_reads_each_threshold_as_the_table_says(case: Case) -> None:
    rec, ref = _record(case)
    as_of = months(_at(case.row)) + timedelta(days=70)
    eln = assess(rec, as_of, case.guideline).eln
    read = [h for h in eln.history if h.basis.evidence == (ref,)]
    want = expected(case)
    if want is None:
        assert not read, f"{case.value} is in no band of {case.row.rule.id}, yet it was read"
        return
    assert len(read) == 1, eln.history
    reading = read[0]
    assert reading.milestone is case.row.milestone
    assert reading.status is want, (case.id, reading.status, want)
    assert reading.basis.rule is case.row.rule


# Complete hematologic response (ELN 2013 at 3 months, ELN 2009 at 3 and 6 months): "no CHR" is
# failure. CHR needs WBC < 10, platelets < 450, basophils < 5 (x10^9/L, x10^9/L, %).
CHR_ROWS = [
    (guideline, row)
    for guideline, tab in TABLES.items()
    for row in tab.rows
    if row.bands_for(Measure.CHR)
]


@pytest.mark.parametrize(("guideline", "row"), CHR_ROWS, ids=[r.rule.id for _, r in CHR_ROWS])
@pytest.mark.parametrize(("wbc", "complete"), [(9.9, True), (10.0, False), (10.1, False)])
def test_no_chr_at_the_milestone_is_the_table_status(
    guideline: Guideline, row: Row, wbc: float, complete: bool
) -> None:
    when = months(_at(row))
    counts = [
        lab(when, LabKind.WBC, wbc),
        lab(when, LabKind.PLATELETS, 300),
        lab(when, LabKind.BASOPHILS, 1),
    ]
    eln = assess(record(labs=counts), when, guideline).eln
    read = [h for h in eln.history if h.kind == "hematologic" and h.milestone is row.milestone]
    if complete:
        assert not read  # CHR is no criterion of its own here
    else:
        (failure,) = row.bands_for(Measure.CHR)
        assert [h.status for h in read] == [failure.status]


@pytest.mark.parametrize("guideline", list(Guideline))
def test_each_milestone_window_opens_a_month_before_it(guideline: Guideline) -> None:
    """The default tolerance: a result a month before a milestone is read at it, one earlier
    is read at the milestone before (or none)."""
    timed = TABLES[guideline].timed
    for earlier, row in zip((None, *timed[:-1]), timed, strict=True):
        assert row.months is not None
        measure = row.measures[0]
        value = 0.0
        just_in = months(row.months - 1.0) + timedelta(days=1)
        rec = (
            record(bcr_abl1=[pcr(just_in, value)], tki=record().tki)
            if measure is Measure.BCR_ABL1
            else record(cytogenetics=[cyto(just_in, value)])
        )
        milestones = {h.milestone for h in assess(rec, just_in, guideline).eln.history}
        assert milestones <= {row.milestone}
        before = just_in - timedelta(days=3)
        rec_before = (
            record(bcr_abl1=[pcr(before, value)])
            if measure is Measure.BCR_ABL1
            else record(cytogenetics=[cyto(before, value)])
        )
        found = {h.milestone for h in assess(rec_before, before, guideline).eln.history}
        assert row.milestone not in found
        if earlier is None:
            assert Milestone.ANY not in found
