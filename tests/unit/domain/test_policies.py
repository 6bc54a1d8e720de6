"""Each suggestion policy alone: given the readings, what it suggests and what it leaves to others."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from fhir_cml.domain import assess
from fhir_cml.domain.config import DEFAULT_CONFIG
from fhir_cml.domain.findings import Finding
from fhir_cml.domain.model import PatientRecord
from fhir_cml.domain.rules import policies
from fhir_cml.domain.rules.policies import Context, facts
from fhir_cml.domain.rules.response_depth import classify
from fhir_cml.domain.vocabulary import Recommendation as R
from fhir_cml.domain.vocabulary import Tki

from .builders import (
    adherence,
    adverse,
    inhibitor,
    months,
    mutation,
    pcr,
    record,
    tki,
    trough,
)

WARNING_6M = [pcr(months(3), 8.0), pcr(months(6), 4.0)]
FAILURE_12M = [pcr(months(3), 8.0), pcr(months(6), 0.9), pcr(months(12), 3.0)]
OPTIMAL = [pcr(months(3), 5.0), pcr(months(6), 0.5), pcr(months(12), 0.05)]


def context(rec: PatientRecord, as_of: date) -> Context:
    """The context the engine hands the policies, rebuilt from an assessment."""
    a = assess(rec, as_of)
    calls = [(r, classify(r)) for r in rec.bcr_abl1 if r.date <= as_of]
    return Context(
        as_of,
        a.therapy,
        a.molecular_response,
        calls,
        a.eln,
        a.loss_of_mmr,
        a.tdm,
        a.tfr,
        a.interactions,
        a.monitoring,
        rec.mutations,
        rec.adherence,
        rec.adverse_events,
        DEFAULT_CONFIG,
    )


def run(policy: policies.Policy, ctx: Context, already: frozenset[R] = frozenset()):  # type: ignore[no-untyped-def]
    return policy(ctx, facts(ctx), already)


def found(policy: policies.Policy, ctx: Context) -> list[tuple[R, Finding]]:
    return [(s.code, s.finding) for s in run(policy, ctx)]


def test_restart_only_after_a_relapse_off_treatment() -> None:
    assert run(policies.restart, context(record(bcr_abl1=OPTIMAL), months(12))) == []


def test_switch_after_t315i_names_ponatinib_or_asciminib() -> None:
    ctx = context(
        record(bcr_abl1=FAILURE_12M, mutations=[mutation(months(12), "T315I")]), months(12)
    )
    (switch,) = run(policies.switch, ctx)
    assert switch.finding is Finding.SWITCH_T315I
    assert dict(switch.params)["options"] == (Tki.PONATINIB, Tki.ASCIMINIB)


def test_switch_at_failure_and_at_the_highest_dose_only() -> None:
    assert found(policies.switch, context(record(bcr_abl1=FAILURE_12M), months(12))) == [
        (R.SWITCH_TKI, Finding.SWITCH_FAILURE)
    ]
    at_800 = record(bcr_abl1=WARNING_6M, tki=(tki(dose=800, per_day=2),))
    assert found(policies.switch, context(at_800, months(6))) == [
        (R.SWITCH_TKI, Finding.SWITCH_AT_HIGHEST_DOSE)
    ]
    assert run(policies.switch, context(record(bcr_abl1=WARNING_6M), months(6))) == []


def test_pcr_overdue_and_unreadable() -> None:
    overdue = context(record(bcr_abl1=OPTIMAL), months(16))
    assert (R.PCR_OVERDUE, Finding.PCR_OVERDUE) in found(policies.pcr, overdue)
    unreadable = context(record(bcr_abl1=[*OPTIMAL, pcr(months(14), None, copies=500)]), months(14))
    (repeat,) = run(policies.pcr, unreadable)
    assert repeat.finding is Finding.REPEAT_UNREADABLE
    assert dict(repeat.params)["too_few_copies"] is True


def test_workup_asks_what_is_not_known_and_only_that() -> None:
    assert [
        c for c, _ in found(policies.workup, context(record(bcr_abl1=WARNING_6M), months(6)))
    ] == [
        R.CHECK_ADHERENCE,
        R.MEASURE_TROUGH_LEVEL,
        R.MUTATION_ANALYSIS,
    ]
    known = record(
        bcr_abl1=WARNING_6M,
        adherence=[adherence(months(5.5), True)],
        troughs=[trough(months(5.5), 1200.0)],
        mutations=[mutation(months(5.8), None, detected=False)],
    )
    assert run(policies.workup, context(known, months(6))) == []
    assert run(policies.workup, context(record(bcr_abl1=OPTIMAL), months(12))) == []


def test_escalate_needs_a_low_steady_state_trough_or_a_dose_sensitive_mutation() -> None:
    low = record(bcr_abl1=WARNING_6M, troughs=[trough(months(5.5), 650.0)])
    (escalate,) = run(policies.escalate, context(low, months(6)))
    assert dict(escalate.params)["next"] == 600
    assert run(policies.escalate, context(record(bcr_abl1=WARNING_6M), months(6))) == []
    sensitive = record(bcr_abl1=WARNING_6M, mutations=[mutation(months(5.8), "M351T")])
    assert [s.code for s in run(policies.escalate, context(sensitive, months(6)))] == [
        R.ESCALATE_DOSE
    ]
    poor = replace(low, adherence=(adherence(months(5.5), False),))
    assert run(policies.escalate, context(poor, months(6))) == []


def test_interactions_only_on_tki() -> None:
    rec = record(bcr_abl1=OPTIMAL, other_medications=(inhibitor(),))
    assert found(policies.interactions, context(rec, months(12))) == [
        (R.REVIEW_INTERACTIONS, Finding.REVIEW_INTERACTIONS)
    ]


def test_reduce_needs_stable_mmr_and_an_adverse_event() -> None:
    stable = [*OPTIMAL, *(pcr(months(m), 0.05) for m in range(15, 40, 3))]
    events = [adverse(months(36))]
    assert found(
        policies.reduce, context(record(bcr_abl1=stable, adverse_events=events), months(39))
    ) == [(R.CONSIDER_DOSE_REDUCTION, Finding.REDUCE)]
    assert run(policies.reduce, context(record(bcr_abl1=stable), months(39))) == []


def test_tfr_and_monitoring_and_keep_going() -> None:
    ctx = context(record(bcr_abl1=OPTIMAL), months(12))
    assert run(policies.tfr, ctx) == []
    assert run(policies.monitoring, ctx) == []
    assert [s.code for s in run(policies.keep_going, ctx)] == [R.CONTINUE_THERAPY, R.SCHEDULE_PCR]
    held_back = run(policies.keep_going, ctx, frozenset({R.SWITCH_TKI}))
    assert [s.code for s in held_back] == [R.SCHEDULE_PCR]
