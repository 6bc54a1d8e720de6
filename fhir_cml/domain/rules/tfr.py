"""Treatment-free remission: eligibility on TKI (ELN 2020), and relapse after stopping.

Eligibility: any criterion the record shows unmet makes the patient not eligible; a criterion the
record cannot show (phase, transcript, why a TKI was switched) makes the answer not evaluable; the
patient's motivation and adherence are always left to the clinician to confirm. After a stop for
TFR, one result > 0.1 % (loss of MMR) is molecular relapse; STIM1's older definition is reported
next to it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from fhir_cml.domain.basis import Basis, Months, Percent, Value, Years, basis
from fhir_cml.domain.config import RuleConfig
from fhir_cml.domain.findings import Finding
from fhir_cml.domain.frozen import quick_init
from fhir_cml.domain.model import AdherenceAssessment, BcrAbl1Result, Diagnosis
from fhir_cml.domain.results import MilestoneReading, TfrReading, Therapy
from fhir_cml.domain.rules.catalogue import STIM1, TFR_ELIGIBILITY, TFR_RELAPSE
from fhir_cml.domain.rules.common import months_between
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
) -> TfrReading:
    if therapy.status is TherapyStatus.TFR and therapy.stopped_on is not None:
        return _after_stop(therapy.stopped_on, calls, as_of)
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
    return _eligibility(
        therapy, calls, eln2020_history, diagnoses, transcript, adherence, as_of, cfg
    )


def _after_stop(
    stopped: date, calls: Sequence[tuple[BcrAbl1Result, DepthCall]], as_of: date
) -> TfrReading:
    since = months_between(stopped, as_of)
    after = [(r, c) for r, c in calls if r.date > stopped]
    lost = [(r, c) for r, c in after if c.value is not None and c.value > MMR_LIMIT]
    stim1 = _stim1(after)
    reasons: list[Basis] = []
    if lost:
        first, call = lost[0]
        reasons.append(
            basis(
                TFR_RELAPSE,
                Finding.TFR_RELAPSE,
                (first.ref,),
                stopped=stopped,
                value=Percent(call.value or 0),
                date=first.date,
                limit=Percent(MMR_LIMIT),
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
    return TfrReading(status, tuple(reasons), None, stopped, round(since, 1), stim1 is not None)


def _stim1(after: Sequence[tuple[BcrAbl1Result, DepthCall]]) -> Basis | None:
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
    unmet: list[Basis] = []
    unknown: list[Basis] = []
    met: list[Basis] = []

    def check(
        ok: bool | None, finding: Finding, refs: tuple[str, ...] = (), **values: Value
    ) -> None:
        found = basis(TFR_ELIGIBILITY, finding, refs, **values)
        (met if ok else unknown if ok is None else unmet).append(found)

    # Mandatory: chronic phase
    phases = [d for d in diagnoses if d.phase is not None]
    refs = tuple(d.ref for d in phases)
    if any(d.phase in (Phase.ACCELERATED, Phase.BLAST) for d in phases):
        check(False, Finding.TFR_ADVANCED_PHASE, refs)
    elif phases:
        check(True, Finding.TFR_CHRONIC_PHASE, refs)
    else:
        check(None, Finding.TFR_PHASE_UNKNOWN)

    # Minimal: first line, or second line for intolerance only
    if therapy.line <= 1:
        check(True, Finding.TFR_FIRST_LINE, therapy.evidence, drug=therapy.drug)
    elif therapy.switched_for_resistance:
        check(False, Finding.TFR_SWITCHED_FOR_RESISTANCE, therapy.evidence)
    elif therapy.switch_reasons_known:
        check(True, Finding.TFR_INTOLERANCE_ONLY, therapy.evidence, line=therapy.line)
    else:
        check(None, Finding.TFR_SWITCH_REASON_UNKNOWN, therapy.evidence)

    # Minimal: typical transcript
    transcript, transcript_ref = transcript_info
    t_refs = (transcript_ref,) if transcript_ref else ()
    if transcript is None:
        check(None, Finding.TFR_TRANSCRIPT_UNKNOWN)
    elif transcript.typical:
        check(True, Finding.TFR_TRANSCRIPT_TYPICAL, t_refs, transcript=transcript)
    else:
        check(False, Finding.TFR_TRANSCRIPT_ATYPICAL, t_refs, transcript=transcript)

    # Minimal/optimal: TKI duration
    assert therapy.start is not None
    months_on = months_between(therapy.start, as_of)
    drug = therapy.drug
    if drug is None or drug.generation == 3:
        check(None, Finding.TFR_DURATION_UNDEFINED, drug=drug)
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

    # Minimal: DMR > 2 years
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

    # Minimal: no prior failure
    failures = [h for h in eln2020_history if h.status is ElnStatus.FAILURE]
    if failures:
        f0 = failures[0]
        check(False, Finding.TFR_PRIOR_FAILURE, f0.basis.evidence, date=f0.date, reading=f0.basis)
    else:
        check(True, Finding.TFR_NO_PRIOR_FAILURE)

    # Mandatory: adherence (documented non-adherence excludes; otherwise confirm)
    recent = [a for a in adherence if (as_of - a.date).days <= cfg.workup_lookback_days]
    if recent and not recent[-1].adherent:
        check(False, Finding.TFR_POOR_ADHERENCE, (recent[-1].ref,), date=recent[-1].date)

    optimal = months_on > 60 and dmr_ok_optimal
    confirm = basis(TFR_ELIGIBILITY, Finding.TFR_CONFIRM)
    if unmet:
        return TfrReading(TfrStatus.NOT_ELIGIBLE, (*unmet, *unknown), False)
    if unknown:
        return TfrReading(TfrStatus.NOT_EVALUABLE, (*unknown, *met), None)
    level = basis(TFR_ELIGIBILITY, Finding.TFR_OPTIMAL_MET if optimal else Finding.TFR_MINIMAL_MET)
    return TfrReading(TfrStatus.ELIGIBLE, (*met, level, confirm), optimal)
