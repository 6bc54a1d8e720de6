"""Input larger than memory: each patient's resources gathered on disk first (docs/scale.md).

A Bulk Data export spreads every patient over one file per resource type, so no patient is
complete until the last file is read. Rather than hold everything, one pass writes each resource
to one of N partition files chosen by a hash of its patient's key, so that a patient's resources
all land in the same partition; then each partition, a fraction of the input, is read, grouped
and mapped on its own. Memory follows the size of a partition, not of the input; the disk holds
one copy of the input meanwhile, removed as each partition is done.

The common NDJSON line - a resource whose first member is its type and whose subject is a plain
``Patient/<id>`` - is routed by a look at its bytes and written as it came, so the first pass
parses only Patients, Medications and the lines it cannot route that way. Those are parsed, and a
reference that needs the whole input to resolve (an identifier, a ``urn:uuid:``, a contained
Patient) waits in a side file until every Patient has been seen. Resources of types fhir-cml does
not read are counted, not copied.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final, Protocol

import orjson

from fhir_cml.domain.model import Issue
from fhir_cml.fhir.inbound.grouping import READ_TYPES, SUBJECT_TYPES, patient_of
from fhir_cml.fhir.inbound.loader import Entry, Reader
from fhir_cml.fhir.inbound.references import PatientIndex

PARTITION_BYTES: Final = 24 * 1024 * 1024  # of input per partition: about 6x that in memory
MAX_PARTITIONS: Final = 4096  # files open at once; beyond ~100 GB of input partitions grow
_SHARES: Final = 4  # the partition count is a multiple of it
_BUFFER: Final = 256 * 1024
_PROGRESS_STEP: Final = 4 * 1024 * 1024

# The first member of the line is its type, as servers write it.
_TYPE: Final = re.compile(rb'\{\s*"resourceType"\s*:\s*"([A-Za-z]{1,64})"')
# After '"subject"': a relative Patient reference with a FHIR id, the reference first.
_SUBJECT: Final = re.compile(
    rb'\s*:\s*\{\s*"reference"\s*:\s*"Patient/([A-Za-z0-9\-.]{1,64})"\s*[,}]'
)
_SUBJECT_KEY: Final = b'"subject"'
_COMPACT_TYPE: Final = b'{"resourceType":"'
_CONTAINED: Final = b'"contained"'
_SUBJECT_TYPES: Final = frozenset(t.encode() for t in SUBJECT_TYPES)
_PARSED_TYPES: Final = frozenset(t.encode() for t in READ_TYPES - SUBJECT_TYPES) | {b"Bundle"}
_RAW, _PARSED = b"r", b"p"


class Progress(Protocol):
    """Told how far partitioning has come, e.g. to draw a progress bar."""

    def partitioning(self, done: int, total: int) -> None:
        """``done`` of ``total`` bytes of input read."""

    def partitioned(self, patients: int) -> None:
        """The first pass is over; ``patients`` Patient resources were seen."""


@dataclass
class Partitions:
    """The partition files of one run, and what the first pass learnt on the way."""

    directory: Path
    paths: list[Path]
    origins: list[str]  # where records were read ("labs.ndjson line"), by number
    medications: list[Entry] = field(default_factory=list)  # shared by every partition
    unsupported: dict[str, int] = field(default_factory=dict)
    patients: int = 0  # Patient resources seen: what a progress bar counts towards

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def partition_count(size: int, partition_bytes: int = PARTITION_BYTES) -> int:
    """How many partitions ``size`` bytes of input need; 1 means read it in memory.

    A multiple of four, so that one, two or four worker processes share them evenly rather than
    one being left alone with the last while the others wait (the count may not depend on the
    workers: the order of the output follows it). Each is a file open during the first pass:
    the soft limit on open files is raised as far as the hard one allows, and beyond it the
    partitions grow rather than multiply.
    """
    if size <= partition_bytes:
        return 1
    count = -(-size // partition_bytes)
    count = -(-count // _SHARES) * _SHARES
    return min(count, MAX_PARTITIONS, _open_files_allowed())


def _open_files_allowed(spare: int = 64) -> int:
    """Files this process may have open for partitions, once the soft limit is raised."""
    try:
        import resource
    except ImportError:  # not on a POSIX system
        return 500
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_PARTITIONS + spare
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    return MAX_PARTITIONS if soft == resource.RLIM_INFINITY else max(2, soft - spare)


def write_partitions(
    reader: Reader,
    files: list[Path],
    count: int,
    work_dir: Path | None = None,
    progress: Progress | None = None,
) -> Partitions:
    """The first pass: every resource of ``files`` to its patient's partition file.

    Raises OSError when the work directory cannot hold the partitions (about the input's size).
    """
    directory = Path(tempfile.mkdtemp(prefix="fhir-cml-partitions-", dir=work_dir))
    try:
        return _Router(reader, directory, count, progress).run(files)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def read_partition(
    reader: Reader,
    parts: Partitions,
    number: int,
    labelled: list[tuple[str, Issue]] | None = None,
) -> Iterator[Entry]:
    """The entries of one partition (its file is removed once read); shared Medications first.

    Lines routed unparsed are parsed here by ``reader``, which counts them and reports those that
    are not JSON, under the file and line they came from; with ``labelled``, those issues go
    there instead, each with its file, for :meth:`Reader.relist`.
    """
    yield from parts.medications
    path = parts.paths[number]
    origins = parts.origins
    loads = orjson.loads
    limit = reader.max_json_bytes
    try:
        with path.open("rb") as handle:
            for record in handle:
                kind, origin_no, index, url, payload = record.split(b"\t", 4)
                origin = origins[int(origin_no)]
                line = payload[:-1]  # the record's newline
                if kind == _PARSED:
                    resource = loads(line)
                    yield Entry(
                        resource,
                        resource["resourceType"],
                        origin,
                        int(index),
                        loads(url) if url else None,
                    )
                    continue
                # A line routed unparsed: the common case here, anything else by the reader.
                try:
                    resource = loads(line) if len(line) <= limit else None
                except orjson.JSONDecodeError:
                    resource = None
                rtype = resource.get("resourceType") if type(resource) is dict else None
                if type(rtype) is str and rtype in SUBJECT_TYPES:
                    reader.resources += 1
                    yield Entry(resource, rtype, origin, int(index))
                else:
                    label = origin[: -len(" line")]
                    yield from reader.read_line(line, label, origin, int(index))
                    if labelled is not None and reader.issues:
                        labelled += ((label, issue) for issue in reader.issues)
                        reader.issues = []
    finally:
        path.unlink(missing_ok=True)


class _Router:
    def __init__(
        self, reader: Reader, directory: Path, count: int, progress: Progress | None
    ) -> None:
        self.reader = reader
        self.count = count
        self.progress = progress
        paths = [directory / f"{n:04d}.part" for n in range(count)]
        self.parts = Partitions(directory, paths, [])
        self.handles: list[IO[bytes]] = []
        self.deferred_path = directory / "deferred.part"
        self.deferred: IO[bytes] | None = None
        self.origin_numbers: dict[str, bytes] = {}
        self.raw_prefixes: dict[str, bytes] = {}
        self.index = PatientIndex()
        self.total = 0  # bytes of input, for the progress
        self.read = 0  # of which read so far
        self.reported = 0

    def run(self, files: list[Path]) -> Partitions:
        reader = self.reader
        try:
            self.handles = [path.open("wb", buffering=_BUFFER) for path in self.parts.paths]
            self.deferred = self.deferred_path.open("wb", buffering=_BUFFER)
            reader.take_line = self.take_line
            sizes = [_size(file) for file in files]
            self.total = sum(sizes)
            done = 0
            for file, size in zip(files, sizes, strict=True):
                for entry in reader.read_file(file):
                    self.route(entry)
                done += size
                self.read = self.reported = done
                if self.progress is not None:
                    self.progress.partitioning(done, self.total)
            self.deferred.close()
            self.route_deferred()
            if self.progress is not None:
                self.progress.partitioned(self.parts.patients)
        finally:
            reader.take_line = None
            for handle in self.handles:
                handle.close()
            if self.deferred is not None:
                self.deferred.close()
            self.deferred_path.unlink(missing_ok=True)
        return self.parts

    # --- lines routed unparsed ---------------------------------------------------------------

    def take_line(self, line: bytes, origin: str, number: int) -> bool:
        """Routes a line of a type read by its subject, or counts one of a type not read."""
        if self.progress is not None:
            self.read += len(line)
            if self.read - self.reported > _PROGRESS_STEP:
                self.reported = self.read
                self.progress.partitioning(self.read, self.total)
        if line.startswith(_COMPACT_TYPE):
            rtype = line[len(_COMPACT_TYPE) : line.find(b'"', len(_COMPACT_TYPE))]
        else:
            found = _TYPE.match(line)
            if found is None:
                return False
            rtype = found[1]
        if rtype in _SUBJECT_TYPES:
            key = _subject_key(line)
            if key is None:
                return False
            prefix = self.raw_prefixes.get(origin)
            if prefix is None:
                prefix = self.raw_prefixes[origin] = b"%s\t%s\t" % (_RAW, self.origin(origin))
            if not line.endswith(b"\n"):
                line += b"\n"
            self.handles[zlib.crc32(key) % self.count].write(prefix + b"%d\t\t" % number + line)
            return True
        if rtype in _PARSED_TYPES or not rtype.isalpha() or not line.rstrip().endswith(b"}"):
            return False  # parsed: a Patient, a Medication, a Bundle, or a line cut short
        # A type fhir-cml does not read: counted, not parsed.
        name = rtype.decode("ascii")
        self.parts.unsupported[name] = self.parts.unsupported.get(name, 0) + 1
        self.reader.resources += 1
        return True

    # --- entries parsed ----------------------------------------------------------------------

    def route(self, entry: Entry) -> None:
        rtype = entry.rtype
        if rtype in SUBJECT_TYPES:
            key = _literal_subject(entry)
            if key is None:
                assert self.deferred is not None
                self.write_entry(self.deferred, entry)  # routed once every Patient is known
            else:
                self.write_entry(self.handles[self.number(key)], entry)
        elif rtype == "Patient":
            self.parts.patients += 1
            self.write_entry(self.handles[self.number(self.index.add(entry))], entry)
        elif rtype == "Medication":
            self.parts.medications.append(entry)
        else:
            self.parts.unsupported[rtype] = self.parts.unsupported.get(rtype, 0) + 1

    def route_deferred(self) -> None:
        """References resolved against every Patient of the input, as the grouping will.

        One without a patient goes to the first partition, whose grouping reports it.
        """
        with self.deferred_path.open("rb") as handle:
            for record in handle:
                *_, payload = record.split(b"\t", 4)
                key, _ = patient_of(self.index, orjson.loads(payload))
                handle_out = self.handles[self.number(key) if key is not None else 0]
                handle_out.write(record)

    # --- writing -----------------------------------------------------------------------------

    def number(self, key: str) -> int:
        """The partition of a patient (the same as for the bytes of its key in take_line)."""
        return zlib.crc32(key.encode()) % self.count

    def write_entry(self, handle: IO[bytes], entry: Entry) -> None:
        self.write(
            handle, _PARSED, entry.origin, entry.index, entry.full_url, orjson.dumps(entry.resource)
        )

    def write(
        self,
        handle: IO[bytes],
        kind: bytes,
        origin: str,
        index: int,
        full_url: str | None,
        payload: bytes,
    ) -> None:
        url = orjson.dumps(full_url) if full_url is not None else b""
        number = self.origin(origin)
        handle.write(b"%s\t%s\t%d\t%s\t%s\n" % (kind, number, index, url, payload.rstrip()))

    def origin(self, origin: str) -> bytes:
        """The number a record gives for where it was read."""
        number = self.origin_numbers.get(origin)
        if number is None:
            number = self.origin_numbers[origin] = str(len(self.parts.origins)).encode()
            self.parts.origins.append(origin)
        return number


def _subject_key(line: bytes) -> bytes | None:
    """``Patient/<id>`` from the one subject of a line without contained resources; else None.

    ``"subject"`` followed by a colon can only be a member name in valid JSON (inside a string
    its quotes would be escaped), and in the resource types read only the resource itself and
    its contained resources have a subject; a line that is not valid JSON is reported when its
    partition is read.
    """
    at = line.find(_SUBJECT_KEY)
    if at <= 0 or line[at - 1] == 0x5C:  # a backslash: the end of an escaped quote
        return None
    found = _SUBJECT.match(line, at + len(_SUBJECT_KEY))
    if found is None or line.find(_SUBJECT_KEY, found.end()) >= 0 or _CONTAINED in line:
        return None
    return b"Patient/" + found[1]


def _literal_subject(entry: Entry) -> str | None:
    """The key of a subject given as a relative ``Patient/<id>`` reference, which needs no index."""
    subject = entry.resource.get("subject")
    reference = subject.get("reference") if type(subject) is dict else None
    if type(reference) is not str or not reference.startswith("Patient/"):
        return None
    rid = reference[len("Patient/") :]
    return reference if rid and _ID.fullmatch(rid) else None


_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
