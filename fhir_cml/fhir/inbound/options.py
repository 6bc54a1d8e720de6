"""Settings for one reading run, shared by every mapping module."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from fhir_cml.fhir.inbound.loader import DEFAULT_MAX_JSON_BYTES

if TYPE_CHECKING:
    from fhir_cml.fhir.inbound.conceptmaps import Terminology


@dataclass(frozen=True)
class MappingOptions:
    """``now`` is the moment of reading: a result dated after it is a data error (future-date).

    ``conversion_factor`` is the clinic's IS conversion factor for non-IS BCR::ABL1 results that
    carry none of their own. ``terminology`` translates the site's local codes and units (its
    ConceptMaps, or its terminology server); None reads the codes fhir-cml knows only.
    """

    now: datetime
    conversion_factor: float | None = None
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES
    terminology: Terminology | None = None
