"""Suggestions: the work-up before a dose change, escalation, switching, reduction, continuing."""

from __future__ import annotations

from fhir_cml.domain import assess
from fhir_cml.domain.results import Assessment
from fhir_cml.domain.vocabulary import Recommendation as R
from fhir_cml.reporting import say, suggestion_text

from .builders import adherence, adverse, months, mutation, pcr, record, tki, trough


def codes(result: Assessment) -> list[R]:
    return [s.code for s in result.recommendations]


def suggestion(result: Assessment, code: R):  # type: ignore[no-untyped-def]
    return next(s for s in result.recommendations if s.code is code)


WARNING_6M = [pcr(months(3), 8.0), pcr(months(6), 4.0)]


def test_warning_without_work_up_asks_for_adherence_trough_and_mutations_first() -> None:
    result = assess(record(bcr_abl1=WARNING_6M), months(6))
    assert result.eln.status.value == "warning"
    assert codes(result)[:3] == [R.CHECK_ADHERENCE, R.MEASURE_TROUGH_LEVEL, R.MUTATION_ANALYSIS]
    assert R.ESCALATE_DOSE not in codes(result)
    assert R.CONTINUE_THERAPY not in codes(result)


def test_warning_with_low_steady_state_trough_escalates_400_to_600() -> None:
    rec = record(
        bcr_abl1=WARNING_6M,
        troughs=[trough(months(5.5), 650.0)],
        adherence=[adherence(months(5.5), True)],
        mutations=[mutation(months(5.8), None, detected=False)],
    )
    result = assess(rec, months(6))
    assert R.ESCALATE_DOSE in codes(result)
    escalate = suggestion(result, R.ESCALATE_DOSE)
    assert "from 400 to 600 mg/day" in suggestion_text(escalate)
    assert {b.rule.id for b in escalate.basis} >= {
        "dose-escalation",
        "tdm-reading",
        "iris-escalation-outcomes",
    }
    assert R.CHECK_ADHERENCE not in codes(result)
    assert R.MEASURE_TROUGH_LEVEL not in codes(result)
    assert R.MUTATION_ANALYSIS not in codes(result)


def test_poor_adherence_blocks_escalation() -> None:
    rec = record(
        bcr_abl1=WARNING_6M,
        troughs=[trough(months(5.5), 650.0)],
        adherence=[adherence(months(5.5), False)],
    )
    result = assess(rec, months(6))
    assert R.ESCALATE_DOSE not in codes(result)
    assert "poor" in suggestion_text(suggestion(result, R.CHECK_ADHERENCE))


def test_t315i_never_escalates_and_switches() -> None:
    rec = record(
        bcr_abl1=[pcr(months(3), 8.0), pcr(months(6), 0.9), pcr(months(12), 3.0)],
        troughs=[trough(months(11), 600.0)],
        mutations=[mutation(months(12), "T315I")],
    )
    result = assess(rec, months(12))
    assert result.eln.status.value == "failure"
    assert codes(result)[0] is R.SWITCH_TKI
    assert "T315I" in suggestion_text(suggestion(result, R.SWITCH_TKI))
    assert R.ESCALATE_DOSE not in codes(result)
    assert R.MUTATION_ANALYSIS not in codes(result)
    assert R.MEASURE_TROUGH_LEVEL not in codes(result)


def test_failure_with_low_trough_and_good_adherence_offers_switch_and_escalation() -> None:
    rec = record(
        bcr_abl1=[pcr(months(3), 8.0), pcr(months(6), 0.9), pcr(months(12), 3.0)],
        troughs=[trough(months(11), 600.0)],
        adherence=[adherence(months(11), True)],
        mutations=[mutation(months(12), None, detected=False)],
    )
    result = assess(rec, months(12))
    assert result.eln.status.value == "failure"
    assert codes(result)[0] is R.SWITCH_TKI
    assert R.ESCALATE_DOSE in codes(result)
    assert "switching TKI is generally preferred" in suggestion_text(
        suggestion(result, R.ESCALATE_DOSE)
    )


