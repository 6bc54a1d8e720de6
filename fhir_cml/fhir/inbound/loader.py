"""Reading FHIR input: Bundles, single resources, NDJSON files and directories of them.

Resources come out as plain dicts parsed by orjson (about twice as fast as ``json.loads`` on
FHIR resources; it also refuses what JSON does not allow, NaN and lone surrogates): building
fhir.resources models costs about 30x the parse, which decides bulk throughput. Nothing here
raises for bad content: an unreadable file, line or entry becomes an issue naming it, and
reading goes on. Each file reports its first ``MAX_FILE_ISSUES`` problems, then a count, so a
damaged export of any size gives a bounded list.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import orjson

from fhir_cml.domain.model import Issue
from fhir_cml.domain.vocabulary import IssueCode, Severity

DEFAULT_MAX_JSON_BYTES = 64 * 1024 * 1024
NDJSON_SUFFIXES = frozenset({".ndjson", ".jsonl"})
JSON_SUFFIXES = frozenset({".json"})
MAX_FILE_ISSUES: Final = 100
MAX_NESTING: Final = 32  # arrays and Bundles inside each other
_BOM: Final = b"\xef\xbb\xbf"
# Lines are read through a buffer of this size: with the default (the file system's 4 kB block)
# reading a file line by line took three times as long, one system call per 4 kB.
READ_BUFFER: Final = 256 * 1024


@dataclass(slots=True)
class Entry:
    """One resource and where it came from.

    ``full_url`` is the Bundle entry's fullUrl: ``urn:uuid:`` references inside the same Bundle
    resolve through it, and it names resources that have no id. Where it was read is kept as
    ``origin`` and ``index`` and spelled out (``source``) only when a message needs it.
    """

    resource: dict[str, Any]
    rtype: str  # resource["resourceType"], read once here rather than by every step after
    origin: str  # "labs.ndjson line", "bundle.json entry", or a file name for a whole file
    index: int = 0
    full_url: str | None = None

    @property
    def source(self) -> str:
        return f"{self.origin} {self.index}" if self.index else self.origin


def size_text(size: int) -> str:
    """Sizes as people say them: 200 MB, 12 KB, 900 bytes."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.0f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} bytes"


