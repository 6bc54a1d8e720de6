"""Treatment-free remission: eligibility on TKI (ELN 2020), relapse after stopping, restart.

Eligibility: any criterion the record shows unmet makes the patient not eligible; facts a clinician
knows and rarely records (chronic-phase history, why a TKI was switched, motivation, access to a
high-quality laboratory) are listed to confirm, and with everything recorded met the patient is
eligible; only a criterion the guideline leaves undefined makes the answer not evaluable. Patients
under 18 are not eligible: TFR attempts only within clinical studies.

After a stop for TFR, one result > 0.1 % (loss of MMR) is molecular relapse: restart the same TKI
within 4 weeks (ELN 2020). The relapse off treatment is not an on-treatment failure and does not
count as "prior treatment failure" later. STIM1's older definition (imatinib) is shown beside it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta

from fhir_cml.domain.basis import Basis, Months, Percent, Value, Years, basis
from fhir_cml.domain.config import RuleConfig
from fhir_cml.domain.findings import Finding
from fhir_cml.domain.frozen import quick_init
from fhir_cml.domain.model import AdherenceAssessment, BcrAbl1Result, Diagnosis
from fhir_cml.domain.results import MilestoneReading, TfrReading, Therapy
from fhir_cml.domain.rules.catalogue import PAEDIATRIC, STIM1, TFR_ELIGIBILITY, TFR_RELAPSE
from fhir_cml.domain.rules.common import age_on, months_between
from fhir_cml.domain.rules.milestones import ON_TREATMENT
from fhir_cml.domain.rules.response_depth import DEEP, MMR_LIMIT, ORDER, DepthCall
from fhir_cml.domain.vocabulary import (
    ElnStatus,
    Phase,
    ResponseDepth,
    TfrStatus,
    TherapyStatus,
    Tki,
    Transcript,
)


@quick_init
@dataclass(frozen=True, slots=True)
class Run:
    """An uninterrupted run of readable results meeting a condition, up to the latest one."""

    first: BcrAbl1Result
    last: BcrAbl1Result
    shallowest: ResponseDepth
    refs: tuple[str, ...]

    @property
    def months(self) -> float:
        return months_between(self.first.date, self.last.date)


def latest_run(
    calls: Sequence[tuple[BcrAbl1Result, DepthCall]], depths: frozenset[ResponseDepth]
) -> Run | None:
    """The run of results at one of ``depths`` ending at the latest readable result."""
    run: list[tuple[BcrAbl1Result, DepthCall]] = []
    for result, call in reversed(calls):
        if not call.evaluable:
            continue  # unreadable results neither extend nor break a run
        if call.depth not in depths:
            break
        run.append((result, call))
    if not run:
        return None
    run.reverse()
    shallowest = min((c.depth for _, c in run), key=lambda d: ORDER[d])
    return Run(run[0][0], run[-1][0], shallowest, tuple(r.ref for r, _ in run))


def read_tfr(
    therapy: Therapy,
    calls: Sequence[tuple[BcrAbl1Result, DepthCall]],
    eln2020_history: Sequence[MilestoneReading],
    diagnoses: Sequence[Diagnosis],
    transcript: tuple[Transcript | None, str | None],
    adherence: Sequence[AdherenceAssessment],
    as_of: date,
    cfg: RuleConfig,
    birth_date: date | None = None,
) -> TfrReading:
    if therapy.status is TherapyStatus.TFR and therapy.stopped_on is not None:
        return _after_stop(therapy, therapy.stopped_on, calls, as_of, cfg)
    if therapy.status is TherapyStatus.NONE or therapy.start is None:
        return TfrReading(TfrStatus.NOT_EVALUABLE, (basis(TFR_ELIGIBILITY, Finding.TFR_NO_COURSE),))
    if therapy.status is TherapyStatus.STOPPED:
        return TfrReading(
            TfrStatus.NOT_EVALUABLE,
            (
                basis(
                    TFR_ELIGIBILITY,
                    Finding.TFR_STOPPED_OTHER,
                    therapy.evidence,
                    stopped=therapy.stopped_on,
                ),
            ),
        )
    age = age_on(birth_date, as_of)
    if age is not None and age < cfg.adult_age_years:
        # Children: TFR attempts only within clinical studies (paediatric recommendations; ELN
        # 2020 is adult guidance). No "discuss TFR".
        return TfrReading(
            TfrStatus.NOT_ELIGIBLE,
            (
                basis(
                    PAEDIATRIC,
                    Finding.TFR_PAEDIATRIC,
                    (),
                    age=age,
                    adult=cfg.adult_age_years,
                ),
            ),
            False,
        )
    reading = _eligibility(
        therapy, calls, eln2020_history, diagnoses, transcript, adherence, as_of, cfg
    )
    if therapy.restarted is None:
        return reading
    return _with_restart(therapy, therapy.restarted, calls, reading, as_of)


def _relapse(
    stopped: date, until: date | None, calls: Sequence[tuple[BcrAbl1Result, DepthCall]]
) -> tuple[BcrAbl1Result, float] | None:
    """The first loss of MMR off treatment: one result > 0.1 % after the stop (ELN 2020)."""
    for result, call in calls:
        if result.date <= stopped or (until is not None and result.date >= until):
            continue
        if call.value is not None and call.value > MMR_LIMIT:
            return result, call.value
    return None


def _with_restart(
    therapy: Therapy,
    restarted: date,
    calls: Sequence[tuple[BcrAbl1Result, DepthCall]],
    reading: TfrReading,
    as_of: date,
) -> TfrReading:
    """On TKI again after a TFR stop: when it restarted, the relapse, and whether MMR is back."""
    gap = therapy.tfr_stops[-1]
    relapse = _relapse(gap.start, gap.end, calls)
    regained = next(
        (
            r
            for r, c in calls
            if r.date >= restarted and c.value is not None and c.value <= MMR_LIMIT
        ),
        None,
    )
    refs = tuple(x.ref for x in (relapse[0] if relapse else None, regained) if x is not None)
    found = basis(
        TFR_RELAPSE,
        Finding.TFR_RESTARTED,
        refs,
        stopped=gap.start,
        relapse=relapse[0].date if relapse else None,
        restarted=restarted,
        regained=regained.date if regained else None,
        months=Months(months_between(restarted, as_of)),
    )
    return replace(
        reading,
        reasons=(found, *reading.reasons),
        relapse_on=relapse[0].date if relapse else None,
        restarted_on=restarted,
        mmr_regained_on=regained.date if regained else None,
    )


def _after_stop(
    therapy: Therapy,
    stopped: date,
    calls: Sequence[tuple[BcrAbl1Result, DepthCall]],
    as_of: date,
    cfg: RuleConfig,
) -> TfrReading:
    since = months_between(stopped, as_of)
    after = [(r, c) for r, c in calls if r.date > stopped]
    relapse = _relapse(stopped, None, calls)
    stim1 = _stim1(after, therapy.drug)
    reasons: list[Basis] = []
    relapse_on: date | None = None
    if relapse is not None:
        first, value = relapse
        relapse_on = first.date
        # ELN 2020: "restart TKI within 4 weeks of loss of MMR" - the same TKI.
        reasons.append(
            basis(
                TFR_RELAPSE,
                Finding.TFR_RELAPSE,
                (first.ref,),
                stopped=stopped,
                value=Percent(value),
                date=first.date,
                limit=Percent(MMR_LIMIT),
                drug=therapy.drug,
                restart_by=first.date + timedelta(days=cfg.restart_within_days),
            )
        )
        status = TfrStatus.MOLECULAR_RELAPSE
    else:
        last = after[-1] if after else None
        reasons.append(
            basis(
                TFR_RELAPSE,
                Finding.TFR_IN_REMISSION,
                tuple(r.ref for r, _ in after[-1:]),
                stopped=stopped,
                months=Months(since),
                latest_depth=last[1].depth if last else None,
                latest=last[0].date if last else None,
            )
        )
        status = TfrStatus.IN_TFR
    if stim1 is not None:
        reasons.append(stim1)
    return TfrReading(
        status,
        tuple(reasons),
        None,
        stopped,
        round(since, 1),
        stim1 is not None,
        relapse_on=relapse_on,
    )


def _stim1(after: Sequence[tuple[BcrAbl1Result, DepthCall]], drug: Tki | None) -> Basis | None:
    """STIM1's relapse definition, for comparison: imatinib only (STIM1 stopped imatinib)."""
    if drug is not Tki.IMATINIB:
        return None
    positives = [(r, c) for r, c in after if r.detectable and c.value is not None]
    for (r1, c1), (r2, c2) in itertools.pairwise(positives):
        days = (r2.date - r1.date).days
        assert c1.value is not None
        assert c2.value is not None
        if 21 <= days <= 45 and c1.value > 0 and c2.value >= 10 * c1.value:
            return basis(
                STIM1,
                Finding.STIM1_RELAPSE,
                (r1.ref, r2.ref),
                days=days,
                first=Percent(c1.value),
                first_date=r1.date,
                second=Percent(c2.value),
                second_date=r2.date,
            )
    return None