def test_dose_sensitive_mutation_allows_escalation_without_a_trough() -> None:
    rec = record(
        bcr_abl1=WARNING_6M,
        mutations=[mutation(months(6), "M351T")],
        adherence=[adherence(months(6), True)],
    )
    result = assess(rec, months(6))
    assert R.ESCALATE_DOSE in codes(result)


def test_no_escalation_beyond_800_switch_instead() -> None:
    rec = record(
        bcr_abl1=WARNING_6M,
        tki=(tki(dose=800, per_day=2),),
        troughs=[trough(months(5.5), 650.0, hours=12)],
        adherence=[adherence(months(5.5), True)],
    )
    result = assess(rec, months(6))
    assert R.ESCALATE_DOSE not in codes(result)
    assert R.SWITCH_TKI in codes(result)


def test_escalation_only_for_imatinib() -> None:
    from fhir_cml.domain.vocabulary import Tki

    rec = record(bcr_abl1=WARNING_6M, tki=(tki(drug=Tki.DASATINIB, dose=100),))
    result = assess(rec, months(6))
    assert R.ESCALATE_DOSE not in codes(result)
    assert R.MEASURE_TROUGH_LEVEL not in codes(result)


STABLE = [pcr(months(m), 0.02) for m in range(12, 40, 3)]


def test_stable_mmr_with_adverse_events_suggests_a_dose_reduction() -> None:
    result = assess(
        record(bcr_abl1=STABLE, adverse_events=[adverse(months(38), "fatigue")]), months(39)
    )
    assert R.CONSIDER_DOSE_REDUCTION in codes(result)
    basis = suggestion(result, R.CONSIDER_DOSE_REDUCTION).basis
    assert any("fatigue" in say(b) for b in basis)
    assert R.CONTINUE_THERAPY not in codes(result)


def test_no_reduction_without_adverse_events_or_without_stable_mmr() -> None:
    assert R.CONSIDER_DOSE_REDUCTION not in codes(assess(record(bcr_abl1=STABLE), months(39)))
    short = [pcr(months(30), 0.5), pcr(months(33), 0.05), pcr(months(36), 0.05)]
    result = assess(record(bcr_abl1=short, adverse_events=[adverse(months(35))]), months(36))
    assert R.CONSIDER_DOSE_REDUCTION not in codes(result)
    mild = adverse(months(38), "mild nausea", qol=False)
    assert R.CONSIDER_DOSE_REDUCTION not in codes(
        assess(record(bcr_abl1=STABLE, adverse_events=[mild]), months(39))
    )


def test_optimal_response_continues_therapy_and_schedules_the_next_pcr() -> None:
    result = assess(record(bcr_abl1=STABLE), months(39))
    assert codes(result) == [R.CONTINUE_THERAPY, R.SCHEDULE_PCR]
    assert "imatinib 400 mg/day" in suggestion_text(suggestion(result, R.CONTINUE_THERAPY))


def test_unreadable_latest_result_asks_for_a_repeat() -> None:
    result = assess(record(bcr_abl1=[*STABLE, pcr(months(40), None, copies=6_000)]), months(40))
    assert R.REPEAT_PCR in codes(result)
    assert "adequate sample" in suggestion_text(suggestion(result, R.REPEAT_PCR))
    assert result.molecular_response.depth.value == "not-evaluable"


def test_unconfirmed_loss_of_mmr_asks_for_confirmation() -> None:
    result = assess(record(bcr_abl1=[*STABLE, pcr(months(40), 0.3)]), months(40))
    assert result.loss_of_mmr.lost
    assert not result.loss_of_mmr.confirmed
    assert R.REPEAT_PCR in codes(result)
    assert "confirm" in suggestion_text(suggestion(result, R.REPEAT_PCR))


def test_every_suggestion_has_a_basis_with_a_source() -> None:
    rec = record(bcr_abl1=WARNING_6M, troughs=[trough(months(5.5), 650.0)])
    for s in assess(rec, months(6)).recommendations:
        assert s.basis, s.code
        assert all(b.rule.citations and say(b) for b in s.basis)