class Reader:
    """One reading run: yields entries, and keeps the counts and issues of what it could not read."""

    def __init__(self, max_json_bytes: int = DEFAULT_MAX_JSON_BYTES) -> None:
        self.max_json_bytes = max_json_bytes
        self.issues: list[Issue] = []
        self.files = 0
        self.resources = 0
        self.unreadable = 0
        # Takes an NDJSON line before it is parsed (bytes, origin, number): True when it did,
        # e.g. routed the raw line to its patient's partition (see partition.py).
        self.take_line: Callable[[bytes, str, int], bool] | None = None
        self.max_file_issues = MAX_FILE_ISSUES  # listed per file; the others are counted
        self._label = ""  # the file being read
        self._problems: dict[str, int] = {}  # problems per file
        self._label_more: dict[str, int] = {}  # of which not listed (over MAX_FILE_ISSUES)

    # --- files and directories -----------------------------------------------------------------

    def read_paths(self, paths: Iterable[Path]) -> Iterator[Entry]:
        for file in self.list_files(paths):
            yield from self.read_file(file)
        self.close()

    def read_path(self, path: Path) -> Iterator[Entry]:
        yield from self.read_paths([path])

    def list_files(self, paths: Iterable[Path]) -> list[Path]:
        """The files to read, in order; a missing path or an empty directory is an issue."""
        found: list[Path] = []
        for item in paths:
            path = Path(item)
            if path.is_dir():
                files = _files_under(path)
                if not files:
                    self._problem(
                        f"{path}: no .json or .ndjson files found in this directory.",
                        Severity.ERROR,
                        count=False,
                    )
                found += files
            elif path.exists():
                found.append(path)
            else:
                self._problem(f"{path} does not exist.", Severity.ERROR, count=False)
        return found

    def read_file(self, path: Path) -> Iterator[Entry]:
        self.files += 1
        label = self._label = str(path)
        if path.suffix.lower() in NDJSON_SUFFIXES:
            yield from self._ndjson_file(path, label)
        else:
            yield from self._json_file(path, label)

    def read_range(self, path: Path, start: int, end: int, first_line: int) -> Iterator[Entry]:
        """The lines of an NDJSON file from byte ``start`` to ``end`` (both at a line's start),
        the first of them numbered ``first_line``: a share of a large file read alongside the
        others by another process (partition.py). The file is counted with its first share."""
        if start == 0:
            self.files += 1
        label = self._label = str(path)
        try:
            with path.open("rb", buffering=READ_BUFFER) as handle:
                handle.seek(start)
                yield from self._ndjson_lines(_upto(handle, end - start), label, first_line)
        except OSError as err:
            self._problem(f"{label} cannot be read: {err.strerror or err}.", Severity.ERROR)

    def merge(self, other: Reader) -> None:
        """Takes over what ``other`` read of a share of the input, as if this reader had read
        it: its counts, and its problems listed under the same per-file limit."""
        self.files += other.files
        self.resources += other.resources
        self.unreadable += other.unreadable
        label = other._label
        for issue in other.issues:
            self.relist(label, issue)
        for label, more in other._label_more.items():
            self._problems[label] = self._problems.get(label, 0) + more
            self._label_more[label] = self._label_more.get(label, 0) + more

    def close(self) -> None:
        """Ends each file's list of problems with the count of those not listed."""
        for label, more in self._label_more.items():
            self.issues.append(
                Issue(
                    Severity.ERROR,
                    IssueCode.UNREADABLE,
                    f"{label}: {more} more unreadable lines or entries (the first "
                    f"{MAX_FILE_ISSUES} are listed).",
                    None,
                )
            )
        self._label_more.clear()

    def _json_file(self, path: Path, label: str) -> Iterator[Entry]:
        try:
            size = path.stat().st_size
            if size > self.max_json_bytes:
                self._problem(
                    f"{label} is {size_text(size)}, over the {size_text(self.max_json_bytes)} "
                    "limit for one JSON document; export it as NDJSON (one resource per line), "
                    "which is read line by line without a size limit.",
                    Severity.ERROR,
                )
                return
            data = path.read_bytes()
        except OSError as err:
            self._problem(f"{label} cannot be read: {err.strerror or err}.", Severity.ERROR)
            return
        if data.startswith(_BOM):
            data = data[len(_BOM) :]
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as err:
            if _holds_lines(data):
                # One resource per line in a file named .json: read it as NDJSON.
                yield from self._ndjson_lines(data.splitlines(), label)
                return
            self._problem(f"{label} is not valid JSON ({_json_error(err)}).", Severity.ERROR)
            return
        if _is_bulk_manifest(doc):
            return
        yield from self._document(doc, label, 0, None)

    def _ndjson_file(self, path: Path, label: str) -> Iterator[Entry]:
        try:
            with path.open("rb", buffering=READ_BUFFER) as handle:
                yield from self._ndjson_lines(handle, label)
        except OSError as err:
            self._problem(f"{label} cannot be read: {err.strerror or err}.", Severity.ERROR)

    def _ndjson_lines(self, lines: Iterable[bytes], label: str, first: int = 1) -> Iterator[Entry]:
        origin = f"{label} line"
        take = self.take_line
        for number, line in enumerate(lines, first):
            if number == 1 and line.startswith(_BOM):
                line = line[len(_BOM) :]
            if take is None or not take(line, origin, number):
                yield from self.read_line(line, label, origin, number)

    def read_line(self, line: bytes, label: str, origin: str, number: int) -> Iterator[Entry]:
        """One NDJSON line (``origin`` is ``f"{label} line"``): its resource, or an issue."""
        if len(line) > self.max_json_bytes:
            self._problem(
                f"{label} line {number} is {size_text(len(line))}, over the "
                f"{size_text(self.max_json_bytes)} limit for one JSON document.",
                Severity.ERROR,
                label=label,
            )
            return
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as err:
            if not line.strip():
                return
            self._problem(
                f"{label} line {number} is not valid JSON ({_line_error(err, line)}).",
                Severity.ERROR,
                label=label,
            )
            return
        yield from self._value(doc, origin, number)

    # --- values already parsed -----------------------------------------------------------------

    def read_values(self, values: Iterable[Any], origin: str = "input") -> Iterator[Entry]:
        """Resources (or Bundles) given as parsed JSON, e.g. from a FHIR server or a test."""
        origin = f"{origin} item"
        for number, value in enumerate(values, 1):
            yield from self._value(value, origin, number)

    def _value(self, value: Any, origin: str, number: int) -> Iterator[Entry]:
        """A resource, the common case read straight away; anything else as a document."""
        rtype = _plain_type(value)
        if rtype is not None:
            self.resources += 1
            yield Entry(value, rtype, origin, number)
        else:
            yield from self._document(value, origin, number, None)

    # --- documents, Bundles and resources ------------------------------------------------------

    def _document(
        self, doc: Any, origin: str, index: int, full_url: str | None, depth: int = 0
    ) -> Iterator[Entry]:
        source = f"{origin} {index}" if index else origin
        if depth > MAX_NESTING:
            self._problem(
                f"{source} is nested too deeply (over {MAX_NESTING} arrays or Bundles inside "
                "each other); nothing read from it.",
                Severity.ERROR,
            )
            return
        if type(doc) is list:
            inner = f"{source} item"
            for number, item in enumerate(doc, 1):
                yield from self._document(item, inner, number, None, depth + 1)
            return
        if type(doc) is not dict:
            self._problem(
                f"{source} is not a FHIR resource (a JSON {_json_type(doc)}, not an object).",
                Severity.ERROR,
            )
            return
        rtype = doc.get("resourceType")
        if type(rtype) is not str or not rtype:
            self._problem(
                f"{source} is not a FHIR resource (it has no resourceType).", Severity.ERROR
            )
            return
        if rtype == "Bundle":
            yield from self._bundle(doc, source, depth)
            return
        self.resources += 1
        yield Entry(doc, rtype, origin, index, full_url)

    def _bundle(self, bundle: dict[str, Any], source: str, depth: int) -> Iterator[Entry]:
        entries = bundle.get("entry")
        if entries is None:
            return
        if type(entries) is not list:
            self._problem(f"{source}: Bundle.entry is not a list; nothing read from it.")
            return
        origin = f"{source} entry"
        for number, item in enumerate(entries, 1):
            if type(item) is not dict:
                self._problem(
                    f"{origin} {number} is not a Bundle entry (a JSON {_json_type(item)})."
                )
                continue
            resource = item.get("resource")
            if resource is None:
                if item.get("request") is None and item.get("response") is None:
                    self._problem(f"{origin} {number} has no resource.")
                continue
            full_url = item.get("fullUrl")
            if type(full_url) is not str or not full_url:
                full_url = None
            rtype = _plain_type(resource)
            if rtype is not None:
                self.resources += 1
                yield Entry(resource, rtype, origin, number, full_url)
            else:
                yield from self._document(resource, origin, number, full_url, depth + 1)

    def _problem(
        self,
        message: str,
        severity: Severity = Severity.WARNING,
        count: bool = True,
        label: str | None = None,
    ) -> None:
        issue = Issue(severity, IssueCode.UNREADABLE, message, None)
        if count:
            self.unreadable += 1
            self.relist(self._label if label is None else label, issue)
        else:
            self.issues.append(issue)

    def relist(self, label: str, issue: Issue) -> None:
        """Lists a problem of the file ``label`` unless that file has had its share: counted,
        then, for :meth:`close` (also for problems met by another reader, e.g. in a worker)."""
        seen = self._problems[label] = self._problems.get(label, 0) + 1
        if seen > self.max_file_issues:
            self._label_more[label] = self._label_more.get(label, 0) + 1
        else:
            self.issues.append(issue)


