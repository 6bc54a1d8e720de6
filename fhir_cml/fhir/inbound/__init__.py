"""Reading FHIR R4 input into the domain's :class:`PatientRecord` (docs/inbound.md).

Entry points: :func:`load_paths` for files and directories; :func:`stream_paths` for the same in
parts of bounded size (a Bulk Data export of any size; docs/scale.md), and :func:`map_paths` to
work on those parts in worker processes; :func:`records_from_resources` for parsed JSON (a FHIR
server's answer, a test); :func:`map_patient` for one patient's resources.
None of them raises for bad content; every problem is an :class:`Issue`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from fhir_cml.domain.model import Issue, PatientRecord
from fhir_cml.domain.vocabulary import IssueCode, Severity
from fhir_cml.fhir.inbound.conceptmaps import translate_entries
from fhir_cml.fhir.inbound.loader import Reader
from fhir_cml.fhir.inbound.loading import LoadResult, load
from fhir_cml.fhir.inbound.options import MappingOptions
from fhir_cml.fhir.inbound.partition import Progress
from fhir_cml.fhir.inbound.record import map_entries
from fhir_cml.fhir.inbound.streaming import map_paths, stream_paths

__all__ = [
    "LoadResult",
    "MappingOptions",
    "Progress",
    "load_paths",
    "map_paths",
    "map_patient",
    "records_from_resources",
    "stream_paths",
]


def load_paths(paths: Sequence[Path], options: MappingOptions) -> LoadResult:
    """Bundles, single resources, NDJSON files, or directories of them (a Bulk Data export).

    Everything is held in memory: for input of any size, :func:`stream_paths`.
    """
    reader = Reader(options.max_json_bytes)
    result = load(reader, reader.read_paths(paths), options)
    if not paths:
        result.issues.append(Issue(Severity.ERROR, IssueCode.UNREADABLE, "No input given.", None))
    return result


def records_from_resources(resources: Iterable[Any], options: MappingOptions) -> LoadResult:
    """Parsed JSON resources or Bundles, for any number of patients."""
    reader = Reader(options.max_json_bytes)
    return load(reader, reader.read_values(resources), options)


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
