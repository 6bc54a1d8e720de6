"""The onboarding survey's reading of a FHIR server: the CML population found every way fhir-cml
knows (Condition, TKI record, BCR::ABL1 result), and everything of theirs it might read - every
Observation, not only the codes fhir-cml knows, so the survey can say what else is sent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final

from fhir_cml.ehr.client import FhirClient
from fhir_cml.ehr.fetch import (
    DEFAULT_FETCH,
    FetchOptions,
    Population,
    batches,
    fetch_patients,
    find_population,
)
from fhir_cml.errors import FhirClientError

OPTIONAL_TYPES: Final = ("MedicationDispense", "MedicationAdministration")


def survey_resources(
    client: FhirClient, options: FetchOptions = DEFAULT_FETCH
) -> tuple[list[dict[str, Any]], list[str]]:
    """The population's resources, and what could not be searched (a type the server lacks)."""
    problems: list[str] = []
    extra: list[str] = []
    for resource_type in OPTIONAL_TYPES:
        try:
            next(iter(client.search(resource_type, [("_count", "1")])), None)
        except FhirClientError as err:
            problems.append(
                f"{resource_type} cannot be searched here ({err.message}): not surveyed."
            )
        else:
            extra.append(resource_type)
    wide = replace(options, observation_codes=None, elements=False, extra_types=tuple(extra))
    population = sorted(find_population(client, tuple(Population), options))
    resources: list[dict[str, Any]] = []
    for batch in batches(population, wide):
        for inputs in fetch_patients(client, batch, wide).values():
            resources.extend(inputs.resources)
    return _unique(resources), problems


def _unique(resources: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A Medication named by several patients' records is one resource."""
    seen: set[tuple[str, str]] = set()
    out: list[dict[str, Any]] = []
    for resource in resources:
        rid = resource.get("id")
        key = (str(resource.get("resourceType")), str(rid))
        if isinstance(rid, str) and key in seen:
            continue
        seen.add(key)
        out.append(resource)
    return out