def _eligibility(
    therapy: Therapy,
    calls: Sequence[tuple[BcrAbl1Result, DepthCall]],
    eln2020_history: Sequence[MilestoneReading],
    diagnoses: Sequence[Diagnosis],
    transcript_info: tuple[Transcript | None, str | None],
    adherence: Sequence[AdherenceAssessment],
    as_of: date,
    cfg: RuleConfig,
) -> TfrReading:
    """ELN 2020 requirements for TKI discontinuation, each met, unmet, to confirm or undefined.

    Facts a clinician knows and the record rarely holds (the phase history, the reason for a
    switch, motivation, access to a high-quality laboratory) are "to confirm": with every
    recorded criterion met the patient is eligible, with those items named. A criterion the
    guideline does not define for the drug (a third-generation TKI's duration) makes the answer
    not evaluable.
    """
    unmet: list[Basis] = []
    confirm: list[Basis] = []
    undefined: list[Basis] = []
    met: list[Basis] = []

    def check(ok: bool, finding: Finding, refs: tuple[str, ...] = (), **values: Value) -> None:
        (met if ok else unmet).append(basis(TFR_ELIGIBILITY, finding, refs, **values))

    def ask(finding: Finding, refs: tuple[str, ...] = (), **values: Value) -> None:
        confirm.append(basis(TFR_ELIGIBILITY, finding, refs, **values))

    # Mandatory: "CML in first chronic phase only"
    phases = [d for d in diagnoses if d.phase is not None]
    refs = tuple(d.ref for d in phases)
    if any(d.phase in (Phase.ACCELERATED, Phase.BLAST) for d in phases):
        check(False, Finding.TFR_ADVANCED_PHASE, refs)
    elif phases:
        check(True, Finding.TFR_CHRONIC_PHASE, refs)
    else:
        ask(Finding.TFR_PHASE_UNKNOWN)

    # Minimal: "first-line TKI or second-line if intolerance was the only reason for changing TKI"
    if therapy.line <= 1:
        check(True, Finding.TFR_FIRST_LINE, therapy.evidence, drug=therapy.drug)
    elif therapy.switched_for_resistance:
        check(False, Finding.TFR_SWITCHED_FOR_RESISTANCE, therapy.evidence)
    elif therapy.switch_reasons_known:
        check(True, Finding.TFR_INTOLERANCE_ONLY, therapy.evidence, line=therapy.line)
    else:
        ask(Finding.TFR_SWITCH_REASON_UNKNOWN, therapy.evidence)

    # Minimal: "typical e13a2 or e14a2 BCR::ABL1 transcripts". Only these can be quantified on
    # the International Scale (Cross et al. 2015), so a result on the IS (LOINC 69380-4, or
    # converted with a laboratory's factor) comes from a p210 assay.
    assert therapy.start is not None
    transcript, transcript_ref = transcript_info
    t_refs = (transcript_ref,) if transcript_ref else ()
    on_is = [r for r, _ in calls if r.on_is and r.date >= therapy.start]
    if transcript is not None and not transcript.typical:
        check(False, Finding.TFR_TRANSCRIPT_ATYPICAL, t_refs, transcript=transcript)
    elif transcript is not None:
        check(True, Finding.TFR_TRANSCRIPT_TYPICAL, t_refs, transcript=transcript)
    elif on_is:
        check(True, Finding.TFR_TRANSCRIPT_FROM_IS, (on_is[-1].ref,), date=on_is[-1].date)
    else:
        ask(Finding.TFR_TRANSCRIPT_UNKNOWN)

    # Minimal: "duration of TKI therapy > 5 years (> 4 years for 2GTKI)"; optimal > 5 years
    months_on = months_between(therapy.start, as_of)
    drug = therapy.drug
    if drug is None or drug.generation == 3:
        undefined.append(basis(TFR_ELIGIBILITY, Finding.TFR_DURATION_UNDEFINED, (), drug=drug))
    else:
        need = 60.0 if drug is Tki.IMATINIB else 48.0
        check(
            months_on > need,
            Finding.TFR_DURATION,
            therapy.evidence,
            years=Years(months_on / 12),
            since=therapy.start,
            needed=Years(need / 12),
            drug=drug,
        )

    # Minimal: "duration of DMR (MR4 or better) > 2 years"; optimal > 3 years (MR4), > 2 (MR4.5)
    on_therapy_calls = [(r, c) for r, c in calls if r.date >= therapy.start]
    run = latest_run(on_therapy_calls, DEEP)
    if run is None:
        check(False, Finding.TFR_NO_DMR, needed=Years(2))
        dmr_ok_optimal = False
    else:
        check(
            run.months > 24,
            Finding.TFR_DMR,
            run.refs,
            shallowest=run.shallowest,
            first=run.first.date,
            last=run.last.date,
            years=Years(run.months / 12),
            needed=Years(2),
        )
        need_optimal = 36 if run.shallowest is ResponseDepth.MR4 else 24
        dmr_ok_optimal = run.months > need_optimal

    # Minimal: "no prior treatment failure" - on treatment: a relapse off treatment after a TFR
    # stop (and the re-treatment after it) is not a treatment failure.
    failures = [
        h for h in eln2020_history if h.status is ElnStatus.FAILURE and h.role in ON_TREATMENT
    ]
    if failures:
        f0 = failures[0]
        check(False, Finding.TFR_PRIOR_FAILURE, f0.basis.evidence, date=f0.date, reading=f0.basis)
    else:
        check(True, Finding.TFR_NO_PRIOR_FAILURE)

    # Mandatory: a motivated patient (documented non-adherence excludes; otherwise confirm)
    recent = [a for a in adherence if (as_of - a.date).days <= cfg.workup_lookback_days]
    if recent and not recent[-1].adherent:
        check(False, Finding.TFR_POOR_ADHERENCE, (recent[-1].ref,), date=recent[-1].date)

    optimal = months_on > 60 and dmr_ok_optimal
    if unmet:
        return TfrReading(TfrStatus.NOT_ELIGIBLE, (*unmet, *undefined, *confirm), False)
    if undefined:
        return TfrReading(TfrStatus.NOT_EVALUABLE, (*undefined, *confirm, *met), None)
    # Mandatory, rarely recorded: motivation, a high-quality laboratory, more frequent monitoring
    ask(Finding.TFR_CONFIRM)
    level = basis(TFR_ELIGIBILITY, Finding.TFR_OPTIMAL_MET if optimal else Finding.TFR_MINIMAL_MET)
    return TfrReading(
        TfrStatus.ELIGIBLE, (*confirm, *met, level), optimal, to_confirm=tuple(confirm)
    )
