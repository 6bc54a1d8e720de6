"""TKI courses from orders and supplies: MedicationRequest (US Core), MedicationDispense and
MedicationAdministration, made into the statements the course rules read (docs/inbound.md,
"TKI therapy from orders and supplies").

The course rules read one shape, :class:`TkiStatement`; this module makes that shape from what
sites record instead of (or besides) MedicationStatements:

- **Precedence.** MedicationStatement > MedicationRequest > MedicationDispense >
  MedicationAdministration. A record whose start falls in a period already described by a
  source of higher precedence for the same drug describes the same course and is left out
  (counted in the not-read summary), so nothing counts twice.
- **Renewals are one course.** Records of one source for the same drug at the same daily dose
  are one course while each starts within ``MAX_SUPPLY_GAP_DAYS`` of the end of the supply
  before it (a prescription renewed every 3 months). A record at another daily dose starts a
  new segment (a dose change); a later start is an interruption, and the course before it ends
  when its supply ended.
- **When a supply ends**: the dosage's ``timing.repeat.boundsPeriod.end``, else the start plus
  ``dispenseRequest.expectedSupplyDuration`` x (1 + ``numberOfRepeatsAllowed``), else
  ``dispenseRequest.validityPeriod.end`` (a request); ``whenHandedOver`` plus ``daysSupply`` (a
  dispense); the day of the administration. Without any, no gap can be measured, and the course
  continues until the next record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final

from fhir_cml.domain.model import OtherMedication, TkiStatement
from fhir_cml.domain.rules.interactions import STRONG_CYP3A4
from fhir_cml.domain.rules.therapy import MAX_SUPPLY_GAP_DAYS
from fhir_cml.domain.vocabulary import IssueCode, MedicationStatus, StopReason, Tki
from fhir_cml.fhir.canonical import ID_REQUEST
from fhir_cml.fhir.inbound import units
from fhir_cml.fhir.inbound.context import MappingContext, as_dict, as_list, number, quoted
from fhir_cml.fhir.inbound.medications import (
    Drug,
    MedicationIndex,
    daily_dose,
    identify,
    stop_reason,
)

REQUEST: Final = "MedicationRequest"
DISPENSE: Final = "MedicationDispense"
ADMINISTRATION: Final = "MedicationAdministration"
SUPPLY_TYPES: Final = (REQUEST, DISPENSE, ADMINISTRATION)
_RANK: Final = {"MedicationStatement": 0, REQUEST: 1, DISPENSE: 2, ADMINISTRATION: 3}
_LABEL: Final = {REQUEST: "order", DISPENSE: "dispense", ADMINISTRATION: "administration"}

# MedicationRequest.status -> what it says about intake; None: not intake (left out, said so).
_REQUEST_STATUS: Final[dict[str, MedicationStatus | None]] = {
    "active": MedicationStatus.ACTIVE,
    "completed": MedicationStatus.COMPLETED,
    "stopped": MedicationStatus.STOPPED,
    "on-hold": MedicationStatus.ON_HOLD,
    "unknown": MedicationStatus.UNKNOWN,
    "cancelled": None,
    "entered-in-error": None,
    "draft": None,
}
_ORDER_INTENTS: Final = frozenset(
    {"order", "original-order", "reflex-order", "filler-order", "instance-order"}
)
_DISPENSED: Final = frozenset({"completed"})
_ADMINISTERED: Final = frozenset({"completed", "in-progress"})
_DURATION_DAYS: Final = {"d": 1.0, "wk": 7.0, "mo": 30.0, "a": 365.0, "h": 1 / 24}
_FAR: Final = date.max


@dataclass(slots=True)
class Supply:
    """One order, dispense or administration of a TKI, as read."""

    ref: str
    rtype: str
    drug: Tki
    status: MedicationStatus
    start: date
    end: date | None  # stated end of intake
    supplied_to: date | None  # when the supply runs out (stated or estimated)
    daily_dose_mg: float | None
    doses_per_day: int | None
    stop_reason: StopReason | None = None
    reason_text: str | None = None
    refs: list[str] = field(default_factory=list)


# --- reading one resource ------------------------------------------------------------------------


def map_supply(
    res: dict[str, Any], rtype: str, ref: str, ctx: MappingContext, medications: MedicationIndex
) -> Supply | OtherMedication | None:
    """A TKI order/dispense/administration, or a strong CYP3A4 modulator taken alongside."""
    what = _LABEL[rtype]
    if rtype == REQUEST and _proposed_by_fhir_cml(res):
        ctx.count_not_read("fhir-cml's own proposals (MedicationRequest, intent proposal)")
        return None
    drug, problem = identify(res, medications)
    if drug is None:
        if problem is not None:
            ctx.warn(IssueCode.UNKNOWN_CODE, f"{rtype} {problem}: left out.", ref)
        else:
            ctx.count_not_read(f"{rtype}s for other drugs")
        return None
    label = f"{drug.tki.value if drug.tki else drug.other} {what}"
    if problem is not None:
        ctx.info(IssueCode.INFERRED, f"{label} {problem}; read from its display.", ref)
    if drug.by_name:
        ctx.info(
            IssueCode.INFERRED,
            f"Medication identified as {drug.tki or drug.other} by its name "
            f"({drug.name_seen!r}), not by an RxNorm or ATC code.",
            ref,
        )
    if rtype == REQUEST:
        return _request(res, ref, ctx, drug, label)
    if rtype == DISPENSE:
        return _dispense(res, ref, ctx, drug, label)
    return _administration(res, ref, ctx, drug, label)


def _proposed_by_fhir_cml(res: dict[str, Any]) -> bool:
    """A TKI change fhir-cml itself proposed (docs/outbound.md): never intake, not an issue."""
    return any(
        isinstance(i, dict) and i.get("system") == ID_REQUEST
        for i in as_list(res.get("identifier"))
    )


def _request(
    res: dict[str, Any], ref: str, ctx: MappingContext, drug: Drug, label: str
) -> Supply | OtherMedication | None:
    status_text = res.get("status")
    status = _REQUEST_STATUS.get(status_text, None) if type(status_text) is str else None
    intent = res.get("intent")
    if status is None or res.get("doNotPerform") is True:
        why = "doNotPerform" if res.get("doNotPerform") is True else f"status {quoted(status_text)}"
        ctx.info(IssueCode.STATUS_IGNORED, f"{label} has {why}: not intake; left out.", ref)
        return None
    if type(intent) is not str or intent not in _ORDER_INTENTS:
        ctx.info(
            IssueCode.STATUS_IGNORED,
            f"{label} has intent {quoted(intent)}, not an order (order, original-order, "
            "instance-order, ...): left out.",
            ref,
        )
        return None
    dosages = res.get("dosageInstruction")
    bounds = _bounds(dosages)
    dispense = as_dict(res.get("dispenseRequest"))
    validity = as_dict(dispense.get("validityPeriod"))
    start = _day(bounds.get("start"), ref, ctx, f"{label} boundsPeriod.start")
    if start is None:
        start = _day(validity.get("start"), ref, ctx, f"{label} validityPeriod.start")
    if start is None:
        start = _day(res.get("authoredOn"), ref, ctx, f"{label} authoredOn")
    if start is None:
        ctx.warn(
            IssueCode.NO_THERAPY_START,
            f"{label} gives no start (boundsPeriod.start, validityPeriod.start or authoredOn): "
            "left out of the course.",
            ref,
        )
        return None
    end = _day(bounds.get("end"), ref, ctx, f"{label} boundsPeriod.end")
    if end is not None and end < start:
        ctx.warn(
            IssueCode.OUT_OF_RANGE, f"{label} ends before it starts: the end is left out.", ref
        )
        end = None
    supplied_to = end or _supply_end(start, dispense) or _day(validity.get("end"), ref, ctx, "")
    if drug.other is not None:
        return OtherMedication(
            ref, drug.other, status, STRONG_CYP3A4[drug.other], start, end or supplied_to
        )
    assert drug.tki is not None
    daily, per_day = daily_dose(dosages, drug, ref, ctx, label)
    reason, reason_text = stop_reason(res)
    return Supply(
        ref, REQUEST, drug.tki, status, start, end, supplied_to, daily, per_day, reason, reason_text
    )


def _dispense(
    res: dict[str, Any], ref: str, ctx: MappingContext, drug: Drug, label: str
) -> Supply | OtherMedication | None:
    status_text = res.get("status")
    if type(status_text) is not str or status_text not in _DISPENSED:
        ctx.info(
            IssueCode.STATUS_IGNORED,
            f"{label} has status {quoted(status_text)}: only completed dispenses are read; left out.",
            ref,
        )
        return None
    when = res.get("whenHandedOver")
    if when is None:
        when = res.get("whenPrepared")
    start = _day(when, ref, ctx, f"{label} whenHandedOver")
    if start is None:
        ctx.warn(IssueCode.MISSING_DATE, f"{label} has no whenHandedOver: left out.", ref)
        return None
    days = units.quantity(res.get("daysSupply"))
    supplied_to = None
    if days is not None and days[0] > 0 and units.factor(days[1] or "d", "d") is not None:
        factor = units.factor(days[1] or "d", "d") or 1.0
        supplied_to = start + timedelta(days=round(days[0] * factor))
    if drug.other is not None:
        return OtherMedication(
            ref,
            drug.other,
            MedicationStatus.COMPLETED,
            STRONG_CYP3A4[drug.other],
            start,
            supplied_to or start,
        )
    assert drug.tki is not None
    daily, per_day = daily_dose(res.get("dosageInstruction"), drug, ref, ctx, label)
    return Supply(
        ref,
        DISPENSE,
        drug.tki,
        MedicationStatus.COMPLETED,
        start,
        None,
        supplied_to,
        daily,
        per_day,
    )


def _administration(
    res: dict[str, Any], ref: str, ctx: MappingContext, drug: Drug, label: str
) -> Supply | OtherMedication | None:
    status_text = res.get("status")
    if type(status_text) is not str or status_text not in _ADMINISTERED:
        ctx.info(
            IssueCode.STATUS_IGNORED,
            f"{label} has status {quoted(status_text)}: only completed or in-progress "
            "administrations are read; left out.",
            ref,
        )
        return None
    when = res.get("effectiveDateTime")
    if when is None:
        when = as_dict(res.get("effectivePeriod")).get("start")
    day = _day(when, ref, ctx, f"{label} effective")
    if day is None:
        ctx.warn(IssueCode.MISSING_DATE, f"{label} has no effective date: left out.", ref)
        return None
    if drug.other is not None:
        return OtherMedication(
            ref, drug.other, MedicationStatus.COMPLETED, STRONG_CYP3A4[drug.other], day, day
        )
    assert drug.tki is not None
    dose = as_dict(as_dict(res.get("dosage")).get("dose"))
    mg: float | None = None
    if dose:
        amount = number(dose.get("value"))
        quantity = units.quantity(dose)
        factor = units.factor(quantity[1] if quantity else None, "mg")
        if amount is not None and factor is not None:
            mg = amount * factor
    return Supply(ref, ADMINISTRATION, drug.tki, MedicationStatus.COMPLETED, day, day, day, mg, 1)


def _bounds(dosages: Any) -> dict[str, Any]:
    for dosage in as_list(dosages):
        repeat = as_dict(as_dict(as_dict(dosage).get("timing")).get("repeat"))
        bounds = repeat.get("boundsPeriod")
        if type(bounds) is dict:
            return bounds
    return {}


def _supply_end(start: date, dispense: dict[str, Any]) -> date | None:
    duration = as_dict(dispense.get("expectedSupplyDuration"))
    amount = number(duration.get("value"))
    unit = duration.get("code") or duration.get("unit") or "d"
    per = _DURATION_DAYS.get(unit) if type(unit) is str else None
    if per is None and type(unit) is str and unit.rstrip("s") in ("day", "week"):
        per = 1.0 if unit.startswith("day") else 7.0
    if amount is None or amount <= 0 or per is None:
        return None
    repeats = number(dispense.get("numberOfRepeatsAllowed")) or 0.0
    return start + timedelta(days=round(amount * per * (1 + max(repeats, 0.0))))


def _day(value: Any, ref: str, ctx: MappingContext, what: str) -> date | None:
    if value is None:
        return None
    if not what:  # an estimate: a bad value is simply not used
        if type(value) is str and len(value) >= 10:
            try:
                return date.fromisoformat(value[:10])
            except ValueError:
                return None
        return None
    return ctx.day(value, ref, what, future_ok=True)


# --- courses -------------------------------------------------------------------------------------


def courses(
    statements: list[TkiStatement],
    supplies: list[Supply],
    ctx: MappingContext,
) -> list[TkiStatement]:
    """Statements, plus the courses orders and supplies describe where statements do not."""
    covered: dict[Tki, list[tuple[date, date]]] = {}
    for st in statements:
        if st.start is not None and st.status not in _NOT_INTAKE:
            covered.setdefault(st.drug, []).append((st.start, st.end or _FAR))
    out = list(statements)
    by_rank: dict[int, list[Supply]] = {}
    for supply in supplies:
        by_rank.setdefault(_RANK[supply.rtype], []).append(supply)
    for rank in sorted(by_rank):
        kept: list[Supply] = []
        for supply in by_rank[rank]:
            if _within(covered.get(supply.drug, ()), supply.start):
                ctx.count_not_read(
                    f"{supply.rtype}s for a TKI course another record already describes"
                )
            else:
                kept.append(supply)
        made = _merge(_daily_totals(kept) if rank == _RANK[ADMINISTRATION] else kept, ctx)
        for st in made:
            assert st.start is not None
            covered.setdefault(st.drug, []).append((st.start, st.end or _FAR))
        out.extend(made)
    return out


_NOT_INTAKE: Final = frozenset(
    {MedicationStatus.ENTERED_IN_ERROR, MedicationStatus.NOT_TAKEN, MedicationStatus.INTENDED}
)


def _daily_totals(administrations: list[Supply]) -> list[Supply]:
    """Administrations of one drug on one day are that day's dose (400 mg twice: 800 mg/day)."""
    days: dict[tuple[Tki, date], Supply] = {}
    for given in sorted(administrations, key=lambda s: (s.start, s.ref)):
        key = (given.drug, given.start)
        total = days.get(key)
        if total is None:
            days[key] = _copy(given)
            continue
        total.refs.append(given.ref)
        known = total.daily_dose_mg is not None and given.daily_dose_mg is not None
        total.daily_dose_mg = (
            (total.daily_dose_mg or 0.0) + (given.daily_dose_mg or 0.0) if known else None
        )
        total.doses_per_day = (total.doses_per_day or 1) + 1
    return list(days.values())


