"""The pure domain core: the CML response model and its rules.

No I/O and no FHIR library here; the adapters in :mod:`fhir_cml.fhir` build a
:class:`PatientRecord` from FHIR resources and turn an :class:`Assessment` back into FHIR.
"""

from fhir_cml.domain.config import DEFAULT_CONFIG, RuleConfig
from fhir_cml.domain.engine import assess
from fhir_cml.domain.model import PatientRecord
from fhir_cml.domain.results import Assessment
from fhir_cml.domain.rules.catalogue import RULES, RULESET_VERSION
from fhir_cml.domain.vocabulary import Guideline

__all__ = [
    "DEFAULT_CONFIG",
    "RULES",
    "RULESET_VERSION",
    "Assessment",
    "Guideline",
    "PatientRecord",
    "RuleConfig",
    "assess",
]
