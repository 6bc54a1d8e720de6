"""Read, assess, write: the steps every face takes between FHIR input and FHIR output.

The command line (``fhir-cml assess``), the sync job and the web faces ($cml-assess, CDS Hooks,
the SMART app) share these, so they read the same input the same way and say the same thing when
nothing can be assessed. The web faces take exactly one patient per call: :func:`one_patient`
says, as a 422, why the input is not that.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from fhir_cml.domain import DEFAULT_CONFIG, Assessment, Guideline, PatientRecord, RuleConfig, assess
from fhir_cml.domain.model import Issue
from fhir_cml.errors import ConfigurationError, OperationOutcomeError, RequestError
from fhir_cml.fhir.inbound import LoadResult

__all__ = [
    "Assessed",
    "assess_loaded",
    "assess_one",
    "checked_result_bundle",
    "load_rule_config",
    "one_patient",
    "why_nothing",
]


@dataclass
class Assessed:
    """The assessments of what was read; ``failed`` names each record whose assessment raised."""

    loaded: LoadResult
    assessments: list[Assessment] = field(default_factory=list)
    failed: list[tuple[str, Exception]] = field(default_factory=list)


def load_rule_config(path: str | Path | None) -> RuleConfig:
    """The site's rule settings: a JSON object of the RuleConfig fields it changes (none: the
    defaults). A ConfigurationError says what is wrong with the file."""
    if path is None or str(path) == "":
        return DEFAULT_CONFIG
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"rule settings {path}: cannot be read as JSON ({exc})") from None
    if not isinstance(values, dict):
        raise ConfigurationError(f"rule settings {path}: expected a JSON object")
    try:
        return RuleConfig.from_mapping(values)
    except ValueError as exc:
        raise ConfigurationError(f"rule settings {path}: {exc}") from None


def assess_loaded(
    loaded: LoadResult, as_of: date, guideline: Guideline, config: RuleConfig = DEFAULT_CONFIG
) -> Assessed:
    """Every record assessed; one that raises is recorded and does not stop the others."""
    out = Assessed(loaded)
    for record in loaded.records:
        try:
            out.assessments.append(assess(record, as_of, guideline, config))
        except Exception as exc:  # a bug in the rules must not cost the other patients
            out.failed.append((record.patient, exc))
    return out


def one_patient(loaded: LoadResult, patient: str | None = None) -> PatientRecord:
    """The one CML patient of the input (``patient`` when given); a 422 RequestError saying
    why when there is not exactly one."""
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
        from fhir_cml.fhir.outbound.operation_outcome import from_issue  # the FHIR faces only

        error.outcome["issue"] += [from_issue(i) for i in loaded.issues]
        raise error
    return loaded.records[0]


def assess_one(
    record: PatientRecord, as_of: date, guideline: Guideline, config: RuleConfig = DEFAULT_CONFIG
) -> Assessment:
    """The assessment of ``record``; a rule that raises is an internal error (500), reported
    without the input (it may identify the patient)."""
    assessed = assess_loaded(LoadResult(records=[record], issues=[]), as_of, guideline, config)
    if assessed.failed:
        _, exc = assessed.failed[0]
        raise OperationOutcomeError(
            f"The assessment failed ({type(exc).__name__}); please report it with the input.",
            code="exception",
            status=500,
        )
    return assessed.assessments[0]


def why_nothing(loaded: LoadResult) -> str:
    """Why a load gave no patient to assess, in one sentence."""
    if loaded.files == 0 and loaded.resources == 0:
        return "no input could be read."
    if loaded.resources == 0:
        return f"no FHIR resource could be read from {_count(loaded.files, 'file')}."
    where = f" in {_count(loaded.files, 'file')}" if loaded.files else ""
    return (
        f"no CML patient among {_count(loaded.resources, 'resource')}{where} (a patient needs a "
        "CML Condition or a BCR::ABL1 result; a TKI MedicationStatement alone is not enough)."
    )


def checked_result_bundle(
    assessments: Sequence[Assessment], recorded: datetime, issues: Iterable[Issue] = ()
) -> dict[str, Any]:
    """The result Bundle (collection), each resource validated against the FHIR R4 models.

    Raises :class:`~fhir_cml.errors.OperationOutcomeError` (status 500) when fhir-cml built an
    invalid resource: a bug, reported with the element paths.
    """
    # Imported here: `fhir-cml assess` builds no FHIR resource unless asked for a Bundle.
    from fhir_cml.fhir.outbound import result_bundle, validate

    bundle = result_bundle(assessments, recorded, issues)
    for entry in bundle["entry"]:
        validate(entry["resource"])
    return bundle


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
