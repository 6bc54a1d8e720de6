"""Milestone readings under ELN 2020 (default), ELN 2013 and eln2009 (seed 003)."""

from __future__ import annotations

from datetime import date

import pytest

from fhir_cml.domain import assess
from fhir_cml.domain.rules.milestones import milestone_for
from fhir_cml.domain.vocabulary import (
    ElnStatus,
    Guideline,
    LabKind,
    Milestone,
    TherapyStatus,
)
from fhir_cml.reporting import say

from .builders import START, cyto, lab, months, mutation, pcr, record

ELN2020, ELN2013, ELN2009 = Guideline.ELN2020, Guideline.ELN2013, Guideline.ELN2009


def reading(guideline: Guideline, *results: object, as_of: date | None = None, **kw: object):  # type: ignore[no-untyped-def]
    rec = record(bcr_abl1=list(results), **kw)
    last = max((r.date for r in results), default=START)  # type: ignore[attr-defined]
    return assess(rec, as_of or last, guideline).eln


@pytest.mark.parametrize(
    ("months_on", "expected"),
    [
        (1.0, None),
        (1.9, None),
        (2.0, Milestone.M3),
        (4.9, Milestone.M3),
        (5.0, Milestone.M6),
        (11.0, Milestone.M12),
        (13.0, Milestone.M12),
        (13.1, Milestone.ANY),
        (40.0, Milestone.ANY),
    ],
)
def test_milestone_windows(months_on: float, expected: Milestone | None) -> None:
    assert milestone_for(ELN2020, months_on, 1.0) is expected


def test_eln2009_has_an_18_month_milestone() -> None:
    assert milestone_for(ELN2009, 13.5, 1.0) is Milestone.M12
    assert milestone_for(ELN2009, 17.5, 1.0) is Milestone.M18
    assert milestone_for(ELN2009, 19.5, 1.0) is Milestone.ANY


@pytest.mark.parametrize(
    ("at", "value", "status", "milestone"),
    [
        (3, 10.0, ElnStatus.OPTIMAL, Milestone.M3),
        (3, 10.5, ElnStatus.WARNING, Milestone.M3),
        (6, 1.0, ElnStatus.OPTIMAL, Milestone.M6),
        (6, 5.0, ElnStatus.WARNING, Milestone.M6),
        (6, 10.5, ElnStatus.FAILURE, Milestone.M6),
        (12, 0.1, ElnStatus.OPTIMAL, Milestone.M12),
        (12, 0.5, ElnStatus.WARNING, Milestone.M12),
        (12, 1.5, ElnStatus.FAILURE, Milestone.M12),
        (30, 0.05, ElnStatus.OPTIMAL, Milestone.ANY),
        (30, 0.5, ElnStatus.WARNING, Milestone.ANY),
        (30, 2.0, ElnStatus.FAILURE, Milestone.ANY),
    ],
)
def test_eln2020_table(at: float, value: float, status: ElnStatus, milestone: Milestone) -> None:
    eln = reading(ELN2020, pcr(months(at), value))
    assert (eln.status, eln.milestone) == (status, milestone)
    assert "ELN 2020" in say(eln.reasons[0])
    assert eln.reasons[0].evidence


def test_eln2020_three_month_failure_needs_confirmation_within_one_to_three_months() -> None:
    unconfirmed = reading(ELN2020, pcr(months(3), 20.0), as_of=months(3.5))
    assert unconfirmed.status is ElnStatus.WARNING
    confirmed = assess(
        record(bcr_abl1=[pcr(months(3), 20.0), pcr(months(4.5), 15.0)]), months(4.6)
    ).eln
    assert confirmed.status is ElnStatus.FAILURE
    assert "confirmed" in say(confirmed.reasons[0])


def test_before_the_first_milestone_the_reading_is_not_evaluable_with_the_reason() -> None:
    eln = reading(ELN2020, pcr(months(1), 30.0))
    assert eln.status is ElnStatus.NOT_EVALUABLE
    assert eln.milestone is None
    assert "first milestone" in say(eln.reasons[0])


def test_high_risk_elts_is_a_baseline_warning_under_eln2020() -> None:
    baseline = [
        lab(START, LabKind.SPLEEN, 20),
        lab(START, LabKind.PLATELETS, 150),
        lab(START, LabKind.BLASTS, 8),
    ]
    rec = record(bcr_abl1=[pcr(months(1), 30.0)], labs=baseline, birth_date=date(1940, 1, 1))
    result = assess(rec, months(1))
    assert result.risk["elts"].category.value == "high"
    assert result.eln.status is ElnStatus.WARNING
    assert result.eln.milestone is Milestone.BASELINE


def test_unreadable_latest_result_leaves_the_reading_on_the_last_readable_one_and_says_so() -> None:
    eln = reading(ELN2020, pcr(months(12), 0.05), pcr(months(15), None, copies=5_000))
    assert eln.status is ElnStatus.OPTIMAL
    assert eln.milestone is Milestone.M12
    assert "5,000" in say(eln.reasons[-1])
    assert "rests on the result(s) of" in say(eln.reasons[-1])


def test_nothing_readable_is_not_evaluable() -> None:
    eln = reading(ELN2020, pcr(months(6), 0.5, on_is=False), pcr(months(12), 0.05, on_is=False))
    assert eln.status is ElnStatus.NOT_EVALUABLE
    assert "not on the International Scale" in say(eln.reasons[0])


def test_resistance_mutation_is_failure_at_any_time() -> None:
    rec = record(bcr_abl1=[pcr(months(6), 0.5)], mutations=[mutation(months(6), "T315I")])
    eln = assess(rec, months(6)).eln
    assert eln.status is ElnStatus.FAILURE
    assert eln.milestone is Milestone.ANY
    assert any("T315I" in say(r) for r in eln.reasons)


