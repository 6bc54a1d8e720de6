"""Reading an imatinib trough level (therapeutic drug monitoring).

A level is a trough only when its code says so (LOINC 103609-4) or the time since the last dose
is given (a level under LOINC 57844-3 alone is "timing unknown", never a basis for escalation).
A trough counts when drawn at steady state (>= 29 days of therapy and >= 8 days without a dose
change, the stricter of the quoted conditions) and immediately before the next dose. Then:
< 1000 ng/mL subtherapeutic, >= 2000 ng/mL supratherapeutic (outside the 500-1999 ng/mL reference
interval laboratories quote, with a toxicity watch above 2000), adequate otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from fhir_cml.domain.basis import Dose, NgMl, Value, basis
from fhir_cml.domain.config import RuleConfig
from fhir_cml.domain.findings import Finding
from fhir_cml.domain.model import TroughLevel
from fhir_cml.domain.results import DoseSegment, TdmReading, Therapy
from fhir_cml.domain.rules.catalogue import TDM
from fhir_cml.domain.vocabulary import TdmStatus, TherapyStatus, Tki


def read_tdm(troughs: Sequence[TroughLevel], therapy: Therapy, cfg: RuleConfig) -> TdmReading:
    imatinib = [t for t in troughs if t.drug is Tki.IMATINIB]
    if not imatinib:
        return TdmReading(TdmStatus.NONE, None, None)
    trough = imatinib[-1]
    ref = (trough.ref,)
    level: dict[str, Value] = {"ng_ml": NgMl(trough.ng_ml), "date": trough.date}
    segment = _segment_at(therapy.segments, trough.date)
    if (
        segment is None
        or segment.drug is not Tki.IMATINIB
        or (segment.on_hold and segment.end and trough.date >= segment.end)
    ):
        return TdmReading(
            TdmStatus.TIMING_INVALID, trough, basis(TDM, Finding.TDM_OFF_IMATINIB, ref, **level)
        )
    run_start = _imatinib_run_start(therapy.segments, segment)
    days_on = (trough.date - run_start).days
    days_since_change = (trough.date - segment.start).days
    current = therapy.status in (
        TherapyStatus.ACTIVE,
        TherapyStatus.INTERRUPTED,
    ) and segment is _current(therapy)
    if segment.daily_dose_mg:
        level["dose"] = Dose(segment.daily_dose_mg)
    if trough.hours_since_dose is None and not trough.trough_by_code:
        # A level whose code has no timing (LOINC 57844-3) and no time since the last dose: not a
        # trough, so never a basis for escalation.
        return TdmReading(
            TdmStatus.TIMING_UNKNOWN,
            trough,
            basis(TDM, Finding.TDM_TIMING_UNKNOWN, ref, **level),
            current,
        )
    # Each problem: (what, the value found, the least or the accepted range).
    problems: list[tuple[str, float, float, float | None]] = []
    if days_on < cfg.tdm_min_days_on_therapy:
        problems.append(("days-on-imatinib", days_on, cfg.tdm_min_days_on_therapy, None))
    if days_since_change < cfg.tdm_min_days_since_dose_change:
        problems.append(
            ("days-since-dose-change", days_since_change, cfg.tdm_min_days_since_dose_change, None)
        )
    if trough.hours_since_dose is not None:
        low, high = _window(segment, cfg)
        if not low <= trough.hours_since_dose <= high:
            problems.append(("hours-since-dose", trough.hours_since_dose, low, high))
    if problems:
        return TdmReading(
            TdmStatus.TIMING_INVALID,
            trough,
            basis(TDM, Finding.TDM_NOT_STEADY_STATE, ref, **level, problems=tuple(problems)),
            current,
        )
    if trough.ng_ml < cfg.trough_target_ng_ml:
        status = TdmStatus.SUBTHERAPEUTIC
    elif trough.ng_ml >= cfg.trough_supratherapeutic_ng_ml:
        status = TdmStatus.SUPRATHERAPEUTIC
    else:
        status = TdmStatus.ADEQUATE
    return TdmReading(
        status,
        trough,
        basis(
            TDM,
            Finding.TDM_STEADY_STATE,
            ref,
            **level,
            status=status,
            target=NgMl(cfg.trough_target_ng_ml),
            toxicity=NgMl(cfg.trough_supratherapeutic_ng_ml),
            at_current_dose=current,
        ),
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
