"""Checks of TKI orders (``order-select``/``order-sign``) against the patient's record.

The orders are read by the inbound mapper, not parsed again here: each MedicationRequest is
handed to it as the MedicationStatement it would become (same medication fields, its
``dosageInstruction`` as ``dosage``), so drug identification (RxNorm, ATC, names, Medication
references) and the daily dose (mg or tablets of a known strength, times the doses per day) are
the ones every other input gets. The checks use the domain's rules and their sources:

- ``t315i-no-escalation``: T315I detected and a higher daily dose of the current imatinib or
  second-generation TKI ordered (critical);
- ``cyp3a4-interactions``: a TKI ordered while a strong CYP3A4 inhibitor or inducer is taken, or
  ordered in the same session (warning);
- ``dose-escalation``: imatinib ordered above 800 mg/day, the highest escalation step (critical).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from fhir_cml.domain.model import Issue, MutationResult, OtherMedication, PatientRecord
from fhir_cml.domain.results import Basis, Therapy
from fhir_cml.domain.rules import catalogue as rules
from fhir_cml.domain.rules.interactions import current_interactions
from fhir_cml.domain.rules.recommend import MAX_IMATINIB_MG
from fhir_cml.domain.rules.therapy import build_therapy
from fhir_cml.domain.vocabulary import (
    Cyp3a4Effect,
    MedicationStatus,
    Recommendation,
    TherapyStatus,
    Tki,
)
from fhir_cml.fhir.inbound import MappingOptions, map_patient
from fhir_cml.web.cds.hook_request import HookCall

# T315I resists imatinib and the second-generation TKIs; ponatinib and asciminib act on it.
T315I_RESISTANT: Final = frozenset({Tki.IMATINIB, Tki.DASATINIB, Tki.NILOTINIB, Tki.BOSUTINIB})
_STOPPED: Final = frozenset({"entered-in-error", "cancelled", "revoked", "completed", "stopped"})
_ORDER_ID: Final = "cds-order-"


@dataclass(frozen=True, slots=True)
class Order:
    """One MedicationRequest of the session, as the mapper read it."""

    ref: str
    drug: Tki | None = None
    other: OtherMedication | None = None
    daily_dose_mg: float | None = None
    selected: bool = True
    issues: tuple[Issue, ...] = ()

    @property
    def label(self) -> str:
        dose = f" {self.daily_dose_mg:g} mg/day" if self.daily_dose_mg is not None else ""
        return f"{self.drug.value if self.drug else 'medication'}{dose}"


@dataclass(frozen=True, slots=True)
class Finding:
    """What a card says about one order."""

    check: str  # the rule id
    indicator: str
    summary: str
    order: Order
    basis: tuple[Basis, ...]
    topic: Recommendation
    remove_order: bool = False


def read_orders(
    call: HookCall, resources: Sequence[dict[str, Any]], options: MappingOptions, as_of: date
) -> tuple[PatientRecord, list[Order]]:
    """The patient's record (from the prefetch) and the session's medication orders."""
    record = map_patient(call.patient_key, list(resources), options)
    drafts = [r for r in call.draft_orders() if r.get("resourceType") == "MedicationRequest"]
    medications = [r for r in call.draft_orders() if r.get("resourceType") == "Medication"]
    medications += [r for r in resources if r.get("resourceType") == "Medication"]
    selected = call.selections()
    statements: list[dict[str, Any]] = []
    refs: dict[str, tuple[str, bool]] = {}
    for number, request in enumerate(drafts):
        status = request.get("status")
        if isinstance(status, str) and status in _STOPPED:
            continue
        rid = request.get("id")
        ref = (
            f"MedicationRequest/{rid}"
            if isinstance(rid, str) and rid
            else f"draft order {number + 1}"
        )
        key = f"{_ORDER_ID}{number}"
        refs[f"MedicationStatement/{key}"] = (ref, selected is None or ref in selected)
        statements.append(_as_statement(request, key, call.patient_key, as_of))
    mapped = map_patient(call.patient_key, [*medications, *statements], options)
    orders: list[Order] = []
    for statement in mapped.tki:
        ref, chosen = refs.get(statement.ref, (statement.ref, True))
        orders.append(
            Order(
                ref,
                drug=statement.drug,
                daily_dose_mg=statement.daily_dose_mg,
                selected=chosen,
                issues=tuple(i for i in mapped.issues if i.resource == statement.ref),
            )
        )
    for other in mapped.other_medications:
        ref, chosen = refs.get(other.ref, (other.ref, True))
        orders.append(Order(ref, other=other, selected=chosen))
    return record, orders


def _as_statement(request: dict[str, Any], key: str, patient: str, as_of: date) -> dict[str, Any]:
    """The MedicationStatement a MedicationRequest would become, for the inbound mapper."""
    statement: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": key,
        "status": MedicationStatus.ACTIVE.value,
        "subject": {"reference": patient},
        "effectivePeriod": {"start": as_of.isoformat()},
    }
    for name in ("medicationCodeableConcept", "medicationReference", "contained"):
        if name in request:
            statement[name] = request[name]
    if "dosageInstruction" in request:
        statement["dosage"] = request["dosageInstruction"]
    return statement


def check(record: PatientRecord, orders: Sequence[Order], as_of: date) -> list[Finding]:
    """The findings about the selected TKI orders, most urgent first."""
    therapy, _ = build_therapy(record.tki, as_of)
    t315i = _t315i(record.mutations, as_of)
    drafted_others = [_taken_from(o.other, as_of) for o in orders if o.other is not None]
    findings: list[Finding] = []
    for order in orders:
        if order.drug is None or not order.selected:
            continue
        if t315i is not None:
            found = _escalation(order, therapy, t315i)
            if found is not None:
                findings.append(found)
        if order.drug is Tki.IMATINIB and (order.daily_dose_mg or 0) > MAX_IMATINIB_MG:
            findings.append(_above_maximum(order))
        interactions = current_interactions(
            [*record.other_medications, *drafted_others], order.drug, as_of
        )
        if interactions:
            findings.append(_interaction(order, interactions))
    order_rank = {"critical": 0, "warning": 1, "info": 2}
    return sorted(findings, key=lambda f: order_rank[f.indicator])


def _taken_from(other: OtherMedication, as_of: date) -> OtherMedication:
    """An ordered co-medication counts as taken from the day of the order."""
    return OtherMedication(other.ref, other.name, MedicationStatus.ACTIVE, other.effect, as_of)


def _t315i(mutations: Sequence[MutationResult], as_of: date) -> MutationResult | None:
    """The latest T315I finding, unless a later analysis found no mutation."""
    known = sorted((m for m in mutations if m.date <= as_of), key=lambda m: m.date)
    found: MutationResult | None = None
    for m in known:
        if m.detected and m.mutation == "T315I":
            found = m
        elif not m.detected and found is not None and m.date > found.date:
            found = None
    return found


def _escalation(order: Order, therapy: Therapy, t315i: MutationResult) -> Finding | None:
    assert order.drug is not None
    current = therapy.daily_dose_mg
    if (
        order.drug not in T315I_RESISTANT
        or therapy.drug is not order.drug
        or therapy.status not in (TherapyStatus.ACTIVE, TherapyStatus.INTERRUPTED)
        or current is None
        or order.daily_dose_mg is None
        or order.daily_dose_mg <= current
    ):
        return None
    drug = order.drug.value
    return Finding(
        rules.T315I.id,
        "critical",
        f"T315I present: {drug} escalation to {order.daily_dose_mg:g} mg/day ordered - "
        "escalation does not overcome T315I",
        order,
        (
            Basis(rules.T315I, f"T315I detected on {t315i.date.isoformat()}.", (t315i.ref,)),
            Basis(
                rules.T315I,
                f"{drug.capitalize()} {current:g} mg/day now; {order.daily_dose_mg:g} mg/day "
                "ordered. T315I confers resistance that a higher dose does not overcome: switch "
                "to a TKI active against T315I, guided by the mutation profile.",
                (order.ref, *therapy.evidence[-1:]),
            ),
        ),
        Recommendation.SWITCH_TKI,
        remove_order=True,
    )


def _above_maximum(order: Order) -> Finding:
    dose = order.daily_dose_mg or 0.0
    return Finding(
        rules.ESCALATION.id,
        "critical",
        f"Imatinib {dose:g} mg/day ordered: above the {MAX_IMATINIB_MG:g} mg/day maximum",
        order,
        (
            Basis(
                rules.ESCALATION,
                f"Escalation steps are 400 -> 600 -> 800 mg/day (400 mg twice daily); "
                f"{dose:g} mg/day is beyond the highest step.",
                (order.ref,),
            ),
        ),
        Recommendation.ESCALATE_DOSE,
        remove_order=True,
    )


def _interaction(order: Order, interactions: Sequence[Any]) -> Finding:
    assert order.drug is not None
    names = ", ".join(sorted({i.medication for i in interactions}))
    inhibitor = any(i.effect == Cyp3a4Effect.STRONG_INHIBITOR.value for i in interactions)
    inducer = any(i.effect == Cyp3a4Effect.STRONG_INDUCER.value for i in interactions)
    effect = "changes" if inhibitor and inducer else "raises" if inhibitor else "lowers"
    return Finding(
        rules.INTERACTIONS.id,
        "warning",
        f"{order.drug.value.capitalize()} ordered alongside {names}: strong CYP3A4 interaction "
        f"{effect} TKI exposure",
        order,
        tuple(i.basis for i in interactions),
        Recommendation.REVIEW_INTERACTIONS,
    )
