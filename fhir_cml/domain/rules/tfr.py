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

from fhir_cml.domain.config import RuleConfig
from fhir_cml.domain.frozen import quick_init
from fhir_cml.domain.model import AdherenceAssessment, BcrAbl1Result, Diagnosis
from fhir_cml.domain.results import Basis, MilestoneReading, TfrReading, Therapy
from fhir_cml.domain.rules.catalogue import STIM1, TFR_ELIGIBILITY, TFR_RELAPSE
from fhir_cml.domain.rules.common import months_between, pct
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
        return TfrReading(
            TfrStatus.NOT_EVALUABLE,
            (Basis(TFR_ELIGIBILITY, "No TKI course with a start date is recorded."),),
        )
    if therapy.status is TherapyStatus.STOPPED:
        return TfrReading(
            TfrStatus.NOT_EVALUABLE,
            (
                Basis(
                    TFR_ELIGIBILITY,
                    f"The TKI was stopped on {therapy.stopped_on.isoformat() if therapy.stopped_on else 'an unknown date'} "
                    "for a reason other than TFR; TFR criteria apply to patients on TKI.",
                    therapy.evidence,
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
            Basis(
                TFR_RELAPSE,
                f"TKI stopped for TFR on {stopped.isoformat()}; BCR::ABL1 {pct(call.value or 0)} (IS) on "
                f"{first.date.isoformat()} is a loss of MMR: molecular relapse. Restart TKI within 4 weeks.",
                (first.ref,),
            )
        )
        status = TfrStatus.MOLECULAR_RELAPSE
    else:
        last = after[-1] if after else None
        seen = (
            f"; latest result {last[1].depth.value} on {last[0].date.isoformat()}"
            if last
            else "; no result since"
        )
        reasons.append(
            Basis(
                TFR_RELAPSE,
                f"In treatment-free remission since {stopped.isoformat()} ({since:.1f} months){seen}; "
                "MMR not lost. Fluctuations without loss of MMR are common and are not relapse.",
                tuple(r.ref for r, _ in after[-1:]),
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
            return Basis(
                STIM1,
                f"Two consecutive positive results {days} days apart ({pct(c1.value)} on "
                f"{r1.date.isoformat()}, {pct(c2.value)} on {r2.date.isoformat()}) with a >= 1-log "
                "increase: molecular relapse by the STIM1 definition (for comparison).",
                (r1.ref, r2.ref),
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

    def check(ok: bool | None, text: str, refs: tuple[str, ...] = ()) -> None:
        basis = Basis(TFR_ELIGIBILITY, text, refs)
        (met if ok else unknown if ok is None else unmet).append(basis)

    # Mandatory: chronic phase
    phases = [d for d in diagnoses if d.phase is not None]
    refs = tuple(d.ref for d in phases)
    if any(d.phase in (Phase.ACCELERATED, Phase.BLAST) for d in phases):
        check(
            False, "Accelerated or blast phase recorded: TFR requires CML in chronic phase.", refs
        )
    elif phases:
        check(True, "Chronic phase recorded.", refs)
    else:
        check(None, "The CML phase is not recorded: TFR requires chronic phase (confirm).")

    # Minimal: first line, or second line for intolerance only
    if therapy.line <= 1:
        check(
            True,
            f"First-line TKI ({therapy.drug.value if therapy.drug else 'unknown'}).",
            therapy.evidence,
        )
    elif therapy.switched_for_resistance:
        check(
            False,
            "A TKI was switched for resistance or failure: TFR needs first-line TKI or a switch for intolerance only.",
            therapy.evidence,
        )
    elif therapy.switch_reasons_known:
        check(True, f"Line {therapy.line} after switches for intolerance only.", therapy.evidence)
    else:
        check(
            None,
            "A TKI switch is recorded without its reason: TFR needs first-line TKI or a switch for intolerance only (confirm).",
            therapy.evidence,
        )

    # Minimal: typical transcript
    transcript, transcript_ref = transcript_info
    t_refs = (transcript_ref,) if transcript_ref else ()
    if transcript is None:
        check(
            None,
            "The BCR::ABL1 transcript type is not recorded: TFR needs e13a2 or e14a2 (confirm).",
        )
    elif transcript.typical:
        check(True, f"Typical transcript ({transcript.value}).", t_refs)
    else:
        check(False, f"Atypical transcript ({transcript.value}): TFR needs e13a2 or e14a2.", t_refs)

    # Minimal/optimal: TKI duration
    assert therapy.start is not None
    months_on = months_between(therapy.start, as_of)
    drug = therapy.drug
    if drug is None or drug.generation == 3:
        check(
            None,
            f"Minimal TKI duration for {drug.value if drug else 'this TKI'} is not defined by ELN 2020 (> 5 years imatinib, > 4 years second-generation).",
        )
    else:
        need = 60.0 if drug is Tki.IMATINIB else 48.0
        label = (
            "> 5 years on imatinib"
            if drug is Tki.IMATINIB
            else "> 4 years on a second-generation TKI"
        )
        check(
            months_on > need,
            f"{months_on / 12:.1f} years on TKI since {therapy.start.isoformat()} (needs {label}).",
            therapy.evidence,
        )

    # Minimal: DMR > 2 years
    on_therapy_calls = [(r, c) for r, c in calls if r.date >= therapy.start]
    run = latest_run(on_therapy_calls, DEEP)
    if run is None:
        check(
            False,
            "Not currently in deep molecular response (MR4 or deeper): TFR needs DMR for > 2 years.",
        )
        dmr_ok_optimal = False
    else:
        years = run.months / 12
        check(
            run.months > 24,
            f"Deep molecular response (MR4 or deeper, shallowest {run.shallowest.value}) from "
            f"{run.first.date.isoformat()} to {run.last.date.isoformat()}: {years:.1f} years (needs > 2 years).",
            run.refs,
        )
        need_optimal = 36 if run.shallowest is ResponseDepth.MR4 else 24
        dmr_ok_optimal = run.months > need_optimal

    # Minimal: no prior failure
    failures = [h for h in eln2020_history if h.status is ElnStatus.FAILURE]
    if failures:
        f0 = failures[0]
        check(
            False,
            f"Prior treatment failure ({f0.date.isoformat()}): {f0.basis.statement}",
            f0.basis.evidence,
        )
    else:
        check(True, "No treatment failure by ELN 2020 criteria in the record.")

    # Mandatory: adherence (documented non-adherence excludes; otherwise confirm)
    recent = [a for a in adherence if (as_of - a.date).days <= cfg.workup_lookback_days]
    if recent and not recent[-1].adherent:
        check(
            False,
            f"Poor adherence documented on {recent[-1].date.isoformat()}: TFR needs a motivated and adherent patient.",
            (recent[-1].ref,),
        )

    optimal = months_on > 60 and dmr_ok_optimal
    confirm = Basis(
        TFR_ELIGIBILITY,
        "Confirm with the patient: motivation, adherence, and access to IS-standardised RQ-PCR "
        "monthly for months 1-6 after stopping, every 2 months for months 7-12, every 3 months after.",
    )
    if unmet:
        return TfrReading(TfrStatus.NOT_ELIGIBLE, (*unmet, *unknown), False)
    if unknown:
        return TfrReading(TfrStatus.NOT_EVALUABLE, (*unknown, *met), None)
    level = Basis(
        TFR_ELIGIBILITY,
        "Optimal criteria also met (TKI > 5 years; DMR > 3 years at MR4 or > 2 years at MR4.5)."
        if optimal
        else "Minimal criteria met; optimal criteria (TKI > 5 years; DMR > 3 years at MR4 or > 2 years at MR4.5) not yet.",
    )
    return TfrReading(TfrStatus.ELIGIBLE, (*met, level, confirm), optimal)
