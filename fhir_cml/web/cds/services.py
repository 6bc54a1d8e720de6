"""The CDS services fhir-cml offers, as the discovery endpoint lists them.

- ``cml-monitoring`` on ``patient-view``: the response reading of a CML patient whose chart is
  opened, with the suggestions as a draft CarePlan the clinician can add.
- ``cml-tki-order`` on ``order-select`` (and accepted on ``order-sign`` too), and
  ``cml-tki-order-sign`` on ``order-sign``: checks of TKI MedicationRequests being ordered. A
  discovery entry names one hook, hence two entries for the same checks.

Prefetch templates ask for what the inbound reader reads, by code, so that an EHR sends the
relevant results and not every Observation of the chart. MedicationStatements and
MedicationRequests (US Core has no MedicationStatement) are asked for without a code filter: the strong CYP3A4 inhibitors and inducers taken alongside a TKI matter
as much as the TKI itself, and statements that name their drug by reference carry no code.
Every search asks for a page large enough for a whole CML record (``_count``), results newest
first (``_sort=-date``): the specification wants prefetch in one page, and a reading is made
only from complete data (:mod:`fhir_cml.web.cds.data` checks).

A site whose laboratory sends its own codes (``FHIR_CML_CONCEPT_MAPS``) gets templates that ask
for those codes too (:func:`for_site`); with a terminology server, whose maps are not known in
advance, the Observation templates ask for every result of the patient.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound.codes import BCR_ABL1_KINDS, OBSERVATION_CODES, Kind

PATIENT_VIEW: Final = "patient-view"
ORDER_SELECT: Final = "order-select"
ORDER_SIGN: Final = "order-sign"


# A site's own Observation codes and the code fhir-cml reads that each stands for.
LocalCodes = Mapping[tuple[str, str], tuple[str, str]]


def _kind(system: str, code: str) -> Kind | None:
    return OBSERVATION_CODES.get(code, {}).get(system)


def _codes(kinds: Iterable[Kind], local: LocalCodes) -> str:
    wanted = set(kinds)
    pairs = {
        (system, code)
        for code, systems in OBSERVATION_CODES.items()
        for system, kind in systems.items()
        if kind in wanted
    }
    pairs |= {source for source, target in local.items() if _kind(*target) in wanted}
    return ",".join(f"{system}|{code}" for system, code in sorted(pairs))


# Large enough for a whole CML record in one page (as the specification wants prefetch); a
# server that caps pages lower answers with a `next` link, which is followed or reported.
PAGE_SIZE: Final = 1000


def search(resource_type: str, criteria: str, *, newest_first: bool = False) -> str:
    """A prefetch search template: the criteria, newest first if asked, and the page size."""
    sort = "&_sort=-date" if newest_first else ""
    return f"{resource_type}?{criteria}{sort}&_count={PAGE_SIZE}"


def _observations(kinds: Iterable[Kind], local: LocalCodes | None) -> str:
    """``local`` None: every Observation of the patient (a terminology server decides)."""
    if local is None:
        return search("Observation", "patient={{context.patientId}}", newest_first=True)
    return search(
        "Observation",
        "patient={{context.patientId}}&code=" + _codes(kinds, local),
        newest_first=True,
    )


_BCR_KINDS: Final = {*BCR_ABL1_KINDS, Kind.TRANSCRIPT}
_OTHER_KINDS: Final = set(Kind) - _BCR_KINDS - {Kind.TROUGH}

PATIENT: Final = "Patient/{{context.patientId}}"
MEDICATIONS: Final = search("MedicationStatement", "patient={{context.patientId}}")
# US Core records medications as MedicationRequests. Plain searches only (the recommended
# prefetch subset has no _include): a referenced Medication falls back to the reference's display.
MEDICATION_REQUESTS: Final = search("MedicationRequest", "patient={{context.patientId}}")
CONDITIONS: Final = search("Condition", "patient={{context.patientId}}")


def monitoring_prefetch(local: LocalCodes | None = None) -> dict[str, str]:
    """``local``: the site's own codes to ask for too (None: every Observation)."""
    return {
        "patient": PATIENT,
        "bcrAbl1": _observations(_BCR_KINDS, local),
        "troughs": _observations([Kind.TROUGH], local),
        "otherResults": _observations(_OTHER_KINDS, local),
        "medications": MEDICATIONS,
        "medicationRequests": MEDICATION_REQUESTS,
        "conditions": CONDITIONS,
        "adverseEvents": search("AdverseEvent", "subject=Patient/{{context.patientId}}"),
    }


