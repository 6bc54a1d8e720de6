"""Results written as they are made, so that output of any size is never held whole.

- :class:`Sink`: a file is written beside its final name and renamed into place only when
  complete, so a reader never finds half a document under that name; a stream (stdout) gets the
  bytes as they come, and a run that fails leaves the document unterminated, which no JSON
  reader takes for a complete one.
- :class:`JsonDocument`: a JSON object with one array member written item by item, laid out
  as ``json.dumps(indent=2)`` lays it out; :class:`NdjsonLines`: one JSON value per line.
- :class:`ContractReport` and :class:`TextReport`: the ``--format json`` and ``text`` reports of
  :mod:`fhir_cml.reporting`, one patient at a time. The text report opens with counts known
  only at the end, so its patient blocks wait in a temporary file (memory up to a few MB).

Nothing is written before the first item or the end: a run that fails on its first patient
writes nothing.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import IO, Any, Final

import orjson

from fhir_cml.domain.model import Issue
from fhir_cml.domain.results import Assessment
from fhir_cml.domain.vocabulary import Guideline
from fhir_cml.reporting.contract import (
    LoadSummary,
    contract_head,
    contract_tail,
    patient_contract,
)
from fhir_cml.reporting.text import Sources, patient_text, text_head, text_tail

__all__ = ["ContractReport", "JsonDocument", "NdjsonLines", "Sink", "TextReport", "encode"]

_INDENT: Final = orjson.OPT_INDENT_2
_SPOOL_BYTES: Final = 8 * 1024 * 1024
_COPY_BYTES: Final = 1024 * 1024
# What orjson writes around a value in ``{"": [value]}``, indented: the value is then at the
# depth of a document's items (JsonDocument.encode_piece).
_WRAPPER_HEAD: Final = b'{\n  "": [\n'
_WRAPPER_TAIL: Final = b"\n  ]\n}"


class Sink:
    """Where a document goes: ``path`` (complete or not at all), else ``stream``."""

    def __init__(self, path: Path | None = None, stream: IO[bytes] | None = None) -> None:
        if (path is None) == (stream is None):
            raise ValueError("a Sink writes to a path or to a stream")
        self.path = path
        self._partial: Path | None = None
        self._out: IO[bytes]
        if path is not None:
            # Beside the final name, so that the rename stays on one file system.
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in commit/abort
                dir=path.parent, prefix=f".{path.name}.", suffix=".partial", delete=False
            )
            self._partial = Path(handle.name)
            self._out = handle
        else:
            assert stream is not None
            self._out = stream

    def write(self, data: bytes | memoryview) -> None:
        self._out.write(data)

    def write_file(self, path: Path, offset: int = 0) -> None:
        """The bytes of ``path`` from ``offset`` on, copied by the kernel where it can: what a
        worker process wrote goes to the output without passing through this process."""
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            try:
                out = self._out.fileno()
            except (OSError, ValueError):  # not a file (e.g. a buffer in memory)
                out = -1
            if out >= 0:
                self._out.flush()
                try:
                    while offset < size:
                        sent = os.sendfile(out, handle.fileno(), offset, size - offset)
                        if sent == 0:
                            break
                        offset += sent
                except OSError as err:
                    if err.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                        raise
            if offset < size:  # no sendfile here: copied through this process
                handle.seek(offset)
                shutil.copyfileobj(handle, self._out, _COPY_BYTES)

    def commit(self) -> None:
        """The document is complete: flushed, and a file put in place under its name."""
        self._out.flush()
        if self._partial is not None and self.path is not None:
            self._out.close()
            os.replace(self._partial, self.path)
            self._partial = None

    def abort(self) -> None:
        """The document is not complete: a file is removed, a stream left as it is."""
        if self._partial is not None:
            self._out.close()
            self._partial.unlink(missing_ok=True)
            self._partial = None
        else:
            self._out.flush()


class JsonDocument:
    """``{**head, member: [items...], **tail}``, the items written as they are added."""

    def __init__(self, sink: Sink, head: dict[str, Any], member: str) -> None:
        self.sink = sink
        self.head = head
        self.member = member
        self.items = 0

    def add(self, item: Any) -> None:
        self.add_pieces(self.encode_piece(item), 1)

    @staticmethod
    def encode_piece(item: Any) -> bytes:
        """``item`` encoded and laid out as :meth:`piece` lays out an encoded item, in one step:
        encoded inside a wrapper that puts it at the depth of the document's items, so no second
        pass over its bytes indents it (a patient's entry is about 80 kB)."""
        wrapped = orjson.dumps({"": [item]}, option=_INDENT)
        return b",\n" + wrapped[len(_WRAPPER_HEAD) : -len(_WRAPPER_TAIL)]

    def add_encoded(self, item: bytes) -> None:
        """An item already encoded by :func:`encode` (e.g. in another process)."""
        self.add_pieces(self.piece(item), 1)

    @staticmethod
    def piece(item: bytes) -> bytes:
        """An item encoded by :func:`encode` as it is laid out in the document, comma first: the
        work a worker process can do before the item reaches :meth:`add_pieces`."""
        return b",\n    " + item.replace(b"\n", b"\n    ")

    def add_pieces(self, pieces: bytes | Path, count: int) -> None:
        """``count`` items laid out by :meth:`piece` and joined, given as bytes or in a file."""
        if not count:
            return
        skip = 0
        if self.items == 0:
            self._open()
            skip = 1  # no comma before the first item
        if isinstance(pieces, Path):
            self.sink.write_file(pieces, skip)
        else:
            self.sink.write(memoryview(pieces)[skip:])
        self.items += count

    def finish(self, tail: dict[str, Any]) -> None:
        if self.items == 0:
            self._open()
            self.sink.write(b"]")
        else:
            self.sink.write(b"\n  ]")
        for key, value in tail.items():
            self.sink.write(b",\n  " + orjson.dumps(key) + b": " + _nested(value, b"\n  "))
        self.sink.write(b"\n}\n")
        self.sink.commit()

    def _open(self) -> None:
        start = b"{\n" if not self.head else orjson.dumps(self.head, option=_INDENT)[:-2] + b",\n"
        self.sink.write(start + b"  " + orjson.dumps(self.member) + b": [")


class NdjsonLines:
    """One JSON value per line."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def add(self, item: Any) -> None:
        self.add_encoded(orjson.dumps(item))

    def add_encoded(self, line: bytes) -> None:
        """A value already encoded on one line (``orjson.dumps``)."""
        self.sink.write(line + b"\n")

    @staticmethod
    def piece(line: bytes) -> bytes:
        return line + b"\n"

    def add_pieces(self, pieces: bytes | Path, count: int) -> None:
        """Lines laid out by :meth:`piece` and joined, given as bytes or in a file."""
        if isinstance(pieces, Path):
            self.sink.write_file(pieces)
        else:
            self.sink.write(pieces)

    def finish(self) -> None:
        self.sink.commit()


class ContractReport:
    """The JSON contract (``to_contract``), one patient at a time."""

    def __init__(self, sink: Sink, *, as_of: date, guideline: Guideline) -> None:
        self.document = JsonDocument(
            sink, contract_head(as_of=as_of, guideline=guideline), "patients"
        )

    @staticmethod
    def render(assessment: Assessment) -> bytes:
        """One patient's entry, laid out for the document (this can run in a worker process)."""
        return JsonDocument.encode_piece(patient_contract(assessment))

    def add(self, rendered: bytes) -> None:
        self.document.add_pieces(rendered, 1)

    @staticmethod
    def piece(rendered: bytes) -> tuple[bytes, int]:
        """A patient's entry as it adds to the document: as rendered."""
        return rendered, 1

    def add_pieces(self, pieces: bytes | Path, count: int) -> None:
        self.document.add_pieces(pieces, count)

    def finish(self, summary: LoadSummary, issues: Iterable[Issue]) -> None:
        self.document.finish(
            contract_tail(self.document.items, load_summary=summary, issues=issues)
        )


class TextReport:
    """The text (``to_text``), one patient at a time; the blocks wait on disk for the head."""

    def __init__(self, sink: Sink, *, as_of: date, guideline: Guideline) -> None:
        self.sink = sink
        self.as_of = as_of
        self.guideline = guideline
        self.sources = Sources()
        self.assessed = 0
        self._blocks = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115

    @staticmethod
    def render(assessment: Assessment) -> Assessment:
        """The assessment itself: its block cites sources numbered across the whole text, so it
        is laid out here, in order (:meth:`add`), not in a worker."""
        return assessment

    def add(self, assessment: Assessment) -> None:
        block = "\n".join(patient_text(assessment, self.sources))
        self._blocks.write(("\n\n" + block).encode())
        self.assessed += 1

    def finish(self, summary: LoadSummary, issues: Iterable[Issue]) -> None:
        head = text_head(
            self.assessed, as_of=self.as_of, guideline=self.guideline, load_summary=summary
        )
        self.sink.write("\n".join(head).encode())
        self._blocks.seek(0)
        shutil.copyfileobj(self._blocks, _Writer(self.sink))
        self._blocks.close()
        tail = text_tail(self.sources, issues)
        self.sink.write("".join(f"\n{line}" for line in tail).encode() + b"\n")
        self.sink.commit()


class _Writer:
    """A Sink as a file object for ``shutil.copyfileobj``."""

    def __init__(self, sink: Sink) -> None:
        self.write = sink.write


def encode(value: Any) -> bytes:
    """``value`` as JSON indented by two spaces, as ``json.dumps(value, indent=2)`` lays it out."""
    return orjson.dumps(value, option=_INDENT)


def _nested(value: Any, indent: bytes) -> bytes:
    """``value`` as indented JSON, at the depth ``indent`` (a newline and spaces) says."""
    return orjson.dumps(value, option=_INDENT).replace(b"\n", indent)
