"""Small builders of FHIR JSON for the inbound tests: each test states only what it varies."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fhir_cml.domain.model import Issue, PatientRecord
from fhir_cml.domain.vocabulary import IssueCode
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound import LoadResult, MappingOptions, records_from_resources

DATA = Path(__file__).resolve().parents[1] / "data" / "inbound"
NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
OPTIONS = MappingOptions(now=NOW)
PATIENT = "Patient/p1"


def patient(pid: str = "p1", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, **extra}


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    return {"coding": [coding(system, code, display)]}


def qty(value: Any, unit: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"value": value}
    if unit is not None:
        out.update(unit=unit, system=c.UCUM, code=unit)
    out.update(extra)
    return out


def component(system: str, code: str, **value: Any) -> dict[str, Any]:
    return {"code": concept(system, code), **value}


def cml_component(code: str, **value: Any) -> dict[str, Any]:
    return component(c.CS_CML, code, **value)


def obs(
    code: str,
    system: str = c.LOINC,
    *,
    oid: str = "o1",
    day: str | None = "2024-05-02",
    subject: str = PATIENT,
    status: str = "final",
    **extra: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": status,
        "code": concept(system, code),
        "subject": {"reference": subject},
    }
    if day is not None:
        out["effectiveDateTime"] = day
    out.update(extra)
    return out


def bcr(value: float | None = 0.5, *, code: str = "69380-4", **extra: Any) -> dict[str, Any]:
    """A BCR::ABL1 result; ``value`` in % as valueQuantity unless the test gives another value."""
    if value is not None and not any(k.startswith("value") for k in extra):
        extra["valueQuantity"] = qty(value, "%")
    return obs(code, **extra)


def statement(
    medication: dict[str, Any] | None = None,
    *,
    mid: str = "m1",
    status: str = "active",
    start: str | None = "2023-01-10",
    dose: float | None = 400,
    unit: str = "mg",
    timing: dict[str, Any] | None = None,
    subject: str = PATIENT,
    **extra: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": mid,
        "status": status,
        "subject": {"reference": subject},
    }
    if medication is not None:
        out["medicationCodeableConcept"] = medication
    if start is not None:
        out["effectivePeriod"] = {"start": start}
    if dose is not None:
        out["dosage"] = [
            {
                "timing": timing if timing is not None else once_daily(),
                "doseAndRate": [{"doseQuantity": qty(dose, unit)}],
            }
        ]
    out.update(extra)
    return out


def imatinib(code: str = "282388") -> dict[str, Any]:
    return concept(c.RXNORM, code, "imatinib")


def once_daily() -> dict[str, Any]:
    return {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}


def condition(**extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": PATIENT},
        "code": concept(c.SNOMED, "92818009", "Chronic myeloid leukemia"),
    }
    out.update(extra)
    return out


def bundle(*resources: dict[str, Any], kind: str = "collection") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [{"resource": r} for r in resources],
    }


def load(*resources: Any, options: MappingOptions = OPTIONS) -> LoadResult:
    return records_from_resources(list(resources), options)


def record(*resources: Any, options: MappingOptions = OPTIONS) -> PatientRecord:
    """The one CML patient's record; a CML Condition is added so the patient is assessed."""
    result = load(patient(), condition(), *resources, options=options)
    assert len(result.records) == 1, result
    return result.records[0]


def codes(issues: tuple[Issue, ...] | list[Issue]) -> list[IssueCode]:
    return [issue.code for issue in issues]


def issue(record_or_issues: Any, code: IssueCode) -> Issue:
    """The one issue with this code (fails when there is none or several)."""
    issues = getattr(record_or_issues, "issues", record_or_issues)
    found = [i for i in issues if i.code is code]
    assert len(found) == 1, f"expected one {code}, got {issues}"
    return found[0]
