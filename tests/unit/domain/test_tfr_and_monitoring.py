"""TFR eligibility and relapse; the monitoring schedule."""

from __future__ import annotations

from datetime import date, timedelta

from fhir_cml.domain import assess
from fhir_cml.domain.findings import Finding
from fhir_cml.domain.model import Diagnosis
from fhir_cml.domain.vocabulary import (
    MedicationStatus,
    Phase,
    Recommendation,
    StopReason,
    TfrStatus,
    TherapyStatus,
    Tki,
    Transcript,
)
from fhir_cml.reporting import say

from .builders import START, adherence, chronic, months, pcr, record, tki

E14 = Transcript.E14A2


def deep_course(until: float = 70, depth_copies: int = 50_000) -> list:  # type: ignore[type-arg]
    """Optimal milestones, MMR at 12 months, undetectable from 24 months on, every 3 months."""
    out = [pcr(months(3), 5.0, transcript=E14), pcr(months(6), 0.5), pcr(months(12), 0.05)]
    out += [pcr(months(m), None, copies=depth_copies) for m in range(24, int(until) + 1, 3)]
    return out


def candidate(**kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("bcr_abl1", deep_course())
    kw.setdefault("diagnoses", (chronic(),))
    return record(**kw)


def test_eligible_when_all_criteria_are_met() -> None:
    result = assess(candidate(), months(70))
    assert result.tfr.status is TfrStatus.ELIGIBLE
    assert result.tfr.optimal_criteria_met is True
    assert Recommendation.DISCUSS_TFR in [s.code for s in result.recommendations]
    assert any("Confirm with the patient" in say(b) for b in result.tfr.reasons)


def test_not_eligible_before_five_years_of_imatinib() -> None:
    result = assess(candidate(bcr_abl1=deep_course(55)), months(55))
    assert result.tfr.status is TfrStatus.NOT_ELIGIBLE
    assert any("needs > 5 years" in say(b) for b in result.tfr.reasons)


def test_mr4_needs_three_years_for_the_optimal_criteria() -> None:
    result = assess(candidate(bcr_abl1=deep_course(70, depth_copies=15_000)), months(70))
    assert result.tfr.status is TfrStatus.ELIGIBLE
    assert result.tfr.optimal_criteria_met is True  # MR4 since 24 months: 3.8 years
    short = deep_course(70, depth_copies=15_000)[:3] + [
        pcr(months(m), None, copies=15_000) for m in range(40, 71, 3)
    ]
    result = assess(candidate(bcr_abl1=short), months(70))
    assert result.tfr.status is TfrStatus.ELIGIBLE
    assert result.tfr.optimal_criteria_met is False


def test_a_result_on_the_is_shows_a_typical_transcript() -> None:
    """Finding 10: only p210 (e13a2/e14a2) can be reported on the IS (Cross 2015)."""
    no_transcript = [pcr(r.date, r.is_percent, copies=r.control_copies) for r in deep_course()]
    result = assess(candidate(bcr_abl1=no_transcript), months(70))
    assert result.tfr.status is TfrStatus.ELIGIBLE
    reason = next(b for b in result.tfr.reasons if b.finding is Finding.TFR_TRANSCRIPT_FROM_IS)
    assert "International Scale" in say(reason)
    assert reason.evidence == (no_transcript[-1].ref,)


def test_facts_rarely_recorded_make_eligible_with_what_to_confirm() -> None:
    """Finding 10: an unrecorded phase or switch reason is confirmed, not a block."""
    result = assess(candidate(diagnoses=()), months(70))
    assert result.tfr.status is TfrStatus.ELIGIBLE
    confirm = [b.finding for b in result.tfr.to_confirm]
    assert confirm == [Finding.TFR_PHASE_UNKNOWN, Finding.TFR_CONFIRM]
    assert result.tfr.reasons[0].finding is Finding.TFR_PHASE_UNKNOWN
    assert "chronic phase" in say(result.tfr.reasons[0])
    assert Recommendation.DISCUSS_TFR in [s.code for s in result.recommendations]
    unknown_switch = (
        tki(end=months(6), status=MedicationStatus.STOPPED, reason=None),
        tki(months(6), drug=Tki.NILOTINIB, dose=600, per_day=2),
    )
    switched = assess(candidate(tki=unknown_switch), months(70))
    assert switched.tfr.status is TfrStatus.ELIGIBLE
    assert Finding.TFR_SWITCH_REASON_UNKNOWN in [b.finding for b in switched.tfr.to_confirm]
    # no IS result and no recorded transcript: the transcript is confirmed too
    off_is = [
        pcr(r.date, r.is_percent, copies=r.control_copies, on_is=False) for r in deep_course()
    ]
    unknown = assess(candidate(bcr_abl1=off_is), months(70)).tfr
    assert Finding.TFR_TRANSCRIPT_UNKNOWN in [b.finding for b in unknown.to_confirm]


def test_an_undefined_duration_is_not_evaluable() -> None:
    ponatinib = (tki(drug=Tki.PONATINIB, dose=45),)
    result = assess(candidate(tki=ponatinib), months(70))
    assert result.tfr.status is TfrStatus.NOT_EVALUABLE
    assert result.tfr.reasons[0].finding is Finding.TFR_DURATION_UNDEFINED


def test_prior_failure_resistance_switch_accelerated_phase_or_poor_adherence_exclude() -> None:
    failed = [pcr(months(6), 15.0, transcript=E14), *deep_course()[2:]]
    assert assess(candidate(bcr_abl1=failed), months(70)).tfr.status is TfrStatus.NOT_ELIGIBLE
    accelerated = (Diagnosis("Condition/ap", Phase.ACCELERATED, START),)
    assert assess(candidate(diagnoses=accelerated), months(70)).tfr.status is TfrStatus.NOT_ELIGIBLE
    switched = (
        tki(end=months(6), status=MedicationStatus.STOPPED, reason=StopReason.RESISTANCE),
        tki(months(6), drug=Tki.NILOTINIB, dose=600, per_day=2),
    )
    assert assess(candidate(tki=switched), months(70)).tfr.status is TfrStatus.NOT_ELIGIBLE
    poor = [adherence(months(69), adherent=False)]
    assert assess(candidate(adherence=poor), months(70)).tfr.status is TfrStatus.NOT_ELIGIBLE


def stopped_for_tfr(stop: date, reason: StopReason | None = StopReason.TFR) -> tuple:  # type: ignore[type-arg]
    return (tki(end=stop, status=MedicationStatus.STOPPED, reason=reason, asserted=stop),)


def test_in_tfr_and_relapse_after_stopping() -> None:
    stop = months(72)
    course = deep_course(72)
    in_tfr = assess(
        candidate(bcr_abl1=[*course, pcr(months(73), 0.004)], tki=stopped_for_tfr(stop)), months(74)
    )
    assert in_tfr.therapy.status is TherapyStatus.TFR
    assert in_tfr.tfr.status is TfrStatus.IN_TFR
    assert in_tfr.monitoring.phase == "tfr-months-1-6"
    assert in_tfr.monitoring.interval_days == 30

    relapse = assess(
        candidate(
            bcr_abl1=[*course, pcr(months(73), 0.02), pcr(months(74), 0.3)],
            tki=stopped_for_tfr(stop),
        ),
        months(74.2),
    )
    assert relapse.tfr.status is TfrStatus.MOLECULAR_RELAPSE
    codes = [s.code for s in relapse.recommendations]
    assert codes[0] is Recommendation.RESTART_TKI
    assert relapse.tfr.stim1_relapse is True  # 0.02 -> 0.3 % one month apart: > 1 log
    assert relapse.eln.status.value == "failure"  # loss of MMR after stopping (ELN 2020)


def test_stop_without_reason_after_sustained_dmr_is_read_as_tfr_and_flagged() -> None:
    stop = months(72)
    result = assess(
        candidate(bcr_abl1=deep_course(72), tki=stopped_for_tfr(stop, None)), months(73)
    )
    assert result.therapy.status is TherapyStatus.TFR
    assert any(i.code.value == "inferred" for i in result.issues)


def test_monitoring_intervals() -> None:
    early = assess(record(bcr_abl1=[pcr(months(1), 40.0)]), months(1.5)).monitoring
    assert (early.phase, early.interval_days, early.next_pcr_due) == (
        "early",
        30,
        months(1) + timedelta(days=30),
    )
    standard = assess(record(bcr_abl1=[pcr(months(12), 0.05)]), months(13)).monitoring
    assert (standard.phase, standard.interval_days) == ("standard", 91)
    reduced = assess(
        record(bcr_abl1=[pcr(months(40), 0.01)], tki=(tki(dose=400), tki(months(39), dose=300))),
        months(41),
    ).monitoring
    assert (reduced.phase, reduced.interval_days) == ("after-dose-reduction", 42)


def test_overdue_pcr() -> None:
    result = assess(record(bcr_abl1=[pcr(months(12), 0.05)]), months(20))
    assert result.monitoring.overdue
    assert result.monitoring.next_pcr_due == months(12) + timedelta(days=91)
    codes = [s.code for s in result.recommendations]
    assert Recommendation.PCR_OVERDUE in codes
    assert Recommendation.SCHEDULE_PCR not in codes


def test_no_sample_yet_is_due_at_the_start() -> None:
    result = assess(record(), START + timedelta(days=10))
    assert result.monitoring.next_pcr_due == START
    assert result.monitoring.overdue
