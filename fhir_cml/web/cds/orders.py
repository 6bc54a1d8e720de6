"""Checks of TKI orders (``order-select``/``order-sign``) against the patient's record.

The orders are read by the inbound mapper, not parsed again here: each MedicationRequest is
handed to it as the MedicationStatement it would become (same medication fields, its
``dosageInstruction`` as ``dosage``), so drug identification (RxNorm, ATC, names, Medication
references) and the daily dose (mg or tablets of a known strength, times the doses per day) are
the ones every other input gets. What is checked (T315I, the highest imatinib step, CYP3A4
interactions) is the domain's: :mod:`fhir_cml.domain.rules.orders`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from fhir_cml.domain.basis import Basis
from fhir_cml.domain.model import Issue, OtherMedication, PatientRecord
from fhir_cml.domain.rules.orders import OrderedTki, check_order
from fhir_cml.domain.rules.therapy import build_therapy
from fhir_cml.domain.vocabulary import MedicationStatus, Recommendation, Tki
from fhir_cml.fhir.inbound import MappingOptions, map_patient
from fhir_cml.reporting import sentence
from fhir_cml.web.cds.hook_request import HookCall

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
    """The findings about the selected TKI orders, most urgent first (the checks are the
    domain's: :func:`fhir_cml.domain.rules.orders.check_order`)."""
    therapy, _ = build_therapy(record.tki, as_of)
    drafted_others = [_taken_from(o.other, as_of) for o in orders if o.other is not None]
    co_medications = [*record.other_medications, *drafted_others]
    findings: list[Finding] = []
    for order in orders:
        if order.drug is None or not order.selected:
            continue
        ordered = OrderedTki(order.ref, order.drug, order.daily_dose_mg)
        for found in check_order(ordered, therapy, record.mutations, co_medications, as_of):
            findings.append(
                Finding(
                    found.rule.id,
                    found.concern.value,
                    sentence(found.finding, found.params),
                    order,
                    found.basis,
                    found.topic,
                    found.remove_order,
                )
            )
    order_rank = {"critical": 0, "warning": 1, "info": 2}
    return sorted(findings, key=lambda f: order_rank[f.indicator])


def _taken_from(other: OtherMedication, as_of: date) -> OtherMedication:
    """An ordered co-medication counts as taken from the day of the order."""
    return OtherMedication(other.ref, other.name, MedicationStatus.ACTIVE, other.effect, as_of)