def test_loss_of_mmr_is_a_warning_in_eln2020_and_failure_when_confirmed_with_1_percent_in_eln2013() -> (
    None
):
    results = [pcr(months(12), 0.05), pcr(months(18), 0.5), pcr(months(19), 1.2)]
    e2020 = assess(record(bcr_abl1=results), months(19)).eln
    assert e2020.status is ElnStatus.FAILURE  # 1.2 % > 1 % is itself failure at any time
    lost = [pcr(months(12), 0.05), pcr(months(18), 0.5)]
    assert assess(record(bcr_abl1=lost), months(18)).eln.status is ElnStatus.WARNING
    e2013 = assess(record(bcr_abl1=results), months(19), ELN2013).eln
    assert e2013.status is ElnStatus.FAILURE
    assert any("Confirmed loss of MMR" in say(r) for r in e2013.reasons)


def test_eln2013_reads_molecular_and_cytogenetic_results_and_takes_the_worse() -> None:
    rec = record(bcr_abl1=[pcr(months(6), 0.5)], cytogenetics=[cyto(months(6), 20.0)])
    eln = assess(rec, months(6), ELN2013).eln
    assert eln.status is ElnStatus.WARNING  # molecular < 1 % optimal, Ph+ 1-35 % warning
    assert eln.milestone is Milestone.M6
    assert len(eln.reasons) == 2


@pytest.mark.parametrize(
    ("at", "value", "status"),
    [
        (3, 10.5, ElnStatus.WARNING),
        (6, 0.99, ElnStatus.OPTIMAL),
        (6, 1.0, ElnStatus.WARNING),  # ELN 2013: optimal is < 1 %
        (6, 10.5, ElnStatus.FAILURE),
        (12, 1.5, ElnStatus.FAILURE),
    ],
)
def test_eln2013_molecular(at: float, value: float, status: ElnStatus) -> None:
    assert reading(ELN2013, pcr(months(at), value)).status is status


def test_eln2013_no_chr_at_three_months_is_failure() -> None:
    labs = [lab(months(3), LabKind.WBC, 25), lab(months(3), LabKind.PLATELETS, 300)]
    eln = assess(record(bcr_abl1=[pcr(months(3), 5.0)], labs=labs), months(3), ELN2013).eln
    assert eln.status is ElnStatus.FAILURE
    assert any("WBC 25" in say(r) for r in eln.reasons)


def test_eln2009_follows_baccarani_2009_and_names_where_the_older_summary_differs() -> None:
    no_chr = [
        lab(months(3), LabKind.WBC, 12),
        lab(months(3), LabKind.PLATELETS, 300),
        lab(months(3), LabKind.BASOPHILS, 1),
    ]
    eln = assess(record(labs=no_chr), months(3), ELN2009).eln
    assert eln.status is ElnStatus.FAILURE  # "3 months - failure: less than CHR"
    assert eln.milestone is Milestone.M3
    assert "older summary" in say(eln.reasons[0])

    assert (
        assess(record(cytogenetics=[cyto(months(6), 40.0)]), months(6), ELN2009).eln.status
        is ElnStatus.SUBOPTIMAL
    )
    assert (
        assess(record(cytogenetics=[cyto(months(12), 5.0)]), months(12), ELN2009).eln.status
        is ElnStatus.SUBOPTIMAL
    )
    assert (
        assess(record(bcr_abl1=[pcr(months(18), 0.5)]), months(18), ELN2009).eln.status
        is ElnStatus.SUBOPTIMAL
    )
    assert (
        assess(record(bcr_abl1=[pcr(months(18), 0.05)]), months(18), ELN2009).eln.status
        is ElnStatus.OPTIMAL
    )


def test_eln2009_failure_criteria_and_t315i() -> None:
    assert (
        assess(record(cytogenetics=[cyto(months(6), 98.0)]), months(6), ELN2009).eln.status
        is ElnStatus.FAILURE
    )
    assert (
        assess(record(cytogenetics=[cyto(months(12), 50.0)]), months(12), ELN2009).eln.status
        is ElnStatus.FAILURE
    )
    rec = record(bcr_abl1=[pcr(months(18), 0.05)], mutations=[mutation(months(18), "T315I")])
    assert assess(rec, months(18), ELN2009).eln.status is ElnStatus.FAILURE
    rec = record(bcr_abl1=[pcr(months(18), 0.05)], mutations=[mutation(months(18), "M351T")])
    assert assess(rec, months(18), ELN2009).eln.status is ElnStatus.SUBOPTIMAL


def test_eln2009_six_months_with_only_pcr_is_not_evaluable() -> None:
    eln = assess(record(bcr_abl1=[pcr(months(6), 0.5)]), months(6), ELN2009).eln
    assert eln.status is ElnStatus.NOT_EVALUABLE


def test_history_keeps_every_reading_and_notes_an_earlier_failure() -> None:
    results = [pcr(months(6), 15.0), pcr(months(12), 0.08)]
    eln = assess(record(bcr_abl1=results), months(12)).eln
    assert [h.status for h in eln.history] == [ElnStatus.FAILURE, ElnStatus.OPTIMAL]
    assert eln.status is ElnStatus.OPTIMAL
    assert any("earlier result was read as failure" in say(r) for r in eln.reasons)


def test_no_start_date_is_not_evaluable() -> None:
    rec = record(tki=(), bcr_abl1=[pcr(months(6), 0.5)])
    result = assess(rec, months(6))
    assert result.therapy.status is TherapyStatus.NONE
    assert result.eln.status is ElnStatus.NOT_EVALUABLE
    assert "start" in say(result.eln.reasons[0])
