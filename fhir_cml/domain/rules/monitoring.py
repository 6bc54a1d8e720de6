"""When the next BCR::ABL1 RQ-PCR is due, and whether it is overdue.

The interval depends on where the patient is: the first months on TKI (monthly), later (every 3
months), after a dose reduction (every 4-6 weeks for 6-12 months), after stopping for TFR (monthly
for months 1-6, every 2 months for months 7-12, every 3 months after), after restarting the TKI for
a relapse off treatment (every 4-6 weeks until MMR is regained: ELN 2020). The next test is due one
interval after the latest sample; with no sample since the start of the current phase, it is due at
the phase's start.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from fhir_cml.domain.basis import Months, Value, basis
from fhir_cml.domain.config import RuleConfig
from fhir_cml.domain.findings import Finding
from fhir_cml.domain.model import BcrAbl1Result, UnreadResult
from fhir_cml.domain.results import Monitoring, TfrReading, Therapy
from fhir_cml.domain.rules.catalogue import MONITORING
from fhir_cml.domain.rules.common import months_between
from fhir_cml.domain.vocabulary import TfrStatus, TherapyStatus


def schedule(
    therapy: Therapy,
    results: Sequence[BcrAbl1Result],
    tfr: TfrReading,
    as_of: date,
    cfg: RuleConfig,
    unread: Sequence[UnreadResult] = (),
) -> Monitoring:
    if therapy.status is TherapyStatus.NONE or therapy.start is None:
        return Monitoring(
            None, False, None, "undefined", basis(MONITORING, Finding.MONITORING_NO_START)
        )
    if therapy.status is TherapyStatus.STOPPED:
        return Monitoring(
            None,
            False,
            None,
            "undefined",
            basis(MONITORING, Finding.MONITORING_STOPPED, therapy.evidence),
        )
    if therapy.status is TherapyStatus.TFR and therapy.stopped_on is not None:
        phase_start = therapy.stopped_on
        since = months_between(phase_start, as_of)
        if since <= 6 or tfr.status is TfrStatus.MOLECULAR_RELAPSE:
            interval, phase = 30, "tfr-months-1-6"
        elif since <= 12:
            interval, phase = 61, "tfr-months-7-12"
        else:
            interval, phase = 91, "tfr-after-12-months"
    elif tfr.restarted_on is not None and tfr.mmr_regained_on is None:
        # After restarting for a relapse off treatment: every 4-6 weeks until MMR is regained.
        phase_start = tfr.restarted_on
        interval, phase = cfg.retreatment_interval_days, "retreatment"
    elif (
        therapy.last_reduction is not None
        and months_between(therapy.last_reduction, as_of) <= cfg.after_reduction_months
    ):
        phase_start = therapy.last_reduction
        interval, phase = cfg.after_reduction_interval_days, "after-dose-reduction"
    elif months_between(therapy.start, as_of) < cfg.early_monitoring_months:
        phase_start = therapy.start
        interval, phase = cfg.early_interval_days, "early"
    else:
        phase_start = therapy.start
        interval, phase = cfg.standard_interval_days, "standard"
    latest = results[-1] if results else None
    phase_months = Months(
        cfg.after_reduction_months
        if phase == "after-dose-reduction"
        else cfg.early_monitoring_months
    )
    why: dict[str, Value] = {
        "phase": phase,
        "interval_days": interval,
        "phase_start": phase_start,
        "phase_months": phase_months,
    }
    pending = _unread_since(unread, latest, phase_start, as_of)
    if pending is not None:
        return _unread_schedule(pending, interval, phase, why, as_of, cfg.overdue_grace_days)
    if latest is not None and latest.date >= phase_start:
        due = latest.date + timedelta(days=interval)
        sample: date | None = latest.date
        refs: tuple[str, ...] = (latest.ref,)
    else:
        due = phase_start
        sample = None
        refs = ()
    overdue = as_of > due + timedelta(days=cfg.overdue_grace_days)
    return Monitoring(
        due,
        overdue,
        interval,
        phase,
        basis(
            MONITORING,
            Finding.MONITORING_SCHEDULE,
            refs,
            **why,
            latest=sample,
            due=due,
            overdue=overdue,
        ),
    )


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
    pending: UnreadResult,
    interval: int,
    phase: str,
    why: dict[str, Value],
    as_of: date,
    grace: int,
) -> Monitoring:
    """A PCR was done but cannot be read: the next is due one interval after that sample."""
    ref = (pending.ref,)
    if pending.date is None:
        return Monitoring(
            None,
            False,
            interval,
            phase,
            basis(MONITORING, Finding.MONITORING_UNREAD_UNDATED, ref, **why, reason=pending.reason),
        )
    due = pending.date + timedelta(days=interval)
    overdue = as_of > due + timedelta(days=grace)
    return Monitoring(
        due,
        overdue,
        interval,
        phase,
        basis(
            MONITORING,
            Finding.MONITORING_UNREAD,
            ref,
            **why,
            sample=pending.date,
            reason=pending.reason,
            due=due,
            overdue=overdue,
        ),
    )
