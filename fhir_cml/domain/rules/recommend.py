"""From the readings to suggestions a clinician can accept or dismiss.

The work-up comes before any change of dose (seed 002, seed 003): adherence, trough level, mutation
analysis. Escalation is only suggested when its conditions are shown by the record (imatinib, a
suboptimal reading, a steady-state trough < 1000 ng/mL at the current dose or a dose-sensitive
mutation, no resistant mutation, below 800 mg/day); T315I never escalates. Each suggestion carries
the bases it rests on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from fhir_cml.domain.config import RuleConfig
from fhir_cml.domain.frozen import quick_init
from fhir_cml.domain.model import AdherenceAssessment, AdverseEvent, BcrAbl1Result, MutationResult
from fhir_cml.domain.results import (
    Basis,
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
from fhir_cml.domain.rules.milestones import DOSE_SENSITIVE_MUTATIONS
from fhir_cml.domain.rules.response_depth import MMR_LIMIT, DepthCall
from fhir_cml.domain.vocabulary import (
    ElnStatus,
    IssueCode,
    Milestone,
    Recommendation,
    ResponseDepth,
    TdmStatus,
    TfrStatus,
    TherapyStatus,
    Tki,
)

ESCALATION_STEPS = (400.0, 600.0, 800.0)
_COPIES = (IssueCode.LOW_CONTROL_COPIES, IssueCode.MISSING_CONTROL_COPIES)
MAX_IMATINIB_MG = 800.0

# Order in which suggestions are listed: the most urgent first.
_ORDER = [
    Recommendation.RESTART_TKI,
    Recommendation.SWITCH_TKI,
    Recommendation.PCR_OVERDUE,
    Recommendation.REPEAT_PCR,
    Recommendation.CHECK_ADHERENCE,
    Recommendation.MEASURE_TROUGH_LEVEL,
    Recommendation.MUTATION_ANALYSIS,
    Recommendation.ESCALATE_DOSE,
    Recommendation.REVIEW_INTERACTIONS,
    Recommendation.CONSIDER_DOSE_REDUCTION,
    Recommendation.DISCUSS_TFR,
    Recommendation.INTENSIFY_MONITORING,
    Recommendation.CONTINUE_THERAPY,
    Recommendation.SCHEDULE_PCR,
]


@quick_init
@dataclass(frozen=True, slots=True)
class Context:
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


def recommend(ctx: Context) -> tuple[Suggestion, ...]:
    out: dict[Recommendation, Suggestion] = {}

    def add(code: Recommendation, text: str, *basis: Basis | None) -> None:
        if code not in out:
            out[code] = Suggestion(code, text, tuple(b for b in basis if b is not None))

    therapy = ctx.therapy
    on_tki = therapy.status in (TherapyStatus.ACTIVE, TherapyStatus.INTERRUPTED)
    drug = therapy.drug.value if therapy.drug else "the TKI"
    concern = on_tki and (
        ctx.eln.status in (ElnStatus.WARNING, ElnStatus.SUBOPTIMAL, ElnStatus.FAILURE)
        or ctx.loss.lost
    )
    eln_basis = ctx.eln.reasons[0] if ctx.eln.reasons else None
    loss_basis = ctx.loss.basis if ctx.loss.lost else None
    since = therapy.current_start or therapy.start or date.min
    detected = [m for m in ctx.mutations if m.detected and m.date >= since and m.date <= ctx.as_of]
    labels = {m.mutation or m.hgvs or "unnamed mutation" for m in detected}
    t315i = [m for m in detected if m.mutation == "T315I"]
    resistant = [m for m in detected if m.mutation not in DOSE_SENSITIVE_MUTATIONS]
    sensitive = [m for m in detected if m.mutation in DOSE_SENSITIVE_MUTATIONS]
    mut_basis = tuple(
        Basis(
            rules.T315I if m.mutation == "T315I" else rules.SWITCH,
            f"{m.mutation or m.hgvs} detected on {m.date.isoformat()}.",
            (m.ref,),
        )
        for m in detected
    )
    recent_adherence = [
        a for a in ctx.adherence if (ctx.as_of - a.date).days <= ctx.cfg.workup_lookback_days
    ]
    adherent = recent_adherence[-1].adherent if recent_adherence else None
    adherence_basis = (
        Basis(
            rules.ESCALATION_WORKUP,
            f"Adherence assessed on {recent_adherence[-1].date.isoformat()}: {'adherent' if adherent else 'not adherent'}.",
            (recent_adherence[-1].ref,),
        )
        if recent_adherence
        else None
    )
    trough_current = ctx.tdm.at_current_dose and ctx.tdm.status in (
        TdmStatus.ADEQUATE,
        TdmStatus.SUBTHERAPEUTIC,
        TdmStatus.SUPRATHERAPEUTIC,
    )
    imatinib = therapy.drug is Tki.IMATINIB

    # After stopping for TFR
    if ctx.tfr.status is TfrStatus.MOLECULAR_RELAPSE:
        add(
            Recommendation.RESTART_TKI,
            "Molecular relapse after stopping TKI (loss of MMR): restart the TKI within 4 weeks; most "
            "patients regain MMR on treatment.",
            *ctx.tfr.reasons,
        )

    # Switching
    if on_tki and t315i:
        add(
            Recommendation.SWITCH_TKI,
            "T315I detected: it confers absolute resistance to imatinib - do not escalate; switch to a "
            "TKI active against T315I, guided by the mutation profile.",
            *mut_basis,
        )
    elif on_tki and resistant:
        add(
            Recommendation.SWITCH_TKI,
            f"Kinase-domain mutation ({', '.join(sorted(labels))}) detected on {drug}: switch TKI "
            "guided by the mutation profile.",
            *mut_basis,
        )
    elif on_tki and ctx.eln.status is ElnStatus.FAILURE:
        add(
            Recommendation.SWITCH_TKI,
            f"Treatment failure on {drug}: switching to another TKI is favoured (dasatinib, nilotinib, "
            "bosutinib; ponatinib or asciminib where indicated), guided by mutation analysis and "
            "comorbidities.",
            *ctx.eln.reasons,
            Basis(rules.SWITCH, "Failure favours switching TKI rather than escalating.", ()),
        )
    elif (
        concern
        and imatinib
        and therapy.daily_dose_mg is not None
        and therapy.daily_dose_mg >= MAX_IMATINIB_MG
    ):
        add(
            Recommendation.SWITCH_TKI,
            f"Suboptimal response already at {therapy.daily_dose_mg:g} mg/day imatinib (the highest "
            "escalation step): consider switching to a second-generation TKI.",
            eln_basis,
            loss_basis,
            Basis(
                rules.SWITCH, "No escalation step is left above 800 mg/day.", therapy.evidence[-1:]
            ),
        )

    # The PCR itself
    if ctx.monitoring.overdue and ctx.monitoring.next_pcr_due is not None:
        add(
            Recommendation.PCR_OVERDUE,
            f"BCR::ABL1 RQ-PCR was due by {ctx.monitoring.next_pcr_due.isoformat()} and is overdue.",
            ctx.monitoring.basis,
        )
    latest = ctx.calls[-1] if ctx.calls else None
    if latest is not None and not latest[1].evaluable:
        add(
            Recommendation.REPEAT_PCR,
            "The latest BCR::ABL1 result cannot be read "
            + (
                "(too few control-gene copies): repeat with an adequate sample."
                if latest[1].problem in _COPIES
                else "(not on the International Scale or sensitivity unknown): repeat at a laboratory reporting on the IS with control-gene copies."
            ),
            ctx.response.basis,
        )
    elif ctx.loss.lost and not ctx.loss.confirmed and therapy.status is not TherapyStatus.TFR:
        add(
            Recommendation.REPEAT_PCR,
            "Loss of MMR not yet confirmed: repeat RQ-PCR to confirm (ELN 2013 counts a confirmed loss "
            "- two consecutive results, one >= 1 % - as failure).",
            ctx.loss.basis,
        )
    elif (
        ctx.eln.milestone is Milestone.M3
        and ctx.eln.status is ElnStatus.WARNING
        and any(r.rule is rules.ELN2020_3M for r in ctx.eln.reasons)
    ):
        add(
            Recommendation.REPEAT_PCR,
            "BCR::ABL1 > 10 % at 3 months: repeat within 1-3 months; failure if confirmed (ELN 2020).",
            eln_basis,
        )

    # Work-up before any change of dose
    needs_workup = concern or (ctx.tdm.status is TdmStatus.SUBTHERAPEUTIC and on_tki)
    if needs_workup and not t315i and adherent is not True:
        text = (
            f"Adherence documented as poor on {recent_adherence[-1].date.isoformat()}: address it before "
            "any change of dose or drug - non-adherence is the leading cause of suboptimal response."
            if adherent is False
            else "Check adherence: it is the leading cause of suboptimal response, and comes before any "
            "change of dose."
        )
        add(
            Recommendation.CHECK_ADHERENCE,
            text,
            eln_basis,
            loss_basis,
            ctx.tdm.basis,
            adherence_basis,
            Basis(rules.ESCALATION_WORKUP, "Adherence is checked first.", ()),
        )
    if on_tki and imatinib and not resistant and not trough_current:
        if concern:
            add(
                Recommendation.MEASURE_TROUGH_LEVEL,
                "Measure an imatinib trough level at steady state (>= 29 days on therapy, >= 8 days "
                "after a dose change, immediately before the next dose): < 1000 ng/mL supports "
                "escalation.",
                eln_basis,
                loss_basis,
                ctx.tdm.basis,
                Basis(
                    rules.ESCALATION_WORKUP, "A trough level comes before any change of dose.", ()
                ),
            )
        elif ctx.interactions:
            add(
                Recommendation.MEASURE_TROUGH_LEVEL,
                "A strong CYP3A4 interaction is present: a trough level shows its effect on imatinib "
                "exposure.",
                *(i.basis for i in ctx.interactions),
            )
    if concern and not t315i:
        analysed = [
            m
            for m in ctx.mutations
            if (ctx.as_of - m.date).days <= ctx.cfg.workup_lookback_days and m.date <= ctx.as_of
        ]
        if not analysed:
            add(
                Recommendation.MUTATION_ANALYSIS,
                f"Test for BCR::ABL1 kinase-domain mutations (none in the last "
                f"{ctx.cfg.workup_lookback_days // 30} months): the result decides between escalation "
                "and a switch of TKI.",
                eln_basis,
                loss_basis,
                Basis(rules.ESCALATION_WORKUP, "Mutation analysis precedes escalation.", ()),
            )

    # Escalation
    dose = therapy.daily_dose_mg
    if (
        concern
        and imatinib
        and not resistant
        and adherent is not False
        and dose is not None
        and dose < MAX_IMATINIB_MG
    ):
        low_trough = trough_current and ctx.tdm.status is TdmStatus.SUBTHERAPEUTIC
        if low_trough or sensitive:
            nxt = next(step for step in ESCALATION_STEPS if step > dose)
            reason = (["a steady-state trough below 1000 ng/mL"] if low_trough else []) + (
                [
                    f"a dose-sensitive mutation ({', '.join(sorted(m.mutation or '' for m in sensitive))})"
                ]
                if sensitive
                else []
            )
            failure_note = (
                " At failure, switching TKI is generally preferred; escalation is the option where "
                "another TKI is not available or not tolerated."
                if ctx.eln.status is ElnStatus.FAILURE
                else ""
            )
            then = (
                " (then 800 mg/day as 400 mg twice daily if needed and tolerated)"
                if nxt < MAX_IMATINIB_MG
                else " (400 mg twice daily)"
            )
            add(
                Recommendation.ESCALATE_DOSE,
                f"Consider escalating imatinib from {dose:g} to {nxt:g} mg/day{then}: suboptimal response "
                f"with {' and '.join(reason)}{', adherence confirmed' if adherent else ' - confirm adherence first'}."
                f"{failure_note}",
                eln_basis,
                loss_basis,
                ctx.tdm.basis if low_trough else None,
                *(mut_basis if sensitive else ()),
                Basis(
                    rules.ESCALATION,
                    f"Escalation steps 400 -> 600 -> 800 mg/day; current {dose:g} mg/day.",
                    therapy.evidence[-1:],
                ),
                Basis(
                    rules.ESCALATION_OUTCOMES,
                    "IRIS: after escalation 42 % reached a cytogenetic response; at 3 years 89 % free from progression, 84 % alive.",
                    (),
                ),
            )

    # Interactions
    if on_tki and ctx.interactions:
        names = ", ".join(sorted({i.medication for i in ctx.interactions}))
        add(
            Recommendation.REVIEW_INTERACTIONS,
            f"Review {names} with {drug}: strong CYP3A4 inhibitors raise and inducers lower TKI "
            "exposure; prefer an alternative or monitor closely.",
            *(i.basis for i in ctx.interactions),
        )

    # Dose reduction
    reduction = _reduction(ctx)
    if reduction is not None:
        add(Recommendation.CONSIDER_DOSE_REDUCTION, reduction[0], *reduction[1])

    # TFR
    if ctx.tfr.status is TfrStatus.ELIGIBLE:
        add(
            Recommendation.DISCUSS_TFR,
            "Meets the ELN 2020 criteria for a treatment-free remission attempt: discuss stopping the "
            "TKI, with monthly RQ-PCR for months 1-6, every 2 months for months 7-12, every 3 months after.",
            *ctx.tfr.reasons,
        )

    # Monitoring
    if ctx.monitoring.phase in ("after-dose-reduction", "tfr-months-1-6", "tfr-months-7-12"):
        add(
            Recommendation.INTENSIFY_MONITORING,
            {
                "after-dose-reduction": "After the dose reduction: RQ-PCR every 4-6 weeks for 6-12 months.",
                "tfr-months-1-6": "Off TKI, months 1-6: RQ-PCR monthly.",
                "tfr-months-7-12": "Off TKI, months 7-12: RQ-PCR every 2 months.",
            }[ctx.monitoring.phase],
            ctx.monitoring.basis,
        )
    if (
        therapy.status is TherapyStatus.ACTIVE
        and ctx.eln.status is ElnStatus.OPTIMAL
        and not ctx.loss.lost
        and not detected
        and Recommendation.SWITCH_TKI not in out
        and Recommendation.CONSIDER_DOSE_REDUCTION not in out
    ):
        dose_text = f" {therapy.daily_dose_mg:g} mg/day" if therapy.daily_dose_mg else ""
        add(
            Recommendation.CONTINUE_THERAPY,
            f"Optimal response: continue {drug}{dose_text}.",
            *ctx.eln.reasons,
            Basis(
                rules.CONTINUE, "An optimal response means continuing the current treatment.", ()
            ),
        )
    if not ctx.monitoring.overdue and ctx.monitoring.next_pcr_due is not None:
        add(
            Recommendation.SCHEDULE_PCR,
            f"Next BCR::ABL1 RQ-PCR due by {ctx.monitoring.next_pcr_due.isoformat()}.",
            ctx.monitoring.basis,
        )
    return tuple(sorted(out.values(), key=lambda s: _ORDER.index(s.code)))


def _reduction(ctx: Context) -> tuple[str, list[Basis]] | None:
    therapy = ctx.therapy
    if therapy.status is not TherapyStatus.ACTIVE or ctx.loss.lost:
        return None
    if (
        therapy.last_reduction is not None
        and (ctx.as_of - therapy.last_reduction).days <= ctx.cfg.after_reduction_months * 30.4375
    ):
        return None
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
        return None
    first = run[-1]
    months = (ctx.as_of - first.date).days / 30.4375
    if months < ctx.cfg.stable_mmr_months_for_reduction:
        return None
    events = [
        e
        for e in ctx.adverse_events
        if e.affects_quality_of_life
        and e.date <= ctx.as_of
        and (e.resolved is None or e.resolved > ctx.as_of)
        and (ctx.as_of - e.date).days <= 366
    ]
    supra = ctx.tdm.status is TdmStatus.SUPRATHERAPEUTIC
    if not events:
        return None
    described = "; ".join(f"{e.description} ({e.date.isoformat()})" for e in events)
    basis = [
        Basis(
            rules.REDUCTION,
            f"MMR (<= 0.1 %) in every result since {first.date.isoformat()} ({months / 12:.1f} years, "
            f"{len(run)} results; at least {ctx.cfg.stable_mmr_months_for_reduction:g} months required, "
            "sources say 1-2 years).",
            tuple(r.ref for r in reversed(run)),
        ),
        Basis(
            rules.REDUCTION,
            f"Adverse events affecting quality of life: {described}.",
            tuple(e.ref for e in events),
        ),
    ]
    if supra and ctx.tdm.basis is not None:
        basis.append(ctx.tdm.basis)
    deep = ctx.response.depth in (ResponseDepth.MR4_5, ResponseDepth.MR5)
    text = (
        f"Stable MMR with adverse events affecting quality of life: consider a dose reduction of "
        f"{therapy.drug.value if therapy.drug else 'the TKI'}"
        + (" (trough supratherapeutic)" if supra else "")
        + ", then RQ-PCR every 4-6 weeks for 6-12 months. "
        + (
            "MR4.5 at reduction is associated with maintaining the response."
            if deep
            else "Not reaching MR4.5 (ddPCR) at the reduction is associated with a higher risk of losing MMR/MR4; most who lose MMR regain it on the standard dose."
        )
    )
    return text, basis
