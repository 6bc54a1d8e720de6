"""fhir-cml: CML response readings and care-plan suggestions from FHIR R4 data.

The public surface is small: :func:`fhir_cml.domain.assess` for the pure engine,
:mod:`fhir_cml.fhir` for reading and writing FHIR, and :mod:`fhir_cml.errors` for exceptions.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
