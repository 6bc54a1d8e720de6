"""Reading an imatinib trough level (therapeutic drug monitoring).

A trough counts when drawn at steady state (>= 29 days of therapy and >= 8 days without a dose
change, the stricter of the quoted conditions) and immediately before the next dose. Then:
< 1000 ng/mL subtherapeutic, >= 2000 ng/mL supratherapeutic (outside the 500-1999 ng/mL reference
interval laboratories quote, with a toxicity watch above 2000), adequate otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from fhir_cml.domain.config import RuleConfig
from fhir_cml.domain.model import TroughLevel
from fhir_cml.domain.results import Basis, DoseSegment, TdmReading, Therapy
from fhir_cml.domain.rules.catalogue import TDM
from fhir_cml.domain.vocabulary import TdmStatus, TherapyStatus, Tki


def read_tdm(troughs: Sequence[TroughLevel], therapy: Therapy, cfg: RuleConfig) -> TdmReading:
    imatinib = [t for t in troughs if t.drug is Tki.IMATINIB]
    if not imatinib:
        return TdmReading(TdmStatus.NONE, None, None)
    trough = imatinib[-1]
    level = f"Imatinib trough {trough.ng_ml:g} ng/mL on {trough.date.isoformat()}"
    segment = _segment_at(therapy.segments, trough.date)
    if (
        segment is None
        or segment.drug is not Tki.IMATINIB
        or (segment.on_hold and segment.end and trough.date >= segment.end)
    ):
        return TdmReading(
            TdmStatus.TIMING_INVALID,
            trough,
            Basis(
                TDM, f"{level} was drawn while the patient was not taking imatinib.", (trough.ref,)
            ),
        )
    run_start = _imatinib_run_start(therapy.segments, segment)
    days_on = (trough.date - run_start).days
    days_since_change = (trough.date - segment.start).days
    current = therapy.status in (
        TherapyStatus.ACTIVE,
        TherapyStatus.INTERRUPTED,
    ) and segment is _current(therapy)
    problems: list[str] = []
    if days_on < cfg.tdm_min_days_on_therapy:
        problems.append(
            f"only {days_on} days on imatinib (>= {cfg.tdm_min_days_on_therapy} needed)"
        )
    if days_since_change < cfg.tdm_min_days_since_dose_change:
        problems.append(
            f"{days_since_change} days after a dose change (>= {cfg.tdm_min_days_since_dose_change} needed)"
        )
    if trough.hours_since_dose is not None:
        window = _window(segment, cfg)
        low, high = window
        if not low <= trough.hours_since_dose <= high:
            problems.append(
                f"drawn {trough.hours_since_dose:g} h after the last dose (a trough is drawn "
                f"immediately before the next dose: {low:g}-{high:g} h accepted)"
            )
    dose = f" at {segment.daily_dose_mg:g} mg/day" if segment.daily_dose_mg else ""
    if problems:
        return TdmReading(
            TdmStatus.TIMING_INVALID,
            trough,
            Basis(
                TDM,
                f"{level}{dose} is not a steady-state trough: {'; '.join(problems)}.",
                (trough.ref,),
            ),
            current,
        )
    if trough.ng_ml < cfg.trough_target_ng_ml:
        status = TdmStatus.SUBTHERAPEUTIC
        text = (
            f"below the {cfg.trough_target_ng_ml:g} ng/mL associated with better CCyR and MMR rates"
        )
    elif trough.ng_ml >= cfg.trough_supratherapeutic_ng_ml:
        status = TdmStatus.SUPRATHERAPEUTIC
        text = f"at or above {cfg.trough_supratherapeutic_ng_ml:g} ng/mL (toxicity watch)"
    else:
        status = TdmStatus.ADEQUATE
        text = f"at or above the {cfg.trough_target_ng_ml:g} ng/mL target"
    note = "" if current else " It was measured at an earlier dose, not the current one."
    return TdmReading(
        status,
        trough,
        Basis(TDM, f"{level}{dose} at steady state: {text}.{note}", (trough.ref,)),
        current,
    )


def _segment_at(segments: Sequence[DoseSegment], day: date) -> DoseSegment | None:
    for seg in reversed(segments):
        if seg.start <= day and (
            seg.end is None or day < seg.end or (seg.on_hold and day == seg.end)
        ):
            return seg
    return None


def _current(therapy: Therapy) -> DoseSegment | None:
    return therapy.segments[-1] if therapy.segments else None


def _imatinib_run_start(segments: Sequence[DoseSegment], segment: DoseSegment) -> date:
    start = segment.start
    index = list(segments).index(segment)
    for seg in reversed(segments[:index]):
        if seg.drug is not Tki.IMATINIB or seg.end is None or (start - seg.end).days > 1:
            break
        start = seg.start
    return start


def _window(segment: DoseSegment, cfg: RuleConfig) -> tuple[float, float]:
    tol = cfg.trough_timing_tolerance_hours
    if segment.doses_per_day:
        interval = 24.0 / segment.doses_per_day
        return interval - tol, interval + tol
    return 12.0 - tol, 24.0 + tol  # schedule unknown: accept either once or twice daily