def _within(periods: Any, day: date) -> bool:
    return any(start <= day < end or start == day for start, end in periods)


def _merge(supplies: list[Supply], ctx: MappingContext) -> list[TkiStatement]:
    """Renewals into courses, per drug: same daily dose within the gap limit is one course."""
    out: list[TkiStatement] = []
    by_drug: dict[Tki, list[Supply]] = {}
    for supply in supplies:
        by_drug.setdefault(supply.drug, []).append(supply)
    gap = timedelta(days=MAX_SUPPLY_GAP_DAYS)
    for drug_supplies in by_drug.values():
        drug_supplies.sort(key=lambda s: (s.start, s.ref))
        current: Supply | None = None
        for supply in drug_supplies:
            if current is None:
                current = _copy(supply)
                continue
            reach = current.supplied_to
            continuous = reach is None or supply.start <= reach + gap
            held = MedicationStatus.ON_HOLD in (supply.status, current.status)  # a hold is its own
            if continuous and not held and supply.daily_dose_mg == current.daily_dose_mg:
                _extend(current, supply)
                continue
            if continuous:
                out.append(_close(current, ctx, next_start=supply.start))
            else:
                out.append(_close(current, ctx, interrupted=True))
            current = _copy(supply)
        if current is not None:
            out.append(_close(current, ctx))
    return out