def order_prefetch(local: LocalCodes | None = None) -> dict[str, str]:
    return {
        "patient": PATIENT,
        "mutations": _observations([Kind.MUTATION], local),
        "medications": MEDICATIONS,
        "medicationRequests": MEDICATION_REQUESTS,
        "conditions": CONDITIONS,
    }


MONITORING_PREFETCH: Final = monitoring_prefetch({})
ORDER_PREFETCH: Final = order_prefetch({})
# What each prefetch key holds, in words for a clinician (cards that say what is missing).
KEY_LABELS: Final = {
    "patient": "the patient's record (age, sex)",
    "bcrAbl1": "BCR::ABL1 results",
    "troughs": "imatinib trough levels",
    "otherResults": "blood counts, cytogenetics and other results",
    "medications": "medications (statements)",
    "medicationRequests": "medication orders and prescriptions",
    "conditions": "diagnoses",
    "adverseEvents": "adverse events",
    "mutations": "kinase-domain mutation results",
}
# The keys whose data tell whether a patient has CML (a CML diagnosis or a BCR::ABL1 result).
EVIDENCE_KEYS: Final = frozenset({"conditions", "bcrAbl1"})


def key_label(key: str) -> str:
    return KEY_LABELS.get(key, key)


@dataclass(frozen=True, slots=True)
class Service:
    """One CDS service: its discovery entry, and the hooks its endpoint accepts."""

    id: str
    hook: str
    title: str
    description: str
    prefetch: Mapping[str, str]
    accepts: frozenset[str] = field(default_factory=frozenset)
    usage: str | None = None

    def discovery(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "hook": self.hook,
            "title": self.title,
            "description": self.description,
            "id": self.id,
            "prefetch": dict(self.prefetch),
        }
        if self.usage:
            entry["usageRequirements"] = self.usage
        return entry

    def takes(self, hook: str) -> bool:
        return hook == self.hook or hook in self.accepts


_USAGE: Final = (
    "Prefetch as listed, or pass fhirServer and fhirAuthorization (read scopes for the prefetch "
    "resource types); every call carries a JWT signed by an allow-listed issuer."
)
_ORDER_DESCRIPTION: Final = (
    "Checks TKI MedicationRequests being ordered: a dose escalation while T315I is present, a "
    "TKI alongside a strong CYP3A4 inhibitor or inducer, imatinib above 800 mg/day."
)


def _services(local: LocalCodes | None) -> dict[str, Service]:
    return {
        s.id: s
        for s in (
            Service(
                id="cml-monitoring",
                hook=PATIENT_VIEW,
                title="CML response monitoring (ELN)",
                description=(
                    "Reads a CML patient's BCR::ABL1 results, TKI therapy and trough levels "
                    "against the ELN milestones and suggests the next steps (a draft CarePlan to "
                    "add)."
                ),
                prefetch=monitoring_prefetch(local),
                usage=_USAGE,
            ),
            Service(
                id="cml-tki-order",
                hook=ORDER_SELECT,
                title="CML TKI order checks",
                description=_ORDER_DESCRIPTION + " Also accepts order-sign calls.",
                prefetch=order_prefetch(local),
                accepts=frozenset({ORDER_SIGN}),
                usage=_USAGE,
            ),
            Service(
                id="cml-tki-order-sign",
                hook=ORDER_SIGN,
                title="CML TKI order checks at signing",
                description=_ORDER_DESCRIPTION,
                prefetch=order_prefetch(local),
                usage=_USAGE,
            ),
        )
    }


# The services with the codes fhir-cml reads (a site without local codes).
SERVICES: Final = _services({})


def for_site(local: LocalCodes | None) -> dict[str, Service]:
    """The services of a site: ``local`` its ConceptMaps' codes ({} none; None every result)."""
    return SERVICES if local is not None and not local else _services(local)


# A coding for the source.topic of cards: what the card is about.
MONITORING_TOPIC: Final = {
    "system": c.CS_CML,
    "code": c.CML_ASSESSMENT,
    "display": "CML response assessment",
}


def discovery(services: Mapping[str, Service] = SERVICES) -> dict[str, Any]:
    """The body of ``GET /cds-services``."""
    return {"services": [s.discovery() for s in services.values()]}