def _upto(handle: IO[bytes], length: int) -> Iterator[bytes]:
    """The lines of ``handle`` within its next ``length`` bytes."""
    for line in handle:
        yield line
        length -= len(line)
        if length <= 0:
            return


def _plain_type(doc: Any) -> str | None:
    """The type of a resource that is not a Bundle: the common case, read without further checks."""
    if type(doc) is not dict:
        return None
    rtype = doc.get("resourceType")
    return rtype if type(rtype) is str and rtype != "" and rtype != "Bundle" else None


def _files_under(directory: Path) -> list[Path]:
    """JSON and NDJSON files below a directory, in a stable order; hidden ones are skipped."""
    found: list[Path] = []
    suffixes = NDJSON_SUFFIXES | JSON_SUFFIXES
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = Path(root, name)
            if path.suffix.lower() in suffixes:
                found.append(path)
    return found


def _is_bulk_manifest(doc: Any) -> bool:
    """A Bulk Data export's manifest sits next to its NDJSON files and lists them."""
    return (
        type(doc) is dict
        and "resourceType" not in doc
        and "transactionTime" in doc
        and type(doc.get("output")) is list
    )


def _holds_lines(data: bytes) -> bool:
    """Whether a document that is not one JSON value is NDJSON: its first line is one."""
    first, newline, rest = data.lstrip().partition(b"\n")
    if not newline or not rest.strip():
        return False
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        return False
    return True


def _json_error(err: orjson.JSONDecodeError) -> str:
    return f"{err.msg} at line {err.lineno} column {err.colno}"


def _line_error(err: orjson.JSONDecodeError, line: bytes) -> str:
    """Says when a line is cut short: what a truncated download or a full disk leaves."""
    if err.pos >= len(line.rstrip()):
        return f"{err.msg}: the line is cut short"
    return f"{err.msg} at column {err.colno}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if type(value) is bool:
        return "boolean"
    if type(value) in (int, float):
        return "number"
    if type(value) is str:
        return "string"
    if type(value) is list:
        return "array"
    return type(value).__name__