def _copy(supply: Supply) -> Supply:
    return Supply(
        supply.ref,
        supply.rtype,
        supply.drug,
        supply.status,
        supply.start,
        supply.end,
        supply.supplied_to,
        supply.daily_dose_mg,
        supply.doses_per_day,
        supply.stop_reason,
        supply.reason_text,
        [supply.ref],
    )


def _extend(course: Supply, supply: Supply) -> None:
    """A renewal: the course runs on with the later record's status, end and reason."""
    course.refs.append(supply.ref)
    course.ref = supply.ref
    course.status = supply.status
    course.end = supply.end
    if supply.supplied_to is not None:
        course.supplied_to = max(course.supplied_to or supply.supplied_to, supply.supplied_to)
    course.stop_reason = supply.stop_reason
    course.reason_text = supply.reason_text


def _close(
    course: Supply, ctx: MappingContext, next_start: date | None = None, interrupted: bool = False
) -> TkiStatement:
    """The course as a statement: ended where the next segment starts, or where its supply ran out."""
    status, end = course.status, course.end
    kind = f"{course.rtype}s"
    if len(course.refs) > 1:
        ctx.info(
            IssueCode.INFERRED,
            f"{len(course.refs)} {course.drug.value} {kind} ({', '.join(course.refs[:5])}"
            f"{', ...' if len(course.refs) > 5 else ''}) read as one course from "
            f"{course.start.isoformat()}: renewals at the same daily dose within "
            f"{MAX_SUPPLY_GAP_DAYS} days of each other.",
            course.ref,
        )
    ended = status in (MedicationStatus.COMPLETED, MedicationStatus.STOPPED)
    if next_start is not None:
        # Another daily dose follows without a gap: the course rules call it a dose change.
        status, end = MedicationStatus.COMPLETED, next_start
    elif (
        end is None
        and course.supplied_to is not None
        and (interrupted or ended or course.rtype != REQUEST)
    ):
        end = course.supplied_to
        if not ended:
            status = MedicationStatus.COMPLETED
        why = (
            f"the next starts more than {MAX_SUPPLY_GAP_DAYS} days later"
            if interrupted
            else "no end is stated"
        )
        ctx.info(
            IssueCode.INFERRED,
            f"{course.drug.value} course from {kind} taken to end on {end.isoformat()}, when "
            f"its supply ran out ({why}).",
            course.ref,
        )
    return TkiStatement(
        course.ref,
        course.drug,
        status,
        course.start,
        end,
        course.daily_dose_mg,
        course.doses_per_day,
        course.stop_reason,
        course.reason_text,
        None,
        course.supplied_to if end is None and status is MedicationStatus.ACTIVE else None,
    )
