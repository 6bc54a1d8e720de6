"""The suggestion policies: each decides one kind of suggestion from the readings, alone.

Every policy is ``policy(ctx, facts, already) -> list[Suggestion]``: the assessment's readings,
what several policies ask (:class:`Facts`, derived once), and the codes suggested by the policies
before it. The work-up comes before any change of dose: adherence, trough level, mutation analysis
(ELN 2020; Soverini et al. 2019). Escalation is only suggested when the record shows its conditions
(imatinib, a concern, a steady-state trough below target at the current dose or a dose-sensitive
mutation, no resistant mutation, below the highest step); T315I never escalates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from fhir_cml.domain.basis import Basis, Dose, Months, NgMl, Value, Years, basis
from fhir_cml.domain.config import RuleConfig
from fhir_cml.domain.findings import Finding
from fhir_cml.domain.model import AdherenceAssessment, AdverseEvent, BcrAbl1Result, MutationResult
from fhir_cml.domain.results import (
    ElnReading,
    Interaction,
    LossOfMmr,
    MolecularResponse,
    Monitoring,
    Suggestion,
    TdmReading,
    TfrReading,
    Therapy,
)
from fhir_cml.domain.rules import catalogue as rules
from fhir_cml.domain.rules.common import DAYS_PER_MONTH, months_between
from fhir_cml.domain.rules.milestones import DOSE_SENSITIVE_MUTATIONS
from fhir_cml.domain.rules.response_depth import MMR_LIMIT, DepthCall
from fhir_cml.domain.rules.switching import switch_options
from fhir_cml.domain.vocabulary import (
    ElnStatus,
    IssueCode,
    Milestone,
    Recommendation,
    ResponseDepth,
    StopReason,
    TdmStatus,
    TfrStatus,
    TherapyStatus,
    Tki,
)

# Imatinib escalation steps, mg/day; the last is the highest (400 mg twice daily).
ESCALATION_STEPS = (400.0, 600.0, 800.0)
MAX_IMATINIB_MG = ESCALATION_STEPS[-1]
_COPIES = (IssueCode.LOW_CONTROL_COPIES, IssueCode.MISSING_CONTROL_COPIES)
R = Recommendation


@dataclass(frozen=True, slots=True)
class Context:
    """The readings of one assessment, as the policies read them."""

    as_of: date
    therapy: Therapy
    response: MolecularResponse
    calls: Sequence[tuple[BcrAbl1Result, DepthCall]]
    eln: ElnReading
    loss: LossOfMmr
    tdm: TdmReading
    tfr: TfrReading
    interactions: Sequence[Interaction]
    monitoring: Monitoring
    mutations: Sequence[MutationResult]
    adherence: Sequence[AdherenceAssessment]
    adverse_events: Sequence[AdverseEvent]
    cfg: RuleConfig


@dataclass(frozen=True, slots=True)
class Facts:
    """What several policies ask: derived once from the context."""

    on_tki: bool  # taking a TKI (or on hold) on the as-of date
    drug: Tki | None
    concern: bool  # on TKI with a warning, suboptimal response, failure or loss of MMR
    eln_basis: Basis | None
    loss_basis: Basis | None
    detected: tuple[MutationResult, ...]  # on the current TKI, up to the as-of date
    t315i: bool
    resistant: tuple[MutationResult, ...]  # every detected mutation but the dose-sensitive ones
    sensitive: tuple[MutationResult, ...]  # M351T, L384M
    mutation_bases: tuple[Basis, ...]
    adherent: bool | None  # the latest recent assessment, None when there is none
    adherence_date: date | None
    adherence_basis: Basis | None
    trough_current: bool  # a steady-state trough at the current dose
    # Restarted for a relapse off treatment (TFR) and MMR not regained yet; ``retreatment_due``
    # once the 3-6 months in which MMR is expected back have passed (Soverini et al. 2019).
    retreating: bool = False
    retreatment_due: bool = False
    switch_options: tuple[Tki, ...] = ()

    @property
    def imatinib(self) -> bool:
        return self.drug is Tki.IMATINIB


def facts(ctx: Context) -> Facts:
    therapy = ctx.therapy
    on_tki = therapy.status in (TherapyStatus.ACTIVE, TherapyStatus.INTERRUPTED)
    tfr = ctx.tfr
    retreating = tfr.restarted_on is not None and tfr.mmr_regained_on is None
    retreatment_due = (
        retreating
        and tfr.restarted_on is not None
        and months_between(tfr.restarted_on, ctx.as_of) >= ctx.cfg.retreatment_mmr_months
    )
    # A concern about the response to TKI: a warning (suboptimal response) or failure read on
    # treatment, or a loss of MMR - not a baseline warning alone (a high-risk score is no
    # response), and not while MMR is expected back after a restart for a relapse off treatment.
    response_concern = (
        ctx.eln.status in (ElnStatus.WARNING, ElnStatus.SUBOPTIMAL, ElnStatus.FAILURE)
        and ctx.eln.milestone is not Milestone.BASELINE
    )
    concern = on_tki and (response_concern or ctx.loss.lost) and (not retreating or retreatment_due)
    since = therapy.current_start or therapy.start or date.min
    detected = tuple(m for m in ctx.mutations if m.detected and since <= m.date <= ctx.as_of)
    recent = [a for a in ctx.adherence if (ctx.as_of - a.date).days <= ctx.cfg.workup_lookback_days]
    last = recent[-1] if recent else None
    return Facts(
        on_tki=on_tki,
        drug=therapy.drug,
        concern=concern,
        eln_basis=ctx.eln.reasons[0] if ctx.eln.reasons else None,
        loss_basis=ctx.loss.basis if ctx.loss.lost else None,
        detected=detected,
        t315i=any(m.mutation == "T315I" for m in detected),
        resistant=tuple(m for m in detected if m.mutation not in DOSE_SENSITIVE_MUTATIONS),
        sensitive=tuple(m for m in detected if m.mutation in DOSE_SENSITIVE_MUTATIONS),
        mutation_bases=tuple(
            basis(
                rules.T315I if m.mutation == "T315I" else rules.SWITCH,
                Finding.MUTATION_DETECTED,
                (m.ref,),
                mutation=m.mutation or m.hgvs,
                date=m.date,
            )
            for m in detected
        ),
        adherent=last.adherent if last else None,
        adherence_date=last.date if last else None,
        adherence_basis=basis(
            rules.ESCALATION_WORKUP,
            Finding.ADHERENCE_ASSESSED,
            (last.ref,),
            date=last.date,
            adherent=last.adherent,
        )
        if last
        else None,
        trough_current=ctx.tdm.at_current_dose
        and ctx.tdm.status
        in (TdmStatus.ADEQUATE, TdmStatus.SUBTHERAPEUTIC, TdmStatus.SUPRATHERAPEUTIC),
        retreating=retreating,
        retreatment_due=retreatment_due,
        switch_options=switch_options(
            therapy.drug,
            therapy.line,
            frozenset(s.drug for s in therapy.segments if s.stop_reason is StopReason.RESISTANCE),
            frozenset(m.mutation for m in detected if m.mutation),
        ),
    )


Policy = Callable[[Context, Facts, frozenset[Recommendation]], list[Suggestion]]


def suggest(
    code: Recommendation, finding: Finding, *bases: Basis | None, **params: Value
) -> Suggestion:
    return Suggestion(
        code, finding, tuple(params.items()), tuple(b for b in bases if b is not None)
    )


def restart(ctx: Context, f: Facts, already: frozenset[Recommendation]) -> list[Suggestion]:
    """After stopping for TFR, a loss of MMR is molecular relapse: restart the TKI."""
    if ctx.tfr.status is not TfrStatus.MOLECULAR_RELAPSE or ctx.tfr.relapse_on is None:
        return []
    # ELN 2020: restart the same TKI within 4 weeks of the loss of MMR; then monitor every 4-6
    # weeks until MMR is regained; mutation analysis only if it is not regained within 3-6 months
    # of restarting (Soverini et al. 2019).
    return [
        suggest(
            R.RESTART_TKI,
            Finding.RESTART_AFTER_RELAPSE,
            *ctx.tfr.reasons,
            drug=f.drug,
            by=ctx.tfr.relapse_on + timedelta(days=ctx.cfg.restart_within_days),
            within_months=Months(ctx.cfg.retreatment_mmr_months),
        )
    ]


def switch(ctx: Context, f: Facts, already: frozenset[Recommendation]) -> list[Suggestion]:
    """T315I, another resistance mutation, failure, or no escalation step left."""
    if not f.on_tki:
        return []
    if f.t315i:
        return [
            suggest(R.SWITCH_TKI, Finding.SWITCH_T315I, *f.mutation_bases, options=f.switch_options)
        ]
    if f.resistant:
        labels = tuple(sorted({m.mutation or m.hgvs or "unnamed mutation" for m in f.detected}))
        return [
            suggest(
                R.SWITCH_TKI,
                Finding.SWITCH_MUTATION,
                *f.mutation_bases,
                mutations=labels,
                drug=f.drug,
                options=f.switch_options,
            )
        ]
    if ctx.eln.status is ElnStatus.FAILURE:
        return [
            suggest(
                R.SWITCH_TKI,
                Finding.SWITCH_FAILURE,
                *ctx.eln.reasons,
                basis(rules.SWITCH, Finding.SWITCH_AT_FAILURE),
                drug=f.drug,
                line=ctx.therapy.line,
                options=f.switch_options,
            )
        ]
    dose = ctx.therapy.daily_dose_mg
    if f.concern and f.imatinib and dose is not None and dose >= MAX_IMATINIB_MG:
        return [
            suggest(
                R.SWITCH_TKI,
                Finding.SWITCH_AT_HIGHEST_DOSE,
                f.eln_basis,
                f.loss_basis,
                basis(
                    rules.SWITCH,
                    Finding.NO_STEP_LEFT,
                    ctx.therapy.evidence[-1:],
                    highest=Dose(MAX_IMATINIB_MG),
                ),
                dose=Dose(dose),
                options=f.switch_options,
            )
        ]
    return []


def pcr(ctx: Context, f: Facts, already: frozenset[Recommendation]) -> list[Suggestion]:
    """The PCR itself: overdue, unreadable, a loss of MMR to confirm, a 3-month warning."""
    out: list[Suggestion] = []
    monitoring = ctx.monitoring
    if monitoring.overdue and monitoring.next_pcr_due is not None:
        out.append(
            suggest(
                R.PCR_OVERDUE, Finding.PCR_OVERDUE, monitoring.basis, due=monitoring.next_pcr_due
            )
        )
    latest = ctx.calls[-1] if ctx.calls else None
    if latest is not None and not latest[1].evaluable:
        out.append(
            suggest(
                R.REPEAT_PCR,
                Finding.REPEAT_UNREADABLE,
                ctx.response.basis,
                too_few_copies=latest[1].problem in _COPIES,
            )
        )
    elif ctx.loss.lost and not ctx.loss.confirmed and ctx.therapy.status is not TherapyStatus.TFR:
        out.append(suggest(R.REPEAT_PCR, Finding.REPEAT_TO_CONFIRM_LOSS, ctx.loss.basis))
    elif (
        ctx.eln.milestone is Milestone.M3
        and ctx.eln.status is ElnStatus.WARNING
        and any(r.rule is rules.ELN2020_3M for r in ctx.eln.reasons)
    ):
        out.append(suggest(R.REPEAT_PCR, Finding.REPEAT_3M_WARNING, f.eln_basis))
    return out


def workup(ctx: Context, f: Facts, already: frozenset[Recommendation]) -> list[Suggestion]:
    """Before any change of dose or drug: adherence, a trough level, mutation analysis."""
    out: list[Suggestion] = []
    needs = f.concern or (ctx.tdm.status is TdmStatus.SUBTHERAPEUTIC and f.on_tki)
    if needs and not f.t315i and f.adherent is not True:
        out.append(
            suggest(
                R.CHECK_ADHERENCE,
                Finding.ADHERENCE_POOR if f.adherent is False else Finding.ADHERENCE_CHECK,
                f.eln_basis,
                f.loss_basis,
                ctx.tdm.basis,
                f.adherence_basis,
                basis(rules.ESCALATION_WORKUP, Finding.WORKUP_ADHERENCE_FIRST),
                date=f.adherence_date,
            )
        )
    if f.on_tki and f.imatinib and not f.resistant and not f.trough_current:
        if f.concern:
            out.append(
                suggest(
                    R.MEASURE_TROUGH_LEVEL,
                    Finding.TROUGH_BEFORE_DOSE_CHANGE,
                    f.eln_basis,
                    f.loss_basis,
                    ctx.tdm.basis,
                    basis(rules.ESCALATION_WORKUP, Finding.WORKUP_TROUGH_FIRST),
                    days_on=ctx.cfg.tdm_min_days_on_therapy,
                    days_since_change=ctx.cfg.tdm_min_days_since_dose_change,
                    target=NgMl(ctx.cfg.trough_target_ng_ml),
                )
            )
        elif ctx.interactions:
            out.append(
                suggest(
                    R.MEASURE_TROUGH_LEVEL,
                    Finding.TROUGH_FOR_INTERACTION,
                    *(i.basis for i in ctx.interactions),
                )
            )
    if f.concern and not f.t315i:
        lookback = ctx.cfg.workup_lookback_days
        analysed = [
            m
            for m in ctx.mutations
            if (ctx.as_of - m.date).days <= lookback and m.date <= ctx.as_of
        ]
        if not analysed:
            out.append(_mutation_analysis(ctx, f, lookback))
    return out


def _mutation_analysis(ctx: Context, f: Facts, lookback: int) -> Suggestion:
    """Soverini et al. 2019, Table 2: at failure or warning of the response to TKI; after a
    relapse off treatment only if MMR is not regained within 3-6 months of re-treatment."""
    if f.retreatment_due and ctx.tfr.restarted_on is not None:
        return suggest(
            R.MUTATION_ANALYSIS,
            Finding.MUTATION_ANALYSIS_AFTER_RESTART,
            *ctx.tfr.reasons[:1],
            basis(
                rules.MUTATION_ANALYSIS,
                Finding.MMR_NOT_REGAINED,
                (),
                restarted=ctx.tfr.restarted_on,
                months=Months(months_between(ctx.tfr.restarted_on, ctx.as_of)),
                expected=Months(ctx.cfg.retreatment_mmr_months),
            ),
        )
    return suggest(
        R.MUTATION_ANALYSIS,
        Finding.MUTATION_ANALYSIS_DUE,
        f.eln_basis,
        f.loss_basis,
        basis(
            rules.MUTATION_ANALYSIS,
            Finding.MUTATION_ANALYSIS_INDICATED,
            status=ctx.eln.status,
            lost=ctx.loss.lost,
        ),
        basis(rules.ESCALATION_WORKUP, Finding.WORKUP_MUTATION_FIRST),
        months=Months(lookback / DAYS_PER_MONTH),
    )


def escalate(ctx: Context, f: Facts, already: frozenset[Recommendation]) -> list[Suggestion]:
    """Imatinib, a concern, no resistant mutation, not documented non-adherent, below the highest
    step, and a steady-state trough below target or a dose-sensitive mutation."""
    dose = ctx.therapy.daily_dose_mg
    if (
        not f.concern
        or not f.imatinib
        or f.resistant
        or f.adherent is False
        or dose is None
        or dose >= MAX_IMATINIB_MG
    ):
        return []
    low_trough = f.trough_current and ctx.tdm.status is TdmStatus.SUBTHERAPEUTIC
    if not (low_trough or f.sensitive):
        return []
    nxt = next(step for step in ESCALATION_STEPS if step > dose)
    return [
        suggest(
            R.ESCALATE_DOSE,
            Finding.ESCALATE,
            f.eln_basis,
            f.loss_basis,
            ctx.tdm.basis if low_trough else None,
            *(f.mutation_bases if f.sensitive else ()),
            basis(
                rules.ESCALATION,
                Finding.ESCALATION_STEPS,
                ctx.therapy.evidence[-1:],
                steps=tuple(Dose(s) for s in ESCALATION_STEPS),
                dose=Dose(dose),
            ),
            # IRIS figures: first-line imatinib only (the trial's population)
            basis(rules.ESCALATION_OUTCOMES, Finding.IRIS_ESCALATION_OUTCOMES)
            if ctx.therapy.line == 1
            else None,
            dose=Dose(dose),
            next=Dose(nxt),
            highest=Dose(MAX_IMATINIB_MG),
            low_trough=low_trough,
            target=NgMl(ctx.cfg.trough_target_ng_ml),
            sensitive=tuple(sorted(m.mutation or "" for m in f.sensitive)),
            adherent=f.adherent,
            at_failure=ctx.eln.status is ElnStatus.FAILURE,
        )
    ]


def interactions(ctx: Context, f: Facts, already: frozenset[Recommendation]) -> list[Suggestion]:
    if not f.on_tki or not ctx.interactions:
        return []
    names = tuple(sorted({i.medication for i in ctx.interactions}))
    return [
        suggest(
            R.REVIEW_INTERACTIONS,
            Finding.REVIEW_INTERACTIONS,
            *(i.basis for i in ctx.interactions),
            medications=names,
            drug=f.drug,
        )
    ]


def reduce(ctx: Context, f: Facts, already: frozenset[Recommendation]) -> list[Suggestion]:
    """Stable MMR for the configured time with adverse events affecting quality of life."""
    therapy = ctx.therapy
    if therapy.status is not TherapyStatus.ACTIVE or ctx.loss.lost:
        return []
    if (
        therapy.last_reduction is not None
        and (ctx.as_of - therapy.last_reduction).days
        <= ctx.cfg.after_reduction_months * DAYS_PER_MONTH
    ):
        return []
    readable = [
        (r, c)
        for r, c in ctx.calls
        if c.value is not None and r.date >= (therapy.start or date.min)
    ]
    run: list[BcrAbl1Result] = []
    for result, call in reversed(readable):
        if call.value is None or call.value > MMR_LIMIT:
            break
        run.append(result)
    if len(run) < 2:
        return []
    first = run[-1]
    months = (ctx.as_of - first.date).days / DAYS_PER_MONTH
    if months < ctx.cfg.stable_mmr_months_for_reduction:
        return []
    events = [
        e
        for e in ctx.adverse_events
        if e.affects_quality_of_life
        and e.date <= ctx.as_of
        and (e.resolved is None or e.resolved > ctx.as_of)
        and (ctx.as_of - e.date).days <= 366
    ]
    if not events:
        return []
    supra = ctx.tdm.status is TdmStatus.SUPRATHERAPEUTIC
    return [
        suggest(
            R.CONSIDER_DOSE_REDUCTION,
            Finding.REDUCE,
            basis(
                rules.REDUCTION,
                Finding.REDUCTION_STABLE_MMR,
                tuple(r.ref for r in reversed(run)),
                since=first.date,
                years=Years(months / 12),
                results=len(run),
                needed=Months(ctx.cfg.stable_mmr_months_for_reduction),
            ),
            basis(
                rules.REDUCTION,
                Finding.REDUCTION_ADVERSE_EVENTS,
                tuple(e.ref for e in events),
                events=tuple((e.description, e.date) for e in events),
            ),
            ctx.tdm.basis if supra else None,
            drug=therapy.drug,
            supratherapeutic=supra,
            deep=ctx.response.depth in (ResponseDepth.MR4_5, ResponseDepth.MR5),
        )
    ]


def tfr(ctx: Context, f: Facts, already: frozenset[Recommendation]) -> list[Suggestion]:
    if ctx.tfr.status is not TfrStatus.ELIGIBLE:
        return []
    return [suggest(R.DISCUSS_TFR, Finding.DISCUSS_TFR, *ctx.tfr.reasons)]


_INTENSIVE = ("after-dose-reduction", "tfr-months-1-6", "tfr-months-7-12", "retreatment")


def monitoring(ctx: Context, f: Facts, already: frozenset[Recommendation]) -> list[Suggestion]:
    """More frequent RQ-PCR after a reduction or a stop; otherwise the next one."""
    out: list[Suggestion] = []
    phase = ctx.monitoring.phase
    if phase in _INTENSIVE:
        out.append(
            suggest(R.INTENSIFY_MONITORING, Finding.INTENSIFY, ctx.monitoring.basis, phase=phase)
        )
    return out


def keep_going(ctx: Context, f: Facts, already: frozenset[Recommendation]) -> list[Suggestion]:
    """An optimal response with nothing against it: continue; and schedule the next PCR."""
    out: list[Suggestion] = []
    therapy = ctx.therapy
    if (
        therapy.status is TherapyStatus.ACTIVE
        and ctx.eln.status is ElnStatus.OPTIMAL
        and not ctx.loss.lost
        and not f.detected
        and R.SWITCH_TKI not in already
        and R.CONSIDER_DOSE_REDUCTION not in already
    ):
        dose = Dose(therapy.daily_dose_mg) if therapy.daily_dose_mg else None
        out.append(
            suggest(
                R.CONTINUE_THERAPY,
                Finding.CONTINUE,
                *ctx.eln.reasons,
                basis(rules.CONTINUE, Finding.OPTIMAL_CONTINUE),
                drug=f.drug,
                dose=dose,
            )
        )
    if not ctx.monitoring.overdue and ctx.monitoring.next_pcr_due is not None:
        out.append(
            suggest(
                R.SCHEDULE_PCR,
                Finding.SCHEDULE_PCR,
                ctx.monitoring.basis,
                due=ctx.monitoring.next_pcr_due,
            )
        )
    return out


IN_ORDER: tuple[Policy, ...] = (
    restart,
    switch,
    pcr,
    workup,
    escalate,
    interactions,
    reduce,
    tfr,
    monitoring,
    keep_going,
)
