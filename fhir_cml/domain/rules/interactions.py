"""Strong CYP3A4 inhibitors and inducers taken alongside a TKI.

Imatinib is metabolised mainly by CYP3A4: strong inhibitors raise exposure, strong inducers lower
it (Glivec summary of product characteristics, section 4.5; rule `cyp3a4-interactions` in
docs/rules.md). The list below is the one the sources name; the FHIR adapters map medication
codes to these names.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from fhir_cml.domain.basis import basis
from fhir_cml.domain.findings import Finding
from fhir_cml.domain.model import OtherMedication
from fhir_cml.domain.results import Interaction
from fhir_cml.domain.rules.catalogue import INTERACTIONS
from fhir_cml.domain.vocabulary import Cyp3a4Effect, MedicationStatus, Tki

STRONG_CYP3A4: dict[str, Cyp3a4Effect] = {
    "ketoconazole": Cyp3a4Effect.STRONG_INHIBITOR,
    "itraconazole": Cyp3a4Effect.STRONG_INHIBITOR,
    "posaconazole": Cyp3a4Effect.STRONG_INHIBITOR,
    "voriconazole": Cyp3a4Effect.STRONG_INHIBITOR,
    "clarithromycin": Cyp3a4Effect.STRONG_INHIBITOR,
    "ritonavir": Cyp3a4Effect.STRONG_INHIBITOR,
    "cobicistat": Cyp3a4Effect.STRONG_INHIBITOR,
    "grapefruit": Cyp3a4Effect.STRONG_INHIBITOR,
    "rifampicin": Cyp3a4Effect.STRONG_INDUCER,
    "carbamazepine": Cyp3a4Effect.STRONG_INDUCER,
    "phenytoin": Cyp3a4Effect.STRONG_INDUCER,
    "phenobarbital": Cyp3a4Effect.STRONG_INDUCER,
    "st john's wort": Cyp3a4Effect.STRONG_INDUCER,
    "enzalutamide": Cyp3a4Effect.STRONG_INDUCER,
}

_TAKEN = {MedicationStatus.ACTIVE, MedicationStatus.ON_HOLD, MedicationStatus.UNKNOWN}


def current_interactions(
    medications: Sequence[OtherMedication], tki: Tki | None, as_of: date
) -> list[Interaction]:
    if tki is None:
        return []
    out: list[Interaction] = []
    for med in medications:
        if not _taken_on(med, as_of):
            continue
        out.append(
            Interaction(
                med.name,
                med.effect.value,
                med.ref,
                basis(
                    INTERACTIONS,
                    Finding.CYP3A4_INTERACTION,
                    (med.ref,),
                    medication=med.name,
                    since=med.start,
                    effect=med.effect,
                    tki=tki,
                ),
            )
        )
    return out


def _taken_on(med: OtherMedication, as_of: date) -> bool:
    if med.start is not None and med.start > as_of:
        return False
    if med.end is not None:
        return med.end >= as_of and med.status not in (
            MedicationStatus.ENTERED_IN_ERROR,
            MedicationStatus.NOT_TAKEN,
        )
    return med.status in _TAKEN
