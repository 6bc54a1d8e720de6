"""Renderers of assessments and their structured bases.

- :mod:`~fhir_cml.reporting.words`: one sentence per basis, suggestion, prediction, issue
  (:func:`say`, :func:`suggestion_text`, ...); :mod:`~fhir_cml.reporting.sources`: citations.
- :mod:`~fhir_cml.reporting.contract`: the JSON contract (docs/outbound.md).
- :mod:`~fhir_cml.reporting.text`: plain text for clinicians (``--format text``).
- :mod:`~fhir_cml.reporting.markdown`: Markdown (CDS Hooks card details).
- :mod:`~fhir_cml.reporting.html`: HTML fragments and the one-line status summary.

This layer knows only the domain; the FHIR builders and the faces use it to word what they show.
"""

from fhir_cml.reporting.contract import (
    GENERATOR,
    LoadSummary,
    basis_item,
    issue_item,
    params,
    patient_contract,
    to_contract,
)
from fhir_cml.reporting.sources import citation_item, citation_text, source_text
from fhir_cml.reporting.summary import status_line
from fhir_cml.reporting.text import patient_text, to_text
from fhir_cml.reporting.words import (
    issue_message,
    number,
    pct,
    prediction_text,
    say,
    sentence,
    suggestion_text,
)

__all__ = [
    "GENERATOR",
    "LoadSummary",
    "basis_item",
    "citation_item",
    "citation_text",
    "issue_item",
    "issue_message",
    "number",
    "params",
    "patient_contract",
    "patient_text",
    "pct",
    "prediction_text",
    "say",
    "sentence",
    "source_text",
    "status_line",
    "suggestion_text",
    "to_contract",
    "to_text",
]
