"""Input of any size, read in parts of bounded size (docs/scale.md).

Input up to ``partition_bytes`` is one part, read in memory. Larger input is first written to
partition files by patient (partition.py), then each partition is read, grouped and mapped on
its own: in this process (:func:`stream_paths`), or in worker processes that also run the
caller's work on each part (:func:`map_paths`), the parts coming back in order.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar, cast

from fhir_cml.domain.model import Issue
from fhir_cml.domain.vocabulary import IssueCode, Severity
from fhir_cml.fhir.inbound import partition
from fhir_cml.fhir.inbound.forks import Forks, TaskFailed, can_fork
from fhir_cml.fhir.inbound.grouping import unsupported_issue
from fhir_cml.fhir.inbound.loader import Entry, Reader
from fhir_cml.fhir.inbound.loading import (
    LoadResult,
    load,
    load_entries,
    nothing_found,
    without_cyclic_gc,
)
from fhir_cml.fhir.inbound.options import MappingOptions
from fhir_cml.fhir.inbound.partition import (
    Partitions,
    Progress,
    partition_count,
    read_partition,
    write_partitions,
)

T = TypeVar("T")
_Labelled = list[tuple[str, Issue]]  # a partition's reader issues, with the file each names


def stream_paths(
    paths: Sequence[Path],
    options: MappingOptions,
    *,
    keep_resources: bool = True,
    work_dir: Path | None = None,
    partition_bytes: int | None = None,
    progress: Progress | None = None,
) -> Generator[LoadResult]:
    """What ``load_paths`` reads, in parts: memory follows a part, not the whole input.

    Larger input than ``partition_bytes`` (default: ``partition.PARTITION_BYTES``) is partitioned
    in a temporary directory under ``work_dir`` (about the input's size; an OSError when it does
    not fit). Each part holds whole patients, sorted by key within it; its counts and issues add
    up (:meth:`LoadResult.add`) to those ``load_paths`` gives. ``keep_resources=False`` leaves
    ``resources_by_patient`` empty, so a part's parsed resources are freed once it is mapped.
    """
    run = _Run(paths, options, keep_resources, work_dir, partition_bytes, progress)
    for part, _ in run.parts(None, 1):
        yield part


def map_paths(
    paths: Sequence[Path],
    options: MappingOptions,
    work: Callable[[LoadResult], T],
    *,
    jobs: int = 1,
    work_dir: Path | None = None,
    partition_bytes: int | None = None,
    progress: Progress | None = None,
) -> Generator[tuple[LoadResult, T]]:
    """``work(part)`` for each part of :func:`stream_paths`, in up to ``jobs`` worker processes.

    Yields, in the order of the parts, each part without its records and the result of
    ``work``, which must pickle. Workers are forked, so ``work`` need not: without fork (or with
    one job, or input of one part) everything runs in this process. Memory is about ``jobs``
    parts at a time.
    """
    run = _Run(paths, options, False, work_dir, partition_bytes, progress)
    workers = jobs if jobs > 1 and can_fork() else 1
    for part, result in run.parts(work, workers):
        yield part, cast(T, result)


@dataclass
class _Job:
    """What a worker needs, inherited through fork rather than sent."""

    parts: Partitions
    options: MappingOptions
    keep_resources: bool
    work: Callable[[LoadResult], Any] | None


class _Run:
    def __init__(
        self,
        paths: Sequence[Path],
        options: MappingOptions,
        keep_resources: bool,
        work_dir: Path | None,
        partition_bytes: int | None,
        progress: Progress | None,
    ) -> None:
        self.paths = paths
        self.options = options
        self.keep_resources = keep_resources
        self.work_dir = work_dir
        self.partition_bytes = partition_bytes or partition.PARTITION_BYTES
        self.progress = progress

    def parts(
        self, work: Callable[[LoadResult], T] | None, jobs: int
    ) -> Iterator[tuple[LoadResult, T | None]]:
        reader = Reader(self.options.max_json_bytes)
        files = reader.list_files(self.paths)
        if not self.paths:
            reader.issues.append(
                Issue(Severity.ERROR, IssueCode.UNREADABLE, "No input given.", None)
            )
        count = partition_count(sum(_size(file) for file in files), self.partition_bytes)
        if count == 1:
            part = load(reader, _read_all(reader, files), self.options, self.keep_resources)
            yield _finished(part, work)
            return
        with without_cyclic_gc():
            parts = write_partitions(
                reader,
                files,
                count,
                self.work_dir,
                self.progress,
                jobs=jobs,
                share_bytes=self.partition_bytes,
            )
        try:
            if parts.unsupported:
                reader.issues.append(unsupported_issue(parts.unsupported))
            job = _Job(parts, self.options, self.keep_resources, work)
            results: Iterator[tuple[LoadResult, _Labelled, Any]] = (
                _in_workers(job, jobs) if jobs > 1 else map(job_part(job), range(parts.count))
            )
            first = True
            had_issues = False
            for part, labelled, result in results:
                for label, issue in labelled:
                    reader.relist(label, issue)
                part.issues[:0] = reader.issues
                had_issues = had_issues or bool(reader.issues)
                reader.issues = []
                if first:  # what the first pass read and could not read
                    part.files += reader.files
                    part.resources += reader.resources
                    part.unreadable += reader.unreadable
                    first = False
                yield part, result
            reader.close()
            last = reader.issues + nothing_found(reader.files, reader.resources, had_issues)
            if last:
                yield LoadResult([], last), None
        finally:
            parts.remove()


def job_part(
    job: _Job, retain: list[object] | None = None
) -> Callable[[int], tuple[LoadResult, _Labelled, Any]]:
    """One partition read, grouped, mapped and worked on (in this process or a worker).

    With ``retain``, what was parsed is kept there rather than freed (a worker's end frees it).
    """

    def run(number: int) -> tuple[LoadResult, _Labelled, Any]:
        reader = Reader(job.options.max_json_bytes)
        reader.max_file_issues = sys.maxsize  # listed by the caller's reader (Reader.relist)
        labelled: _Labelled = []
        entries = read_partition(reader, job.parts, number, labelled)
        part = load_entries(
            entries, job.options, job.keep_resources, job.parts.patients > 0, retain
        )
        part.resources = reader.resources
        part.unreadable = reader.unreadable
        if retain is not None:
            retain.append(part.records)
        part, result = _finished(part, job.work)
        return part, labelled, result

    return run


def _in_workers(job: _Job, jobs: int) -> Iterator[tuple[LoadResult, _Labelled, Any]]:
    """Each partition in a process forked for it (forks.py), ``jobs`` at a time; the results in
    order.

    A worker is started as soon as any other ends, not only when the next in order does: a
    result that comes early waits here (a few counts and the name of a file), not the CPUs.
    """
    forks = Forks()
    numbers = iter(range(job.parts.count))
    came: dict[int, tuple[LoadResult, _Labelled, Any]] = {}
    try:
        for number in islice(numbers, jobs):
            forks.start(number, partial(job_part(job, []), number))
        for number in range(job.parts.count):
            while number not in came:
                for ended in forks.ready(None):
                    try:
                        came[ended] = forks.result(ended)
                    except TaskFailed as failed:
                        raise RuntimeError(f"reading partition {ended} failed: {failed}") from None
                    for following in islice(numbers, 1):
                        forks.start(following, partial(job_part(job, []), following))
            yield came.pop(number)
    finally:
        forks.stop()


def _finished(
    part: LoadResult, work: Callable[[LoadResult], T] | None
) -> tuple[LoadResult, T | None]:
    """The part, and what ``work`` made of it (then its records are let go)."""
    if work is None:
        return part, None
    result = work(part)
    part.records = []
    part.resources_by_patient = {}
    return part, result


def _read_all(reader: Reader, files: list[Path]) -> Iterator[Entry]:
    for file in files:
        yield from reader.read_file(file)
    reader.close()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
