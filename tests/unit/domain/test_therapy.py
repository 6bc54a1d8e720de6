"""The TKI course from several statements: start, dose history, switches, gaps, stops."""

from __future__ import annotations

from datetime import date

from fhir_cml.domain.rules.therapy import build_therapy
from fhir_cml.domain.vocabulary import IssueCode, MedicationStatus, StopReason, TherapyStatus, Tki

from .builders import START, months, tki

AS_OF = date(2025, 6, 30)


def test_single_active_statement() -> None:
    therapy, issues = build_therapy((tki(),), AS_OF)
    assert therapy.status is TherapyStatus.ACTIVE
    assert therapy.start == START
    assert therapy.drug is Tki.IMATINIB
    assert therapy.daily_dose_mg == 400
    assert therapy.line == 1
    assert therapy.months_on_therapy == 65.9  # 2,007 days
    assert issues == []


def test_escalation_by_a_later_statement_is_a_dose_change() -> None:
    first = tki(dose=400)
    second = tki(months(12), dose=600)
    therapy, _ = build_therapy((first, second), AS_OF)
    assert therapy.daily_dose_mg == 600
    assert therapy.start == START  # therapy time runs from the first TKI start
    assert therapy.current_start == START  # same drug, uninterrupted
    assert therapy.last_dose_change == months(12)
    assert therapy.last_reduction is None
    assert [s.daily_dose_mg for s in therapy.segments] == [400, 600]
    assert therapy.segments[0].stop_reason is StopReason.DOSE_CHANGE


def test_reduction_is_recorded() -> None:
    therapy, _ = build_therapy((tki(dose=400, end=months(40)), tki(months(40), dose=300)), AS_OF)
    assert therapy.last_reduction == months(40)


def test_switch_for_intolerance_and_for_resistance() -> None:
    intolerant = (
        tki(end=months(6), status=MedicationStatus.STOPPED, reason=StopReason.INTOLERANCE),
        tki(months(6), drug=Tki.NILOTINIB, dose=600, per_day=2),
    )
    therapy, _ = build_therapy(intolerant, AS_OF)
    assert therapy.line == 2
    assert therapy.drug is Tki.NILOTINIB
    assert therapy.current_start == months(6)
    assert not therapy.switched_for_resistance
    assert therapy.switch_reasons_known

    resistant = (
        tki(end=months(12), status=MedicationStatus.STOPPED, reason=StopReason.RESISTANCE),
        tki(months(12), drug=Tki.DASATINIB, dose=100),
    )
    therapy, _ = build_therapy(resistant, AS_OF)
    assert therapy.switched_for_resistance

    unknown = (
        tki(end=months(12), status=MedicationStatus.STOPPED),
        tki(months(12), drug=Tki.DASATINIB),
    )
    therapy, _ = build_therapy(unknown, AS_OF)
    assert not therapy.switch_reasons_known


def test_gap_between_statements_is_an_interruption() -> None:
    therapy, _ = build_therapy(
        (
            tki(end=months(10), status=MedicationStatus.STOPPED, reason=StopReason.OTHER),
            tki(months(11)),
        ),
        AS_OF,
    )
    assert therapy.status is TherapyStatus.ACTIVE
    assert len(therapy.gaps) == 1
    assert therapy.gaps[0].start == months(10)
    assert therapy.gaps[0].end == months(11)


def test_on_hold_now_is_interrupted() -> None:
    held = tki(status=MedicationStatus.ON_HOLD, asserted=date(2025, 6, 1))
    therapy, _ = build_therapy((held,), AS_OF)
    assert therapy.status is TherapyStatus.INTERRUPTED
    assert therapy.gaps[-1].start == date(2025, 6, 1)


def test_stop_for_tfr_and_stop_for_other_reasons() -> None:
    tfr, _ = build_therapy(
        (tki(end=date(2025, 1, 15), status=MedicationStatus.STOPPED, reason=StopReason.TFR),), AS_OF
    )
    assert tfr.status is TherapyStatus.TFR
    assert tfr.stopped_on == date(2025, 1, 15)
    other, _ = build_therapy(
        (
            tki(
                end=date(2025, 1, 15),
                status=MedicationStatus.STOPPED,
                reason=StopReason.INTOLERANCE,
            ),
        ),
        AS_OF,
    )
    assert other.status is TherapyStatus.STOPPED


def test_statements_that_are_not_intake_are_left_out_and_said_so() -> None:
    therapy, issues = build_therapy(
        (
            tki(status=MedicationStatus.ENTERED_IN_ERROR),
            tki(months(3), status=MedicationStatus.NOT_TAKEN),
            tki(months(6), status=MedicationStatus.INTENDED),
        ),
        AS_OF,
    )
    assert therapy.status is TherapyStatus.NONE
    codes = [i.code for i in issues]
    assert codes.count(IssueCode.STATUS_IGNORED) == 3
    assert IssueCode.NO_THERAPY_START in codes


def test_missing_start_and_missing_end() -> None:
    no_start = tki()
    no_start = type(no_start)(
        **{**{f: getattr(no_start, f) for f in no_start.__slots__}, "start": None}
    )
    therapy, issues = build_therapy((no_start,), AS_OF)
    assert therapy.status is TherapyStatus.NONE
    assert any(i.code is IssueCode.NO_THERAPY_START and i.resource == no_start.ref for i in issues)

    stopped_no_end = tki(status=MedicationStatus.STOPPED, asserted=date(2024, 3, 1))
    therapy, issues = build_therapy((stopped_no_end,), AS_OF)
    assert therapy.stopped_on == date(2024, 3, 1)
    assert any(i.code is IssueCode.INFERRED for i in issues)


def test_statement_starting_after_as_of_is_ignored() -> None:
    therapy, issues = build_therapy((tki(), tki(date(2026, 1, 1), dose=600)), AS_OF)
    assert therapy.daily_dose_mg == 400
    assert any(i.code is IssueCode.AFTER_AS_OF for i in issues)


def test_end_after_as_of_means_still_taking_on_the_as_of_date() -> None:
    therapy, _ = build_therapy(
        (tki(end=date(2025, 12, 31), status=MedicationStatus.COMPLETED),), AS_OF
    )
    assert therapy.status is TherapyStatus.ACTIVE
