"""When the next BCR::ABL1 RQ-PCR is due, and whether it is overdue.

The interval depends on where the patient is: the first months on TKI (monthly), later (every 3
months), after a dose reduction (every 4-6 weeks for 6-12 months), after stopping for TFR (monthly
for months 1-6, every 2 months for months 7-12, every 3 months after). The next test is due one
interval after the latest sample; with no sample since the start of the current phase, it is due at
the phase's start.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from fhir_cml.domain.config import RuleConfig
from fhir_cml.domain.model import BcrAbl1Result, UnreadResult
from fhir_cml.domain.results import Basis, Monitoring, Therapy
from fhir_cml.domain.rules.catalogue import MONITORING
from fhir_cml.domain.rules.common import months_between
from fhir_cml.domain.vocabulary import TfrStatus, TherapyStatus


def schedule(
    therapy: Therapy,
    results: Sequence[BcrAbl1Result],
    tfr_status: TfrStatus,
    as_of: date,
    cfg: RuleConfig,
    unread: Sequence[UnreadResult] = (),
) -> Monitoring:
    if therapy.status is TherapyStatus.NONE or therapy.start is None:
        return Monitoring(
            None,
            False,
            None,
            "undefined",
            Basis(MONITORING, "No TKI start date: no schedule can be set."),
        )
    if therapy.status is TherapyStatus.STOPPED:
        return Monitoring(
            None,
            False,
            None,
            "undefined",
            Basis(
                MONITORING,
                "TKI stopped for a reason other than TFR: the schedule is for the clinician to set.",
                therapy.evidence,
            ),
        )
    if therapy.status is TherapyStatus.TFR and therapy.stopped_on is not None:
        phase_start = therapy.stopped_on
        since = months_between(phase_start, as_of)
        if since <= 6 or tfr_status is TfrStatus.MOLECULAR_RELAPSE:
            interval, phase, why = 30, "tfr-months-1-6", "monthly in months 1-6 after stopping TKI"
        elif since <= 12:
            interval, phase, why = (
                61,
                "tfr-months-7-12",
                "every 2 months in months 7-12 after stopping TKI",
            )
        else:
            interval, phase, why = (
                91,
                "tfr-after-12-months",
                "every 3 months after the first year off TKI",
            )
    elif (
        therapy.last_reduction is not None
        and months_between(therapy.last_reduction, as_of) <= cfg.after_reduction_months
    ):
        phase_start = therapy.last_reduction
        interval, phase = cfg.after_reduction_interval_days, "after-dose-reduction"
        why = (
            f"every {interval // 7} weeks (4-6 weeks) for {cfg.after_reduction_months:g} months after the dose "
            f"reduction of {therapy.last_reduction.isoformat()}"
        )
    elif months_between(therapy.start, as_of) < cfg.early_monitoring_months:
        phase_start = therapy.start
        interval, phase = cfg.early_interval_days, "early"
        why = f"monthly during the first {cfg.early_monitoring_months:g} months on TKI"
    else:
        phase_start = therapy.start
        interval, phase = cfg.standard_interval_days, "standard"
        why = "every 3 months on TKI"
    latest = results[-1] if results else None
    pending = _unread_since(unread, latest, phase_start, as_of)
    if pending is not None:
        return _unread_schedule(pending, interval, phase, why, as_of, cfg.overdue_grace_days)
    if latest is not None and latest.date >= phase_start:
        due = latest.date + timedelta(days=interval)
        since_text = f"latest sample {latest.date.isoformat()}"
        refs: tuple[str, ...] = (latest.ref,)
    else:
        due = phase_start
        since_text = f"no sample since {phase_start.isoformat()}"
        refs = ()
    overdue = as_of > due + timedelta(days=cfg.overdue_grace_days)
    state = f"overdue since {due.isoformat()}" if overdue else f"next due by {due.isoformat()}"
    statement = f"RQ-PCR {why}; {since_text}: {state}."
    return Monitoring(due, overdue, interval, phase, Basis(MONITORING, statement, refs))


def _unread_since(
    unread: Sequence[UnreadResult], latest: BcrAbl1Result | None, phase_start: date, as_of: date
) -> UnreadResult | None:
    """The latest result that exists but could not be read, if it may be newer than the latest read.

    An unread result without a readable date may be the newest of all: it counts too.
    """
    newest: UnreadResult | None = None
    for item in unread:
        if item.date is None:
            return item
        if item.date > as_of or item.date < phase_start:
            continue
        if latest is not None and item.date <= latest.date:
            continue
        if newest is None or item.date > (newest.date or date.min):
            newest = item
    return newest


def _unread_schedule(
    pending: UnreadResult, interval: int, phase: str, why: str, as_of: date, grace: int
) -> Monitoring:
    """A PCR was done but cannot be read: the next is due one interval after that sample."""
    if pending.date is None:
        statement = (
            f"RQ-PCR {why}; a BCR::ABL1 result without a readable date exists but could not be "
            f"read ({pending.reason}): whether the next PCR is due cannot be said; check the result."
        )
        return Monitoring(
            None, False, interval, phase, Basis(MONITORING, statement, (pending.ref,))
        )
    due = pending.date + timedelta(days=interval)
    overdue = as_of > due + timedelta(days=grace)
    state = f"overdue since {due.isoformat()}" if overdue else f"next due by {due.isoformat()}"
    statement = (
        f"RQ-PCR {why}; a BCR::ABL1 sample of {pending.date.isoformat()} exists but could not be "
        f"read ({pending.reason}): {state}, counted from that sample; check the result."
    )
    return Monitoring(due, overdue, interval, phase, Basis(MONITORING, statement, (pending.ref,)))
