"""Identity of what fhir-cml writes: the assessment fingerprint, identifiers and fullUrls.

Re-running an assessment must not pile up copies on the server. The fingerprint hashes only what
the conclusions rest on and what they are (docs/outbound.md, "Identity and idempotency"), never
texts or the as-of date, so the same data read on another day yields the same identifiers unless a
conclusion changed; conditional creates on those identifiers then make a re-run a no-op.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any, Final

from fhir_cml import __version__
from fhir_cml.domain.results import Assessment
from fhir_cml.domain.rules.catalogue import RULESET_VERSION
from fhir_cml.fhir.canonical import (
    BASE,
    DEVICE_IDENTIFIER,
    ID_ASSESSMENT,
    ID_CARE_PLAN,
    ID_REQUEST,
    URI_IDENTIFIER,
)

SOFTWARE_NAME: Final = "fhir-cml"
# Every fullUrl fhir-cml mints is a UUIDv5 in this namespace, so it is a function of its name.
NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, BASE)


def fingerprint(assessment: Assessment) -> str:
    """SHA-256 (hex) over the patient, rule version, guideline, inputs and coded conclusions."""
    a = assessment
    payload = {
        "patient": a.patient,
        "ruleset_version": a.ruleset_version,
        "guideline": a.guideline.value,
        "inputs": sorted(a.inputs),
        "molecular_response": a.molecular_response.depth.value,
        "eln": [a.eln.status.value, a.eln.milestone.value if a.eln.milestone else None],
        "tfr": a.tfr.status.value,
        "tdm": a.tdm.status.value,
        "next_pcr_due": _iso(a.monitoring.next_pcr_due),
        "pcr_overdue": a.monitoring.overdue,
        "recommendations": sorted(s.code.value for s in a.recommendations),
        "risk_scores": {s.name: s.category.value for s in a.risk_scores},
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def identifier(system: str, value: str) -> dict[str, Any]:
    return {"system": system, "value": value}


def full_url(name: str) -> str:
    """A ``urn:uuid:`` fullUrl derived (UUIDv5) from a name such as ``system|value``."""
    return f"urn:uuid:{uuid.uuid5(NAMESPACE, name)}"


def if_none_exist(system: str, value: str, parameter: str = "identifier") -> str:
    """The search that makes a POST conditional (``If-None-Exist``)."""
    return f"{parameter}={system}|{value}"


@dataclass(frozen=True, slots=True)
class OutboundIds:
    """Identifiers and fullUrls of the resources written for one assessment."""

    fingerprint: str
    risk_assessment: str  # fullUrl
    care_plan: str
    provenance: str
    outcome: str

    @classmethod
    def of(cls, assessment: Assessment) -> OutboundIds:
        fp = fingerprint(assessment)
        return cls(
            fp,
            full_url(f"{ID_ASSESSMENT}|{fp}"),
            full_url(f"{ID_CARE_PLAN}|{fp}"),
            full_url(f"Provenance|{ID_ASSESSMENT}|{fp}"),
            full_url(f"OperationOutcome|{ID_ASSESSMENT}|{fp}"),
        )

    @property
    def assessment_identifier(self) -> dict[str, Any]:
        return identifier(ID_ASSESSMENT, self.fingerprint)

    @property
    def care_plan_identifier(self) -> dict[str, Any]:
        return identifier(ID_CARE_PLAN, self.fingerprint)

    def request_identifier(self, what: str) -> dict[str, Any]:
        """The identifier of the request proposing ``what`` (fhir_cml.fhir.outbound.requests)."""
        return identifier(ID_REQUEST, f"{self.fingerprint}-{what}")

    def request(self, what: str) -> str:
        """The fullUrl of that request."""
        return full_url(f"{ID_REQUEST}|{self.fingerprint}-{what}")


def software(ruleset_version: str = RULESET_VERSION) -> dict[str, Any]:
    """The Reference naming this software as performer, author and Provenance agent."""
    return {
        "identifier": identifier(DEVICE_IDENTIFIER, SOFTWARE_NAME),
        "display": f"{SOFTWARE_NAME} {__version__} (rules {ruleset_version})",
    }


def reference(ref: str) -> dict[str, Any]:
    """A literal Reference: for what fhir-cml itself names (fullUrls of the same Bundle)."""
    return {"reference": ref}


def input_reference(ref: str) -> dict[str, Any]:
    """A Reference to an input, in the form the receiving server can use.

    ``Type/id`` and absolute ``.../Type/id`` stay literal. A ``urn:uuid:`` meant something only
    inside the Bundle it was read from, so it becomes a logical reference (identifier with the
    URI system) rather than a dangling literal one. Anything else is a label the reader gave a
    resource without identity ("Observation (labs.json entry 3)") and is kept as display.
    """
    if resource_type(ref) is not None:
        return {"reference": ref}
    if ref.startswith("urn:"):
        return {"identifier": identifier(URI_IDENTIFIER, ref)}
    return {"display": ref}


def resource_type(ref: str) -> str | None:
    """The resource type a literal reference names, or None (``urn:uuid:`` names none).

    Accepts relative (``Observation/1``), absolute and versioned (``.../Observation/1/_history/2``)
    references.
    """
    if ref.startswith(("urn:", "#")):
        return None
    kind, slash, rest = ref.partition("/")
    if slash and rest and "/" not in rest:  # relative Type/id, by far the most common
        return kind if kind[:1].isupper() and kind.isalpha() else None
    parts = [p for p in ref.split("/") if p]
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) < 2:
        return None
    kind = parts[-2]
    return kind if kind[:1].isupper() and kind.isalpha() else None


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
