"""Entries to records: grouping by patient and mapping, shared by every way of reading input."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fhir_cml.domain.model import Issue, PatientRecord
from fhir_cml.domain.vocabulary import IssueCode, Severity
from fhir_cml.fhir.inbound.conceptmaps import translate_entries
from fhir_cml.fhir.inbound.grouping import Grouper, Groups
from fhir_cml.fhir.inbound.loader import Entry, Reader
from fhir_cml.fhir.inbound.options import MappingOptions
from fhir_cml.fhir.inbound.record import INTERNAL_ERROR, map_entries


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

    def add(self, part: LoadResult) -> None:
        """Counts and issues of a part of a load (from ``stream_paths``) into these totals."""
        self.issues += part.issues
        self.files += part.files
        self.resources += part.resources
        self.unreadable += part.unreadable
        self.skipped_patients += part.skipped_patients


def load(
    reader: Reader, entries: Iterator[Entry], options: MappingOptions, keep_resources: bool = True
) -> LoadResult:
    """Everything ``entries`` yields, with the reader's issues and counts."""
    result = load_entries(entries, options, keep_resources)
    result.issues[:0] = reader.issues
    result.issues += nothing_found(reader.files, reader.resources, bool(reader.issues))
    result.files = reader.files
    result.resources = reader.resources
    result.unreadable = reader.unreadable
    return result


def load_entries(
    entries: Iterator[Entry],
    options: MappingOptions,
    keep_resources: bool,
    patients_expected: bool = False,
    retain: list[object] | None = None,
) -> LoadResult:
    """Entries grouped by patient and mapped; freed, unless kept, before the collector is back.

    Otherwise its first collection would scan every parsed resource of the part, for nothing.
    With ``retain``, the parsed entries are kept there instead of freed (by a process that ends
    straight after, and so need not free them one by one).
    """
    entries = translate_entries(entries, options.terminology)  # the site's codes, before grouping
    with without_cyclic_gc():
        return _grouped_and_mapped(entries, options, keep_resources, patients_expected, retain)


@contextmanager
def without_cyclic_gc() -> Iterator[None]:
    """Pauses the cyclic garbage collector while a load builds millions of small objects.

    JSON dicts and the records made from them hold no reference cycles, yet each collection
    scans every object kept so far: measured with bench/scale_bench.py (docs/scale.md), reading
    an export with the collector on takes about twice the CPU time. Reference counting still
    frees memory meanwhile.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def nothing_found(files: int, resources: int, other_issues: bool) -> list[Issue]:
    """The warning for files read without a single resource (and no other issue saying why)."""
    if not files or resources or other_issues:
        return []
    return [
        Issue(
            Severity.WARNING,
            IssueCode.UNREADABLE,
            f"No FHIR resources found in the {files} file(s) read.",
            None,
        )
    ]


def _grouped_and_mapped(
    entries: Iterator[Entry],
    options: MappingOptions,
    keep_resources: bool,
    patients_expected: bool,
    retain: list[object] | None,
) -> LoadResult:
    grouper = Grouper(patients_expected)
    for entry in entries:
        grouper.add(entry)
    groups = grouper.finish()
    if retain is not None:
        retain += (grouper, groups)
    return _mapped(groups, options, keep_resources)


def _mapped(groups: Groups, options: MappingOptions, keep_resources: bool) -> LoadResult:
    """Each patient's record, and the resources read for it when ``keep_resources``."""
    records: list[PatientRecord] = []
    by_patient: dict[str, list[dict[str, Any]]] = {}
    issues = list(groups.issues)
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
        if keep_resources:
            by_patient[key] = kept
    return LoadResult(
        records=records,
        issues=issues,
        skipped_patients=groups.skipped,
        resources_by_patient=by_patient,
    )
