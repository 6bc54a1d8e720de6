"""One patient's resources to one assessment, as the web faces need it.

Reading goes through the inbound reader (``records_from_resources``, which never raises for bad
content) and assessing through :mod:`fhir_cml.app.assessing`, as on the command line. The web
faces take exactly one patient per call; :func:`only_patient` says, as a 422, why the input is
not that.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from fhir_cml.app.assessing import assess_loaded, why_nothing
from fhir_cml.domain import Assessment, Guideline, PatientRecord
from fhir_cml.errors import OperationOutcomeError, RequestError
from fhir_cml.fhir.inbound import LoadResult, MappingOptions, records_from_resources
from fhir_cml.fhir.outbound.operation_outcome import from_issue
from fhir_cml.web.settings import Settings


def today() -> date:
    """The default as-of date: today in UTC (as ``fhir-cml sync`` does)."""
    return datetime.now(UTC).date()


def options(settings: Settings, now: datetime) -> MappingOptions:
    """How the inbound reader reads a request's resources (``now``: the moment of reading)."""
    return MappingOptions(
        now=now,
        conversion_factor=settings.conversion_factor,
        max_json_bytes=settings.max_content_length,
    )


def load(resources: Iterable[Any], settings: Settings, now: datetime) -> LoadResult:
    return records_from_resources(resources, options(settings, now))


def only_patient(loaded: LoadResult, patient: str | None = None) -> PatientRecord:
    """The one CML patient of the input (``patient`` when given); 422 when there is not one."""
    others = [r.patient for r in loaded.records if patient is not None and r.patient != patient]
    if others:
        raise RequestError(
            f"The input has resources of other patients than {patient}; $cml-assess assesses "
            "one patient per call.",
            status=422,
            code="processing",
        )
    found = len(loaded.records) + loaded.skipped_patients
    if found > 1:
        raise RequestError(
            f"The input holds {found} patients ({len(loaded.records)} with CML evidence); "
            "$cml-assess assesses exactly one patient per call.",
            status=422,
            code="processing",
        )
    if not loaded.records:
        error = RequestError(
            f"Nothing to assess: {why_nothing(loaded)}", status=422, code="processing"
        )
        error.outcome["issue"] += [from_issue(i) for i in loaded.issues]
        raise error
    return loaded.records[0]


def assess_record(record: PatientRecord, as_of: date, guideline: Guideline) -> Assessment:
    """The assessment of ``record``; a rule that raises is an internal error (500)."""
    single = LoadResult(records=[record], issues=[])
    assessed = assess_loaded(single, as_of, guideline)
    if assessed.failed:
        _, exc = assessed.failed[0]
        raise OperationOutcomeError(
            f"The assessment failed ({type(exc).__name__}); please report it with the input.",
            code="exception",
            status=500,
        )
    return assessed.assessments[0]
