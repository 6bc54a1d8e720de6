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

import multiprocessing
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import IO, Any, Final, Protocol

import orjson

from fhir_cml.domain.model import Issue
from fhir_cml.fhir.inbound.forks import Forks, TaskFailed, can_fork
from fhir_cml.fhir.inbound.grouping import READ_TYPES, SUBJECT_TYPES, patient_of
from fhir_cml.fhir.inbound.loader import NDJSON_SUFFIXES, READ_BUFFER, Entry, Reader
from fhir_cml.fhir.inbound.references import PatientIndex

PARTITION_BYTES: Final = 24 * 1024 * 1024  # of input per partition: about 6x that in memory
MAX_PARTITIONS: Final = 4096  # files open at once; beyond ~100 GB of input partitions grow
_SHARES: Final = 4  # the partition count is a multiple of it
_BUFFER: Final = 256 * 1024  # of each partition file written (read through READ_BUFFER)
_PROGRESS_STEP: Final = 4 * 1024 * 1024
_PROGRESS_SECONDS: Final = 0.25  # how often the progress of a first pass in shares is drawn

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
    """The partition files of one run, and what the first pass learnt on the way.

    The first pass may have been shared by several processes, each routing a share of the input
    (a *share*) to files of its own: a partition is then its shares' files read in the order of
    the input, then the resources whose patient was known only at the end.
    """

    directory: Path
    count: int
    origins: list[str]  # where records were read ("labs.ndjson line"), by number
    offsets: list[int] = field(default_factory=lambda: [0])  # each share's first origin number
    resolved_late: bool = False  # whether the late resources have files of their own
    medications: list[Entry] = field(default_factory=list)  # shared by every partition
    unsupported: dict[str, int] = field(default_factory=dict)
    patients: int = 0  # Patient resources seen: what a progress bar counts towards

    def files(self, number: int) -> list[tuple[Path, int]]:
        """The files of partition ``number`` in order, each with its first origin number."""
        found = [
            (_share_path(self.directory, share, number), offset)
            for share, offset in enumerate(self.offsets)
        ]
        if self.resolved_late:
            found.append((self.directory / f"late-{number:04d}.part", 0))
        return found

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
    *,
    jobs: int = 1,
    share_bytes: int = PARTITION_BYTES,
) -> Partitions:
    """The first pass: every resource of ``files`` to its patient's partition file.

    With ``jobs`` > 1, NDJSON files of at least twice ``share_bytes`` are cut at line starts into
    shares routed in parallel, in forked processes (forks.py); the partitions hold the same
    records in the same order either way. Raises OSError when the work directory cannot hold
    the partitions (about the input's size).
    """
    directory = Path(tempfile.mkdtemp(prefix="fhir-cml-partitions-", dir=work_dir))
    try:
        shares = _shares(files, jobs, share_bytes) if jobs > 1 and can_fork() else []
        if len(shares) > 1:
            parts = _in_shares(reader, shares, directory, count, jobs, progress)
            if parts is not None:
                return parts
            shutil.rmtree(directory, ignore_errors=True)  # read again in one pass (below)
            directory.mkdir()
        router = _Router(reader, directory, 0, count, progress)
        router.route_all([_Share(file, 0, None) for file in files])
        index = router.index
        with router.open_partitions() as handles:
            _route_late([router.late_path], [0], index, handles, count)
        if progress is not None:
            progress.partitioned(router.patients)
        return router.partitions()
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def read_partition(
    reader: Reader,
    parts: Partitions,
    number: int,
    labelled: list[tuple[str, Issue]] | None = None,
) -> Iterator[Entry]:
    """The entries of one partition (its files are removed once read); shared Medications first.

    Lines routed unparsed are parsed here by ``reader``, which counts them and reports those that
    are not JSON, under the file and line they came from; with ``labelled``, those issues go
    there instead, each with its file, for :meth:`Reader.relist`.
    """
    yield from parts.medications
    for path, offset in parts.files(number):
        yield from _read_file(reader, path, parts.origins, offset, labelled)


