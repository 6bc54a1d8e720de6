"""From an :class:`~fhir_cml.domain.Assessment` to FHIR R4: what fhir-cml writes back.

docs/outbound.md is the specification; every module builds plain dicts and
:func:`validate` checks them against the FHIR R4 (R4B) models.
"""

from fhir_cml.fhir.outbound.bundle import (
    Written,
    build,
    result_bundle,
    standalone,
    transaction_bundle,
    transaction_entries,
)
from fhir_cml.fhir.outbound.care_plan import build_care_plan
from fhir_cml.fhir.outbound.identifiers import OutboundIds, fingerprint
from fhir_cml.fhir.outbound.operation_outcome import operation_outcome
from fhir_cml.fhir.outbound.provenance import build_provenance
from fhir_cml.fhir.outbound.risk_assessment import build_risk_assessment
from fhir_cml.fhir.outbound.supersede import Successor, supersede
from fhir_cml.fhir.outbound.validation import validate, validate_all

__all__ = [
    "OutboundIds",
    "Successor",
    "Written",
    "build",
    "build_care_plan",
    "build_provenance",
    "build_risk_assessment",
    "fingerprint",
    "operation_outcome",
    "result_bundle",
    "standalone",
    "supersede",
    "transaction_bundle",
    "transaction_entries",
    "validate",
    "validate_all",
]
