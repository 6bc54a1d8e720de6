"""One patient's resources to one assessment, as the web faces need it.

Reading goes through the inbound reader (``records_from_resources``, which never raises for bad
content) with the service's settings; choosing the one patient and assessing it are the
application service's (:mod:`fhir_cml.app`), as for every face.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from fhir_cml.app.assessing import assess_one, load_rule_config, one_patient
from fhir_cml.domain import Assessment, Guideline, PatientRecord, RuleConfig
from fhir_cml.fhir.inbound import LoadResult, MappingOptions, records_from_resources
from fhir_cml.web.settings import Settings
from fhir_cml.web.terminology import site_terminology


def today() -> date:
    """The default as-of date: today in UTC (as ``fhir-cml sync`` does)."""
    return datetime.now(UTC).date()


def options(settings: Settings, now: datetime) -> MappingOptions:
    """How the inbound reader reads a request's resources (``now``: the moment of reading),
    with the site's ConceptMaps and terminology server when the app has them."""
    return MappingOptions(
        now=now,
        conversion_factor=settings.conversion_factor,
        max_json_bytes=settings.max_content_length,
        terminology=site_terminology(),
    )


def load(resources: Iterable[Any], settings: Settings, now: datetime) -> LoadResult:
    return records_from_resources(resources, options(settings, now))


def only_patient(loaded: LoadResult, patient: str | None = None) -> PatientRecord:
    """The one CML patient of the input (``patient`` when given); 422 when there is not one."""
    return one_patient(loaded, patient)


def assess_record(
    record: PatientRecord, as_of: date, guideline: Guideline, settings: Settings
) -> Assessment:
    """The assessment of ``record`` with the site's rule settings; a rule that raises is an
    internal error (500)."""
    return assess_one(record, as_of, guideline, rule_config(settings))


def rule_config(settings: Settings) -> RuleConfig:
    """The site's rule settings (FHIR_CML_RULES_CONFIG), read once (checked at start-up)."""
    return _rules(str(settings.rules_config) if settings.rules_config else None)


@lru_cache(maxsize=8)
def _rules(path: str | None) -> RuleConfig:
    return load_rule_config(path)
