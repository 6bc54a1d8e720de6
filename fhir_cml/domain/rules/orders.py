"""Checks of a TKI being ordered, against the patient's record (CDS Hooks order-select/-sign).

- ``t315i-no-escalation``: T315I detected (and not cleared by a later negative analysis) and a
  higher daily dose of the current imatinib or second-generation TKI ordered: critical;
- ``dose-escalation``: imatinib ordered above the highest escalation step (800 mg/day): critical;
- ``cyp3a4-interactions``: a TKI ordered while a strong CYP3A4 inhibitor or inducer is taken (or
  ordered with it): warning.

The web face reads the orders (FHIR) and words the checks; what to check lives here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from fhir_cml.domain.basis import Basis, Dose, Params, basis
from fhir_cml.domain.findings import Finding
from fhir_cml.domain.model import MutationResult, OtherMedication
from fhir_cml.domain.results import Interaction, Therapy
from fhir_cml.domain.rule import Rule
from fhir_cml.domain.rules import catalogue as rules
from fhir_cml.domain.rules.interactions import current_interactions
from fhir_cml.domain.rules.policies import MAX_IMATINIB_MG
from fhir_cml.domain.rules.switching import T315I_RESISTANT
from fhir_cml.domain.vocabulary import Cyp3a4Effect, Recommendation, TherapyStatus, Tki


class Concern(StrEnum):
    CRITICAL = "critical"  # the order should not go ahead as written
    WARNING = "warning"  # review before it goes ahead


@dataclass(frozen=True, slots=True)
class OrderedTki:
    """One TKI order: the drug, its daily dose where known, and where it came from."""

    ref: str
    drug: Tki
    daily_dose_mg: float | None = None


@dataclass(frozen=True, slots=True)
class OrderCheck:
    """What a check found about one order: the summary as a finding, and its bases."""

    rule: Rule
    concern: Concern
    finding: Finding
    params: Params
    basis: tuple[Basis, ...]
    topic: Recommendation
    remove_order: bool = False


def check_order(
    order: OrderedTki,
    therapy: Therapy,
    mutations: Sequence[MutationResult],
    co_medications: Sequence[OtherMedication],
    as_of: date,
) -> list[OrderCheck]:
    """Every check that applies to one TKI order, most urgent first."""
    found: list[OrderCheck] = []
    t315i = latest_t315i(mutations, as_of)
    if t315i is not None:
        escalation = t315i_escalation(order, therapy, t315i)
        if escalation is not None:
            found.append(escalation)
    ceiling = above_highest_step(order)
    if ceiling is not None:
        found.append(ceiling)
    taken = current_interactions(co_medications, order.drug, as_of)
    if taken:
        found.append(interaction(order, taken))
    return sorted(found, key=lambda c: c.concern is not Concern.CRITICAL)


def latest_t315i(mutations: Sequence[MutationResult], as_of: date) -> MutationResult | None:
    """The latest T315I finding, unless a later analysis found no mutation."""
    known = sorted((m for m in mutations if m.date <= as_of), key=lambda m: m.date)
    found: MutationResult | None = None
    for m in known:
        if m.detected and m.mutation == "T315I":
            found = m
        elif not m.detected and found is not None and m.date > found.date:
            found = None
    return found


def t315i_escalation(
    order: OrderedTki, therapy: Therapy, t315i: MutationResult
) -> OrderCheck | None:
    """A higher dose of the TKI the patient takes, ordered although T315I resists it."""
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
    ordered = Dose(order.daily_dose_mg)
    return OrderCheck(
        rules.T315I,
        Concern.CRITICAL,
        Finding.ORDER_T315I_ESCALATION,
        (("drug", order.drug), ("ordered", ordered)),
        (
            basis(
                rules.T315I,
                Finding.MUTATION_DETECTED,
                (t315i.ref,),
                mutation="T315I",
                date=t315i.date,
            ),
            basis(
                rules.T315I,
                Finding.T315I_DOSE_DOES_NOT_HELP,
                (order.ref, *therapy.evidence[-1:]),
                drug=order.drug,
                current=Dose(current),
                ordered=ordered,
            ),
        ),
        Recommendation.SWITCH_TKI,
        remove_order=True,
    )


def above_highest_step(order: OrderedTki) -> OrderCheck | None:
    """Imatinib above the highest escalation step."""
    if order.drug is not Tki.IMATINIB or (order.daily_dose_mg or 0.0) <= MAX_IMATINIB_MG:
        return None
    ordered = Dose(order.daily_dose_mg or 0.0)
    return OrderCheck(
        rules.ESCALATION,
        Concern.CRITICAL,
        Finding.ORDER_ABOVE_HIGHEST_STEP,
        (("ordered", ordered), ("highest", Dose(MAX_IMATINIB_MG))),
        (
            basis(
                rules.ESCALATION,
                Finding.BEYOND_HIGHEST_STEP,
                (order.ref,),
                ordered=ordered,
                highest=Dose(MAX_IMATINIB_MG),
            ),
        ),
        Recommendation.ESCALATE_DOSE,
        remove_order=True,
    )


def interaction(order: OrderedTki, taken: Sequence[Interaction]) -> OrderCheck:
    """A TKI ordered alongside strong CYP3A4 inhibitors or inducers."""
    effects = {i.effect for i in taken}
    if effects >= {Cyp3a4Effect.STRONG_INHIBITOR.value, Cyp3a4Effect.STRONG_INDUCER.value}:
        effect = "changes"
    elif Cyp3a4Effect.STRONG_INHIBITOR.value in effects:
        effect = "raises"
    else:
        effect = "lowers"
    names = tuple(sorted({i.medication for i in taken}))
    return OrderCheck(
        rules.INTERACTIONS,
        Concern.WARNING,
        Finding.ORDER_INTERACTION,
        (("drug", order.drug), ("medications", names), ("effect", effect)),
        tuple(i.basis for i in taken),
        Recommendation.REVIEW_INTERACTIONS,
    )
