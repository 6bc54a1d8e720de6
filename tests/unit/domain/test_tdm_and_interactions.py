"""Trough level reading (steady state, timing, thresholds) and CYP3A4 interactions."""

from __future__ import annotations

from datetime import date

import pytest

from fhir_cml.domain import assess
from fhir_cml.domain.vocabulary import Recommendation, TdmStatus, Tki
from fhir_cml.reporting import say

from .builders import START, inhibitor, months, pcr, record, tki, trough


def tdm(*troughs: object, statements: tuple = (), as_of: date = date(2021, 1, 1)):  # type: ignore[no-untyped-def, type-arg]
    kw = {"troughs": list(troughs)}
    if statements:
        kw["tki"] = statements
    return assess(record(**kw), as_of).tdm


@pytest.mark.parametrize(
    ("ng_ml", "status"),
    [
        (999.0, TdmStatus.SUBTHERAPEUTIC),
        (1000.0, TdmStatus.ADEQUATE),
        (1999.0, TdmStatus.ADEQUATE),
        (2000.0, TdmStatus.SUPRATHERAPEUTIC),
    ],
)
def test_thresholds(ng_ml: float, status: TdmStatus) -> None:
    reading = tdm(trough(months(6), ng_ml))
    assert reading.status is status
    assert reading.at_current_dose
    assert reading.basis is not None
    assert reading.basis.evidence == (reading.trough.ref,)


def test_no_trough() -> None:
    assert tdm().status is TdmStatus.NONE


def test_not_at_steady_state_is_timing_invalid() -> None:
    early = tdm(trough(date(2020, 1, 20), 800.0))
    assert early.status is TdmStatus.TIMING_INVALID
    assert "days on imatinib" in say(early.basis)  # type: ignore[union-attr]

    after_change = tdm(
        trough(date(2020, 6, 5), 800.0),
        statements=(tki(dose=400), tki(date(2020, 6, 1), dose=600)),
    )
    assert after_change.status is TdmStatus.TIMING_INVALID
    assert "dose change" in say(after_change.basis)  # type: ignore[union-attr]


def test_not_drawn_at_trough_is_timing_invalid() -> None:
    peak = tdm(trough(months(6), 3000.0, hours=3.0))
    assert peak.status is TdmStatus.TIMING_INVALID
    assert "3 h after the last dose" in say(peak.basis)  # type: ignore[union-attr]
    twice_daily = tdm(trough(months(6), 1500.0, hours=12.0), statements=(tki(dose=800, per_day=2),))
    assert twice_daily.status is TdmStatus.ADEQUATE


def test_trough_at_an_earlier_dose_is_read_but_not_current() -> None:
    reading = tdm(
        trough(months(6), 700.0),
        statements=(tki(dose=400), tki(months(9), dose=600)),
        as_of=months(12),
    )
    assert reading.status is TdmStatus.SUBTHERAPEUTIC
    assert not reading.at_current_dose
    assert "earlier dose" in say(reading.basis)  # type: ignore[union-attr]


def test_trough_while_on_another_tki_is_timing_invalid() -> None:
    reading = tdm(
        trough(months(6), 700.0),
        statements=(tki(drug=Tki.NILOTINIB, dose=600),),
    )
    assert reading.status is TdmStatus.TIMING_INVALID


def test_strong_inhibitor_alongside_the_tki_is_an_interaction_to_review() -> None:
    rec = record(
        bcr_abl1=[pcr(months(12), 0.05)],
        other_medications=[inhibitor("clarithromycin", months(11))],
    )
    result = assess(rec, months(12))
    assert [i.medication for i in result.interactions] == ["clarithromycin"]
    codes = [s.code for s in result.recommendations]
    assert Recommendation.REVIEW_INTERACTIONS in codes
    assert Recommendation.MEASURE_TROUGH_LEVEL in codes


def test_medication_started_after_as_of_or_stopped_before_is_not_an_interaction() -> None:
    later = record(other_medications=[inhibitor("itraconazole", date(2030, 1, 1))])
    assert assess(later, months(12)).interactions == ()
    med = inhibitor("itraconazole", START)
    stopped = type(med)(med.ref, med.name, med.status, med.effect, START, months(2))
    assert assess(record(other_medications=[stopped]), months(12)).interactions == ()
