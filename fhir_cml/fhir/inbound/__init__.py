"""Reading FHIR R4 input into the domain's :class:`PatientRecord` (docs/inbound.md).

Three entry points: :func:`load_paths` for files and directories, :func:`records_from_resources`
for parsed JSON (a FHIR server's answer, a test), :func:`map_patient` for one patient's resources.
None of them raises for bad content; every problem is an :class:`Issue`.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fhir_cml.domain.model import Issue, PatientRecord
from fhir_cml.domain.vocabulary import IssueCode, Severity
from fhir_cml.fhir.inbound.conceptmaps import translate_entries
from fhir_cml.fhir.inbound.grouping import Grouper
from fhir_cml.fhir.inbound.loader import Entry, Reader
from fhir_cml.fhir.inbound.options import MappingOptions
from fhir_cml.fhir.inbound.record import INTERNAL_ERROR, map_entries

__all__ = [
    "LoadResult",
    "MappingOptions",
    "load_paths",
    "map_patient",
    "records_from_resources",
]


@dataclass
class LoadResult:
    """What was read: one record per CML patient, and what could not be read or assigned.

    ``issues`` are those not tied to a patient (an unreadable file or entry, a resource without
    a subject, types not read); a patient's own issues are in its record.
    """

    records: list[PatientRecord]
    issues: list[Issue]
    files: int = 0
    resources: int = 0
    unreadable: int = 0
    skipped_patients: int = 0  # patients without CML evidence, not assessed
    resources_by_patient: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def load_paths(paths: Sequence[Path], options: MappingOptions) -> LoadResult:
    """Bundles, single resources, NDJSON files, or directories of them (a Bulk Data export)."""
    reader = Reader(options.max_json_bytes)
    result = _load(reader, reader.read_paths(paths), options)
    if not paths:
        result.issues.append(Issue(Severity.ERROR, IssueCode.UNREADABLE, "No input given.", None))
    return result


def records_from_resources(resources: Iterable[Any], options: MappingOptions) -> LoadResult:
    """Parsed JSON resources or Bundles, for any number of patients."""
    reader = Reader(options.max_json_bytes)
    return _load(reader, reader.read_values(resources), options)


def map_patient(
    patient_key: str, resources: Sequence[dict[str, Any]], options: MappingOptions
) -> PatientRecord:
    """One patient's resources (already selected by the caller) to a record."""
    reader = Reader(options.max_json_bytes)
    entries = list(translate_entries(reader.read_values(resources), options.terminology))
    record, _ = map_entries(patient_key, entries, options)
    if reader.issues:
        record = replace(record, issues=(*reader.issues, *record.issues))
    return record


@contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """Pauses the cyclic garbage collector while a load builds millions of small objects.

    JSON dicts and the records made from them hold no reference cycles, yet each collection
    scans every object kept so far: on a 50 MB export the collector costs more than parsing
    (measured about 2.8x slower end to end). Reference counting still frees memory meanwhile.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _load(reader: Reader, entries: Iterator[Entry], options: MappingOptions) -> LoadResult:
    entries = translate_entries(entries, options.terminology)  # the site's codes, before grouping
    with _without_cyclic_gc():
        return _load_all(reader, entries, options)


def _load_all(reader: Reader, entries: Iterator[Entry], options: MappingOptions) -> LoadResult:
    grouper = Grouper()
    for entry in entries:
        grouper.add(entry)
    groups = grouper.finish()
    records: list[PatientRecord] = []
    by_patient: dict[str, list[dict[str, Any]]] = {}
    issues = [*reader.issues, *groups.issues]
    for key, group in groups.patients.items():
        try:
            record, kept = map_entries(key, group, options)
        except Exception as err:  # one patient's data must never stop the others
            issues.append(
                Issue(
                    Severity.ERROR,
                    IssueCode.UNREADABLE,
                    f"{key} could not be read ({INTERNAL_ERROR}: {type(err).__name__}: "
                    f"{str(err)[:200]}); please report it together with the input.",
                    key,
                )
            )
            continue
        records.append(record)
        by_patient[key] = kept
    if reader.files and not reader.resources and not reader.issues:
        issues.append(
            Issue(
                Severity.WARNING,
                IssueCode.UNREADABLE,
                f"No FHIR resources found in the {reader.files} file(s) read.",
                None,
            )
        )
    return LoadResult(
        records=records,
        issues=issues,
        files=reader.files,
        resources=reader.resources,
        unreadable=reader.unreadable,
        skipped_patients=groups.skipped,
        resources_by_patient=by_patient,
    )
