"""The TKI course from several MedicationStatements: start, dose history, switches, gaps, stop.

Therapy time runs from the start of the first TKI (first line). A later statement for the same
drug at another dose is a dose change; for another drug, a switch; time between statements is a
gap. Statements that do not describe intake (entered-in-error, not-taken, intended) are left out
and said so.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import date, timedelta

from fhir_cml.domain.findings import Finding
from fhir_cml.domain.model import Issue, TkiStatement
from fhir_cml.domain.results import DoseSegment, Gap, Therapy
from fhir_cml.domain.rules.catalogue import input_issue
from fhir_cml.domain.rules.common import months_between
from fhir_cml.domain.vocabulary import (
    IssueCode,
    MedicationStatus,
    Severity,
    StopReason,
    TherapyStatus,
)

_NOT_INTAKE = frozenset(
    {MedicationStatus.ENTERED_IN_ERROR, MedicationStatus.NOT_TAKEN, MedicationStatus.INTENDED}
)
_ENDED = {MedicationStatus.COMPLETED, MedicationStatus.STOPPED}

# Orders and supplies: a supply that starts more than this many days after the previous one ran
# out is an interruption; an active order this long past its supply's end is questioned.
MAX_SUPPLY_GAP_DAYS = 30


def build_therapy(statements: tuple[TkiStatement, ...], as_of: date) -> tuple[Therapy, list[Issue]]:
    issues: list[Issue] = []
    segments: list[DoseSegment] = []
    for st in statements:
        segment = _segment(st, as_of, issues)
        if segment is not None:
            segments.append(segment)
    if not segments:
        if not statements:
            issues.append(
                input_issue(
                    Severity.WARNING, IssueCode.NO_THERAPY_START, None, Finding.NO_TKI_RECORD
                )
            )
        else:
            issues.append(
                input_issue(
                    Severity.WARNING,
                    IssueCode.NO_THERAPY_START,
                    None,
                    Finding.NO_USABLE_START,
                    tuple(s.ref for s in statements),
                )
            )
        return Therapy(status=TherapyStatus.NONE, evidence=tuple(s.ref for s in statements)), issues

    issues.extend(_supply_ran_out(statements, as_of))
    segments.sort(key=lambda s: (s.start, s.end or date.max))
    segments = _resolve_overlaps(segments)
    gaps = _gaps(segments)
    first = segments[0]
    current = _covering(segments, as_of)
    last = segments[-1]
    line, switched_for_resistance, reasons_known = _lines(segments)
    last_change, last_reduction = _dose_changes(segments)

    if current is not None and not current.on_hold:
        status = TherapyStatus.ACTIVE
    elif current is not None:
        status = TherapyStatus.INTERRUPTED
    elif last.stop_reason is StopReason.TFR:
        status = TherapyStatus.TFR
    else:
        status = TherapyStatus.STOPPED
    shown = current or last
    drug_start = _drug_start(segments, shown)
    tfr_stops = _tfr_stops(segments, status)
    on_tki = status in (TherapyStatus.ACTIVE, TherapyStatus.INTERRUPTED)
    restarted = tfr_stops[-1].end if tfr_stops and on_tki else None
    therapy = Therapy(
        status=status,
        drug=shown.drug,
        daily_dose_mg=shown.daily_dose_mg,
        start=first.start,
        current_start=drug_start,
        last_dose_change=last_change,
        months_on_therapy=round(months_between(first.start, as_of), 1),
        line=line,
        segments=tuple(segments),
        gaps=tuple(gaps),
        stopped_on=last.end if status in (TherapyStatus.STOPPED, TherapyStatus.TFR) else None,
        stop_reason=last.stop_reason
        if status in (TherapyStatus.STOPPED, TherapyStatus.TFR)
        else None,
        last_reduction=last_reduction,
        switched_for_resistance=switched_for_resistance,
        switch_reasons_known=reasons_known,
        evidence=tuple(dict.fromkeys(s.ref for s in segments)),
        tfr_stops=tfr_stops,
        restarted=restarted,
    )
    return therapy, issues


def _tfr_stops(segments: list[DoseSegment], status: TherapyStatus) -> tuple[Gap, ...]:
    """Each time off TKI after a stop for TFR, up to the restart (open while still off)."""
    out = [
        Gap(prev.end, nxt.start, prev.ref)
        for prev, nxt in itertools.pairwise(segments)
        if prev.stop_reason is StopReason.TFR and prev.end is not None and nxt.start > prev.end
    ]
    last = segments[-1]
    if status is TherapyStatus.TFR and last.end is not None:
        out.append(Gap(last.end, None, last.ref))
    return tuple(out)


def _segment(st: TkiStatement, as_of: date, issues: list[Issue]) -> DoseSegment | None:
    ref = (st.ref,)
    if st.status in _NOT_INTAKE:
        issues.append(
            input_issue(
                Severity.INFORMATION,
                IssueCode.STATUS_IGNORED,
                st.ref,
                Finding.STATEMENT_NOT_INTAKE,
                ref,
                drug=st.drug,
                status=st.status,
            )
        )
        return None
    if st.start is None:
        issues.append(
            input_issue(
                Severity.WARNING,
                IssueCode.NO_THERAPY_START,
                st.ref,
                Finding.STATEMENT_NO_START,
                ref,
                drug=st.drug,
            )
        )
        return None
    if st.start > as_of:
        issues.append(
            input_issue(
                Severity.INFORMATION,
                IssueCode.AFTER_AS_OF,
                st.ref,
                Finding.STATEMENT_AFTER_AS_OF,
                ref,
                drug=st.drug,
                start=st.start,
            )
        )
        return None
    end = st.end
    on_hold = st.status is MedicationStatus.ON_HOLD
    if st.status in _ENDED and end is None:
        if st.asserted is not None and st.asserted >= st.start:
            end = st.asserted
            issues.append(
                input_issue(
                    Severity.WARNING,
                    IssueCode.INFERRED,
                    st.ref,
                    Finding.END_FROM_ASSERTED,
                    ref,
                    drug=st.drug,
                    status=st.status,
                    end=end,
                )
            )
        else:
            issues.append(
                input_issue(
                    Severity.WARNING,
                    IssueCode.MISSING_DATE,
                    st.ref,
                    Finding.ENDED_WITHOUT_DATE,
                    ref,
                    drug=st.drug,
                    status=st.status,
                )
            )
            return None
    if on_hold:
        # Held from the end of the period, or from when the hold was recorded.
        hold_from = end or st.asserted
        segment = DoseSegment(
            st.drug, st.daily_dose_mg, st.start, hold_from, st.ref, st.stop_reason, st.doses_per_day
        )
        if hold_from is None or hold_from > as_of:
            return replace(segment, end=None)
        return replace(segment, on_hold=True)
    if end is not None and end > as_of:
        end = None
    return DoseSegment(
        st.drug, st.daily_dose_mg, st.start, end, st.ref, st.stop_reason, st.doses_per_day
    )


def _resolve_overlaps(segments: list[DoseSegment]) -> list[DoseSegment]:
    """A later statement supersedes an earlier one from its start (a dose change or a switch)."""
    out: list[DoseSegment] = []
    for seg in segments:
        if out:
            prev = out[-1]
            if prev.end is None or prev.end > seg.start:
                reason = prev.stop_reason
                if reason is None:
                    reason = StopReason.DOSE_CHANGE if prev.drug is seg.drug else StopReason.UNKNOWN
                out[-1] = replace(prev, end=seg.start, stop_reason=reason, on_hold=False)
        out.append(seg)
    return [s for s in out if s.end is None or s.end > s.start or s.on_hold]


def _gaps(segments: list[DoseSegment]) -> list[Gap]:
    gaps: list[Gap] = []
    for prev, nxt in itertools.pairwise(segments):
        if prev.end is not None and nxt.start - prev.end > timedelta(days=1):
            gaps.append(Gap(prev.end, nxt.start, prev.ref))
    last = segments[-1]
    if last.on_hold and last.end is not None:
        gaps.append(Gap(last.end, None, last.ref))
    return gaps


def _covering(segments: list[DoseSegment], as_of: date) -> DoseSegment | None:
    """The segment the patient is in on the as-of date; a trailing hold counts as one."""
    last = segments[-1]
    if last.on_hold:
        return last
    for seg in reversed(segments):
        if seg.start <= as_of and (seg.end is None or seg.end > as_of):
            return seg
    return None


def _lines(segments: list[DoseSegment]) -> tuple[int, bool, bool]:
    line, resistance, known = 1, False, True
    for prev, nxt in itertools.pairwise(segments):
        if nxt.drug is not prev.drug:
            line += 1
            if prev.stop_reason is StopReason.RESISTANCE:
                resistance = True
            elif prev.stop_reason is not StopReason.INTOLERANCE:
                known = False
    return line, resistance, known


def _dose_changes(segments: list[DoseSegment]) -> tuple[date | None, date | None]:
    last_change: date | None = None
    last_reduction: date | None = None
    for prev, nxt in itertools.pairwise(segments):
        if nxt.drug is prev.drug and nxt.daily_dose_mg != prev.daily_dose_mg:
            last_change = nxt.start
            if (
                nxt.daily_dose_mg is not None
                and prev.daily_dose_mg is not None
                and nxt.daily_dose_mg < prev.daily_dose_mg
            ):
                last_reduction = nxt.start
        elif nxt.drug is not prev.drug:
            last_change = nxt.start
    return last_change, last_reduction


def _drug_start(segments: list[DoseSegment], shown: DoseSegment) -> date:
    """Start of the uninterrupted run of the shown drug."""
    start = shown.start
    index = segments.index(shown)
    for seg in reversed(segments[:index]):
        if seg.drug is not shown.drug:
            break
        start = seg.start
    return start


def _supply_ran_out(statements: tuple[TkiStatement, ...], as_of: date) -> list[Issue]:
    """An active order whose supply ran out long before as-of: still read as taken (its status
    says so), with a warning to confirm with the patient."""
    return [
        input_issue(
            Severity.WARNING,
            IssueCode.INFERRED,
            st.ref,
            Finding.ORDER_SUPPLY_RAN_OUT,
            (st.ref,),
            drug=st.drug.value,
            supplied_to=st.supplied_to,
        )
        for st in statements
        if st.supplied_to is not None
        and st.end is None
        and st.status is MedicationStatus.ACTIVE
        and st.supplied_to + timedelta(days=MAX_SUPPLY_GAP_DAYS) < as_of
    ]
