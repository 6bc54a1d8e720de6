"""What an EHR actually sends, and how much of it fhir-cml reads: the onboarding survey.

For the CML population's resources it counts, per resource type and per code (system, code),
unit and value shape, how many there are, how many fhir-cml reads, and why the others are not
read (by issue code); results per month; and drafts a ConceptMap for the local codes and units
not read, for the integration engineer to complete and pass back (``--concept-map``).

Privacy: the survey holds counts, codes, code displays, units and value shapes only - never a
patient identifier, a date of a single result, a value or free text (tests check this).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Final

from fhir_cml.domain.model import Issue, PatientRecord
from fhir_cml.domain.vocabulary import IssueCode
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound import LoadResult, MappingOptions, records_from_resources
from fhir_cml.fhir.inbound.conceptmaps import is_local
from fhir_cml.fhir.inbound.context import as_dict, as_list
from fhir_cml.fhir.inbound.loader import Reader
from fhir_cml.fhir.inbound.references import ref_of

SURVEY_VERSION: Final = 1
_VALUE_SHAPES: Final = (
    "valueQuantity",
    "valueString",
    "valueCodeableConcept",
    "valueRatio",
    "valueBoolean",
    "valueInteger",
    "dataAbsentReason",
)
# The record's lists of values, each value naming the resource it was read from (``ref``).
_RECORD_LISTS: Final = tuple(
    f.name
    for f in fields(PatientRecord)
    if f.name not in ("issues", "unread_bcr_abl1") and str(f.type).startswith("tuple[")
)
NOT_READ_REASONS: Final = {
    "not-a-code-read": "a code fhir-cml does not read (a local code is read once mapped)",
    "duplicate-or-superseded": "the same result or course is read from another resource",
    "not-assessed": "the patient has no CML evidence fhir-cml reads",
    "no-subject": "no patient it can be assigned to",
    "unsupported-type": "a resource type fhir-cml does not read",
    **{code.value: code.value.replace("-", " ") for code in IssueCode},
}


@dataclass
class Row:
    """One resource type, code, unit and value shape."""

    resource_type: str
    system: str
    code: str
    display: str
    unit: str
    shape: str
    count: int = 0
    read: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        return {
            "resourceType": self.resource_type,
            "system": self.system,
            "code": self.code,
            "display": self.display,
            "unit": self.unit,
            "valueShape": self.shape,
            "count": self.count,
            "read": self.read,
            "notRead": dict(sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        }


def survey(resources: Sequence[dict[str, Any]], options: MappingOptions) -> dict[str, Any]:
    """The survey of these resources (a population's, or a whole export) as JSON."""
    loaded = records_from_resources(resources, options)
    read = _read_refs(loaded.records)
    reasons = _reasons(loaded)
    assessed = {_patient_key(r) for r in loaded.records}
    rows: dict[tuple[str, ...], Row] = {}
    months: Counter[str] = Counter()
    months_read: Counter[str] = Counter()
    for entry in Reader(options.max_json_bytes).read_values(resources):  # the refs the reader gave
        resource, rtype = entry.resource, entry.rtype
        if rtype == "Patient":
            continue
        ref = ref_of(entry)
        row = _row(rows, resource)
        row.count += 1
        is_read = ref in read
        if is_read:
            row.read += 1
        else:
            row.reasons[reasons.get(ref) or _why_not(resource, rtype, assessed)] += 1
        if rtype == "Observation":
            month = _month(resource)
            if month:
                months[month] += 1
                if is_read:
                    months_read[month] += 1
    ordered = sorted(rows.values(), key=lambda r: (r.resource_type, -r.count, r.system, r.code))
    return {
        "survey": SURVEY_VERSION,
        "patients": {
            "cml": len(loaded.records),
            "withoutCmlEvidence": loaded.skipped_patients,
        },
        "resources": sum(r.count for r in ordered),
        "read": sum(r.read for r in ordered),
        "byType": _by_type(ordered),
        "rows": [r.as_json() for r in ordered],
        "resultsPerMonth": [
            {"month": m, "count": months[m], "read": months_read[m]} for m in sorted(months)
        ],
        "reasons": NOT_READ_REASONS,
        "draftConceptMap": draft_concept_map(ordered),
    }


def _row(rows: dict[tuple[str, ...], Row], resource: dict[str, Any]) -> Row:
    rtype = resource["resourceType"]
    concept = resource.get("code")
    if rtype in (
        "MedicationStatement",
        "MedicationRequest",
        "MedicationDispense",
        "MedicationAdministration",
    ):
        concept = resource.get("medicationCodeableConcept") or {
            "text": "medicationReference" if "medicationReference" in resource else ""
        }
    system, code, display = _first_coding(concept)
    unit = _unit(resource.get("valueQuantity")) if rtype == "Observation" else ""
    shape = next((name for name in _VALUE_SHAPES if name in resource), "")
    if rtype != "Observation":
        shape = ""
    key = (rtype, system, code, unit, shape)
    row = rows.get(key)
    if row is None:
        row = rows[key] = Row(rtype, system, code, display, unit, shape)
    return row


def _first_coding(concept: Any) -> tuple[str, str, str]:
    codings = [x for x in as_list(as_dict(concept).get("coding")) if isinstance(x, dict)]
    for coding in codings:  # a code fhir-cml knows first, else the first
        if not is_local(coding.get("system")) and isinstance(coding.get("code"), str):
            return _coding(coding)
    if codings:
        return _coding(codings[0])
    return "", "", "(no coding)"


def _coding(coding: dict[str, Any]) -> tuple[str, str, str]:
    system = coding.get("system") if isinstance(coding.get("system"), str) else ""
    code = coding.get("code") if isinstance(coding.get("code"), str) else ""
    display = coding.get("display") if isinstance(coding.get("display"), str) else ""
    return str(system)[:200], str(code)[:100], str(display)[:80]


def _unit(quantity: Any) -> str:
    q = as_dict(quantity)
    if q.get("system") == c.UCUM and isinstance(q.get("code"), str):
        return str(q["code"])[:40]
    unit = q.get("unit") if isinstance(q.get("unit"), str) else q.get("code")
    return str(unit)[:40] if isinstance(unit, str) else ""


def _month(resource: dict[str, Any]) -> str:
    when = resource.get("effectiveDateTime") or as_dict(resource.get("effectivePeriod")).get(
        "start"
    )
    if isinstance(when, str) and len(when) >= 7 and when[:4].isdigit() and when[5:7].isdigit():
        return when[:7]
    return ""


def _read_refs(records: Iterable[PatientRecord]) -> set[str]:
    refs: set[str] = set()
    for record in records:
        for name in _RECORD_LISTS:
            for item in getattr(record, name):
                refs.add(item.ref)
        if record.transcript_ref:
            refs.add(record.transcript_ref)
        for issue in record.issues:  # renewals read as one course name the records they join
            if issue.code is IssueCode.INFERRED and "read as one course" in issue.message:
                start = issue.message.find("(")
                end = issue.message.find(")")
                refs.update(r.strip() for r in issue.message[start + 1 : end].split(","))
    return refs


def _reasons(loaded: LoadResult) -> dict[str, str]:
    """Why each resource named by an issue was not read: the first such issue's code."""
    found: dict[str, str] = {}
    issues: list[Issue] = list(loaded.issues)
    for record in loaded.records:
        issues.extend(record.issues)
    for issue in issues:
        if issue.resource and issue.code is not IssueCode.INFERRED:
            code = issue.code.value
            if issue.code in (IssueCode.DUPLICATE, IssueCode.SUPERSEDED):
                code = "duplicate-or-superseded"
            found.setdefault(issue.resource, code)
    return found


def _why_not(resource: dict[str, Any], rtype: str, assessed: set[str]) -> str:
    subject = as_dict(resource.get("subject") or resource.get("patient")).get("reference")
    if rtype not in (
        "Observation",
        "Condition",
        "AdverseEvent",
        "Medication",
        "MedicationStatement",
        "MedicationRequest",
        "MedicationDispense",
        "MedicationAdministration",
    ):
        return "unsupported-type"
    if rtype != "Medication" and isinstance(subject, str) and subject not in assessed:
        return "not-assessed"
    if rtype == "Medication":
        return "not-a-code-read"
    return "not-a-code-read"


def _patient_key(record: PatientRecord) -> str:
    return record.patient


def _by_type(rows: Sequence[Row]) -> list[dict[str, Any]]:
    totals: dict[str, list[int]] = {}
    for row in rows:
        t = totals.setdefault(row.resource_type, [0, 0])
        t[0] += row.count
        t[1] += row.read
    return [{"resourceType": k, "count": v[0], "read": v[1]} for k, v in sorted(totals.items())]


def draft_concept_map(rows: Sequence[Row]) -> dict[str, Any]:
    """A ConceptMap for the local codes and units not read, targets left for the engineer.

    Each element's target is ``unmatched`` with no code: fhir-cml ignores it until the engineer
    writes the code fhir-cml reads (e.g. LOINC 69380-4) and sets ``equivalence`` to
    ``equivalent``.
    """
    codes: dict[str, dict[str, str]] = {}
    units: dict[str, set[str]] = {}
    for row in rows:
        unread = row.count - row.read
        if not unread:
            continue
        if row.system and is_local(row.system) and row.code:
            codes.setdefault(row.system, {})[row.code] = row.display
        if row.unit and row.reasons.get(IssueCode.UNKNOWN_UNIT.value):
            units.setdefault("", set()).add(row.unit)
    groups: list[dict[str, Any]] = []
    hint = (
        "Fill in the code fhir-cml reads (docs/inbound.md lists them) and set equivalence to "
        "equivalent; leave unmatched to keep it unread."
    )
    for system in sorted(codes):
        groups.append(
            {
                "source": system,
                "target": c.LOINC,
                "element": [
                    {
                        "code": code,
                        **({"display": display} if display else {}),
                        "target": [{"equivalence": "unmatched", "comment": hint}],
                    }
                    for code, display in sorted(codes[system].items())
                ],
            }
        )
    for system in sorted(units):
        group: dict[str, Any] = {
            "target": c.UCUM,
            "element": [
                {
                    "code": unit,
                    "target": [{"equivalence": "unmatched", "comment": "Fill in the UCUM code."}],
                }
                for unit in sorted(units[system])
            ],
        }
        groups.append(group)
    return {
        "resourceType": "ConceptMap",
        "status": "draft",
        "name": "SiteLocalCodesDraft",
        "title": "Local codes and units of this site (draft from fhir-cml survey)",
        "description": "Drafted by fhir-cml survey from the codes and units it could not read. "
        "Complete the targets, then pass it to fhir-cml with --concept-map.",
        "group": groups,
    }