def _read_file(
    reader: Reader,
    path: Path,
    origins: list[str],
    offset: int,
    labelled: list[tuple[str, Issue]] | None,
) -> Iterator[Entry]:
    loads = orjson.loads
    limit = reader.max_json_bytes
    try:
        with path.open("rb", buffering=READ_BUFFER) as handle:
            for record in handle:
                kind, origin_no, index, url, payload = record.split(b"\t", 4)
                origin = origins[int(origin_no) + offset]
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
    except FileNotFoundError:
        return  # a share that routed nothing to this partition
    finally:
        path.unlink(missing_ok=True)


# --- the first pass in shares ------------------------------------------------------------------


@dataclass(frozen=True)
class _Share:
    """A file, or the lines of an NDJSON file from byte ``start`` to ``end``."""

    file: Path
    start: int
    end: int | None  # None: the whole file

    @property
    def size(self) -> int:
        return (self.end if self.end is not None else _size(self.file)) - self.start


def _shares(files: list[Path], jobs: int, share_bytes: int) -> list[_Share]:
    """The input in shares, in its order: large NDJSON files cut at line starts."""
    shares: list[_Share] = []
    for file in files:
        size = _size(file)
        cuts = min(jobs, size // share_bytes) if file.suffix.lower() in NDJSON_SUFFIXES else 1
        if cuts < 2:
            shares.append(_Share(file, 0, None))
            continue
        try:
            starts = _line_starts(file, [size * n // cuts for n in range(1, cuts)])
        except OSError:
            shares.append(_Share(file, 0, None))  # reported when it is read
            continue
        bounds = [0, *sorted(set(starts)), size]
        shares += (_Share(file, a, b) for a, b in pairwise(bounds) if b > a)
    return shares


def _line_starts(file: Path, positions: list[int]) -> list[int]:
    """The start of the first line at or after each position."""
    starts = []
    with file.open("rb") as handle:
        for position in positions:
            handle.seek(max(position - 1, 0))
            handle.readline()  # to the end of the line the position is in
            starts.append(handle.tell())
    return starts


def _lines_before(file: Path, position: int) -> int:
    """The newlines before byte ``position`` of ``file``."""
    lines = 0
    with file.open("rb") as handle:
        while position > 0:
            chunk = handle.read(min(position, _BUFFER * 4))
            if not chunk:
                break
            lines += chunk.count(b"\n")
            position -= len(chunk)
    return lines


@dataclass
class _Routed:
    """What a share's process sends back: all but the files it wrote."""

    reader: Reader
    origins: list[str]
    medications: list[Entry]
    unsupported: dict[str, int]
    patients: int
    by_url: dict[str, str]
    by_identifier: dict[tuple[str, str], str]
    order_free: bool


def _in_shares(
    reader: Reader,
    shares: list[_Share],
    directory: Path,
    count: int,
    jobs: int,
    progress: Progress | None,
) -> Partitions | None:
    """The first pass, each share in a process of its own, ``jobs`` at a time, largest first.

    None when a share met a Patient whose key depends on the Patients read before it (no id):
    the caller then reads the input in one pass.
    """
    done = multiprocessing.RawArray("q", len(shares))  # bytes read, per share: the progress
    total = sum(share.size for share in shares)
    waiting = sorted(range(len(shares)), key=lambda n: -shares[n].size)
    routed: dict[int, _Routed] = {}
    forks = Forks()

    def route(number: int) -> _Routed:
        share = shares[number]
        return _route_share(reader, share, directory, number, count, _Shared(done, number))

    try:
        while waiting or len(forks):
            while waiting and len(forks) < jobs:
                number = waiting.pop(0)
                forks.start(number, partial(route, number))
            for number in forks.ready(_PROGRESS_SECONDS):
                try:
                    routed[number] = forks.result(number)
                except TaskFailed as failed:
                    raise RuntimeError(f"partitioning the input failed: {failed}") from None
                done[number] = shares[number].size
            if progress is not None:
                progress.partitioning(sum(done), total)
    finally:
        forks.stop()
    results = [routed[number] for number in range(len(shares))]
    if not all(result.order_free for result in results):
        return None
    parts = Partitions(directory, count, [], offsets=[], resolved_late=True)
    index = PatientIndex()
    for result in results:  # as one pass over the whole input would have known them
        reader.merge(result.reader)
        parts.offsets.append(len(parts.origins))
        parts.origins += result.origins
        parts.medications += result.medications
        for name, seen in result.unsupported.items():
            parts.unsupported[name] = parts.unsupported.get(name, 0) + seen
        parts.patients += result.patients
        index.by_url.update(result.by_url)
        for key, value in result.by_identifier.items():
            index.by_identifier.setdefault(key, value)
    late_paths = [directory / f"{number:03d}-late.part" for number in range(len(shares))]
    paths = [directory / f"late-{number:04d}.part" for number in range(count)]
    with _opened(paths) as handles:
        _route_late(late_paths, parts.offsets, index, handles, count)
    if progress is not None:
        progress.partitioned(parts.patients)
    return parts


def _route_share(
    reader: Reader,
    share: _Share,
    directory: Path,
    number: int,
    count: int,
    progress: Progress,
) -> _Routed:
    """One share routed (in a process of its own) to files of its own."""
    own = Reader(reader.max_json_bytes)
    own.max_file_issues = reader.max_file_issues
    router = _Router(own, directory, number, count, progress)
    router.route_all([share])
    return _Routed(
        own,
        router.origins,
        router.medications,
        router.unsupported,
        router.patients,
        router.index.by_url,
        router.index.by_identifier,
        router.order_free,
    )


class _Shared:
    """Progress written where the parent reads it: the bytes a share has read."""

    def __init__(self, done: Any, number: int) -> None:
        self.done = done
        self.number = number

    def partitioning(self, done: int, total: int) -> None:
        self.done[self.number] = done

    def partitioned(self, patients: int) -> None:
        pass


def _route_late(
    late_paths: list[Path],
    offsets: list[int],
    index: PatientIndex,
    handles: list[IO[bytes]],
    count: int,
) -> None:
    """References resolved against every Patient of the input, as the grouping will.

    One without a patient goes to the first partition, whose grouping reports it. Their origin
    numbers become the run's (a share's count from its offset).
    """
    for late_path, offset in zip(late_paths, offsets, strict=True):
        with late_path.open("rb", buffering=READ_BUFFER) as handle:
            for record in handle:
                kind, origin_no, rest = record.split(b"\t", 2)
                payload = rest.split(b"\t", 2)[2]
                key, _ = patient_of(index, orjson.loads(payload))
                number = zlib.crc32(key.encode()) % count if key is not None else 0
                if offset:
                    record = b"%s\t%d\t%s" % (kind, int(origin_no) + offset, rest)
                handles[number].write(record)
        late_path.unlink()


class _Router:
    """Routes files or shares of files to one set of partition files (``share`` numbers it)."""

    def __init__(
        self, reader: Reader, directory: Path, share: int, count: int, progress: Progress | None
    ) -> None:
        self.reader = reader
        self.directory = directory
        self.share = share
        self.count = count
        self.progress = progress
        self.handles: list[IO[bytes]] = []
        self.late_path = directory / f"{share:03d}-late.part"
        self.late: IO[bytes] | None = None
        self.origins: list[str] = []
        self.origin_numbers: dict[str, bytes] = {}
        self.raw_prefixes: dict[str, bytes] = {}
        self.index = PatientIndex()
        self.medications: list[Entry] = []
        self.unsupported: dict[str, int] = {}
        self.patients = 0
        self.order_free = True  # no Patient's key depended on the Patients read before it
        self.total = 0  # bytes of input, for the progress
        self.read = 0  # of which read so far
        self.reported = 0

    def partitions(self) -> Partitions:
        return Partitions(
            self.directory,
            self.count,
            self.origins,
            medications=self.medications,
            unsupported=self.unsupported,
            patients=self.patients,
        )

    def open_partitions(self) -> _Opened:
        paths = [_share_path(self.directory, self.share, n) for n in range(self.count)]
        return _opened(paths, mode="ab")

    def route_all(self, shares: list[_Share]) -> None:
        reader = self.reader
        try:
            self.handles = [
                _share_path(self.directory, self.share, n).open("wb", buffering=_BUFFER)
                for n in range(self.count)
            ]
            self.late = self.late_path.open("wb", buffering=_BUFFER)
            reader.take_line = self.take_line
            sizes = [share.size for share in shares]
            self.total = sum(sizes)
            done = 0
            for share, size in zip(shares, sizes, strict=True):
                if share.end is None:
                    entries = reader.read_file(share.file)
                else:
                    first = _lines_before(share.file, share.start) + 1
                    entries = reader.read_range(share.file, share.start, share.end, first)
                for entry in entries:
                    self.route(entry)
                done += size
                self.read = self.reported = done
                if self.progress is not None:
                    self.progress.partitioning(done, self.total)
        finally:
            reader.take_line = None
            for handle in self.handles:
                handle.close()
            if self.late is not None:
                self.late.close()

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
        self.unsupported[name] = self.unsupported.get(name, 0) + 1
        self.reader.resources += 1
        return True

    # --- entries parsed ----------------------------------------------------------------------

    def route(self, entry: Entry) -> None:
        rtype = entry.rtype
        if rtype in SUBJECT_TYPES:
            key = _literal_subject(entry)
            if key is None:
                assert self.late is not None
                self.write_entry(self.late, entry)  # routed once every Patient is known
            else:
                self.write_entry(self.handles[self.number(key)], entry)
        elif rtype == "Patient":
            self.patients += 1
            rid = entry.resource.get("id")
            if not ((type(rid) is str and rid) or type(rid) is int):
                self.order_free = False  # its key may come from a Patient read before it
            self.write_entry(self.handles[self.number(self.index.add(entry))], entry)
        elif rtype == "Medication":
            self.medications.append(entry)
        else:
            self.unsupported[rtype] = self.unsupported.get(rtype, 0) + 1

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
            number = self.origin_numbers[origin] = str(len(self.origins)).encode()
            self.origins.append(origin)
        return number


class _Opened:
    """Partition files open for writing, closed on leaving."""

    def __init__(self, paths: list[Path], mode: str) -> None:
        self.handles = [path.open(mode, buffering=_BUFFER) for path in paths]

    def __enter__(self) -> list[IO[bytes]]:
        return self.handles

    def __exit__(self, *_: object) -> None:
        for handle in self.handles:
            handle.close()


def _opened(paths: list[Path], mode: str = "wb") -> _Opened:
    return _Opened(paths, mode)


def _share_path(directory: Path, share: int, number: int) -> Path:
    return directory / f"{share:03d}-{number:04d}.part"


def _subject_key(line: bytes) -> bytes | None:
    """``Patient/<id>`` from the one subject of a line, not inside a contained resource; else
    None.

    ``"subject"`` followed by a colon can only be a member name in valid JSON (inside a string
    its quotes would be escaped), and in the resource types read only the resource itself and
    its contained resources have a subject. A subject inside a contained resource comes after
    the member ``"contained"``, so only the part of the line before the subject is searched for
    it (a third of the search); a line that is not valid JSON is reported when its partition is
    read.
    """
    at = line.find(_SUBJECT_KEY)
    if at <= 0 or line[at - 1] == 0x5C:  # a backslash: the end of an escaped quote
        return None
    found = _SUBJECT.match(line, at + len(_SUBJECT_KEY))
    if (
        found is None
        or line.find(_SUBJECT_KEY, found.end()) >= 0
        or line.find(_CONTAINED, 0, at) >= 0
    ):
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
