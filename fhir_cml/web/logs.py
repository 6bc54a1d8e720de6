"""Structured logs: one JSON object per line, and one line per request.

A request line names the route *template* (``/fhir/Patient/<patient_id>/$cml-assess``), never
the path or the query, which carry patient ids; bodies are never logged. An authenticated
caller is named by who issued its token and its client id (``caller``), never by a token. Errors are logged by
exception type and status; their messages (which may quote input) stay out of the logs.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import traceback
import uuid
from datetime import UTC, datetime
from typing import Any, Final

from flask import Flask, Response, g, request

log = logging.getLogger("fhir_cml.web.access")

REQUEST_ID_HEADER: Final = "X-Request-ID"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# LogRecord attributes that are not ours to print.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """A log record as one JSON line: time, level, logger, message and the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            line["error"] = record.exc_info[0].__name__
        return json.dumps(line, default=str, ensure_ascii=False)


def configure(level: str) -> None:
    """JSON lines on stderr for the ``fhir_cml`` loggers (once per process)."""
    root = logging.getLogger("fhir_cml")
    root.setLevel(level)
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
        root.propagate = False


def install(app: Flask) -> None:
    """Request ids and the access line for every request of ``app``."""

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        given = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = given if _SAFE_ID.match(given) else uuid.uuid4().hex

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = request_id()
        started = g.get("started")
        duration = (time.perf_counter() - started) * 1000 if started is not None else None
        log.info(
            "request",
            extra={
                "request_id": request_id(),
                "method": request.method,
                "route": request.url_rule.rule if request.url_rule is not None else None,
                "status": response.status_code,
                "duration_ms": round(duration, 2) if duration is not None else None,
                "bytes": response.calculate_content_length(),
                **({"caller": g.caller} if "caller" in g else {}),
            },
        )
        return response


def note_caller(issuer: str | None, client: str | None = None) -> None:
    """Names the authenticated caller on this request's log line (issuer and client id)."""
    g.caller = " ".join(part[:128] for part in (issuer, client) if part) or "-"


def request_id() -> str:
    """This request's id (from ``X-Request-ID`` when it is safe to echo, else a new one)."""
    value = g.get("request_id")
    return value if isinstance(value, str) else "-"


def log_unexpected(logger: logging.Logger, err: BaseException) -> None:
    """An unexpected error by type and the last frames' file:line - never its message, which
    may quote patient data from the input."""
    frames = traceback.extract_tb(err.__traceback__)
    logger.error(
        "unexpected error",
        extra={
            "error": type(err).__name__,
            "where": [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in frames[-5:]],
        },
    )
