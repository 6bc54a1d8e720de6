"""HTTP plumbing the blueprints share: JSON in and out, and every error as an OperationOutcome.

Error statuses are decided in one place: a :class:`~fhir_cml.errors.RequestError` carries its
own (400, 404, 412, 415, 422...), werkzeug's HTTP errors keep theirs (404 unknown route, 405,
413), an exchange with the EHR that failed is 504 when it timed out and 502 otherwise, and
anything unexpected is a 500 that is logged by type without its message.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from fhir_cml.errors import (
    FhirClientError,
    FhirTimeoutError,
    OperationOutcomeError,
    RequestError,
)
from fhir_cml.web.logs import log_unexpected

log = logging.getLogger("fhir_cml.web")

FHIR_JSON: Final = "application/fhir+json"
JSON: Final = "application/json"
JSON_TYPES: Final = (FHIR_JSON, JSON)
# HTTP status -> FHIR issue-type for errors werkzeug raises.
_ISSUE_TYPE: Final = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    412: "incomplete",
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    429: "throttled",
}
_MESSAGES: Final = {
    404: "No such endpoint.",
    405: "This endpoint does not support the method {method}.",
    413: "The request body is larger than the service accepts ({limit} bytes).",
}
# Paths whose answers are plain JSON (CDS Hooks, health); everything else is FHIR.
_PLAIN_JSON_PREFIXES: Final = ("/cds-services", "/healthz", "/readyz")


def outcome(message: str, code: str = "invalid", severity: str = "error") -> dict[str, Any]:
    """An OperationOutcome with one issue."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": message}],
    }


def fhir_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``body`` as ``application/fhir+json``."""
    return _json(body, status, FHIR_JSON, headers)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``body`` as ``application/json`` (CDS Hooks, health checks)."""
    return _json(body, status, JSON, headers)


def _json(body: Any, status: int, media: str, headers: dict[str, str] | None) -> Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    response = Response(text, status=status, content_type=f"{media}; charset=utf-8")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def read_json(*, required: bool = True) -> Any:
    """The request body parsed as JSON; RequestError (400/415) when it cannot be.

    Accepts ``application/fhir+json`` and ``application/json`` in UTF-8. An empty body is None
    when not ``required``. Size is limited by ``MAX_CONTENT_LENGTH`` (413, raised by werkzeug).
    """
    data = request.get_data(cache=True)
    if not data.strip():
        if required:
            raise RequestError("The request has no body; a JSON document is expected.")
        return None
    media = request.mimetype
    if media not in JSON_TYPES:
        raise RequestError(
            f"Content-Type {media or '(none)'} is not supported: send application/fhir+json "
            "or application/json.",
            status=415,
            code="not-supported",
        )
    charset = (request.mimetype_params.get("charset") or "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise RequestError(
            f"charset {charset} is not supported: JSON is sent as UTF-8.",
            status=415,
            code="not-supported",
        )
    try:
        text = data.decode("utf-8-sig")
        return json.loads(text, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise RequestError("The body is not valid UTF-8.", code="structure") from None
    except json.JSONDecodeError as err:
        raise RequestError(
            f"The body is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}.",
            code="structure",
        ) from None
    except (ValueError, RecursionError) as err:
        raise RequestError(f"The body is not valid JSON: {err}.", code="structure") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def check_accept() -> None:
    """406 when the client accepts neither FHIR JSON nor JSON (``Accept`` or ``_format``)."""
    fmt = request.args.get("_format")
    if fmt is not None and fmt not in ("json", FHIR_JSON, JSON):
        raise RequestError(
            f"_format={fmt} is not supported: this server speaks JSON only.",
            status=406,
            code="not-supported",
        )
    if "Accept" in request.headers and not request.accept_mimetypes.best_match([FHIR_JSON, JSON]):
        raise RequestError(
            "The Accept header admits neither application/fhir+json nor application/json.",
            status=406,
            code="not-supported",
        )


def _answer(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    if request.path.startswith(_PLAIN_JSON_PREFIXES):
        return json_response(body, status, headers)
    return fhir_response(body, status, headers)


def register(app: Flask) -> None:
    """The error handlers: every error leaves as an OperationOutcome with the right status."""

    @app.errorhandler(FhirClientError)
    def _upstream(err: FhirClientError) -> Response:
        timed_out = isinstance(err, FhirTimeoutError)
        status = 504 if timed_out else 502
        log.warning(
            "the EHR's FHIR server failed",
            extra={"error": type(err).__name__, "upstream_status": err.status},
        )
        issues = outcome(
            ("The EHR's FHIR server did not answer in time: " if timed_out else "") + err.message,
            "timeout" if timed_out else "exception",
        )["issue"]
        upstream = err.outcome.get("issue") if isinstance(err.outcome, dict) else None
        if isinstance(upstream, list) and not _generated(err):
            issues += [i for i in upstream if isinstance(i, dict)]
        return _answer({"resourceType": "OperationOutcome", "issue": issues}, status)

    @app.errorhandler(OperationOutcomeError)
    def _ours(err: OperationOutcomeError) -> Response:
        status = err.status if 400 <= err.status < 600 else 500
        if status >= 500:
            log.error("internal error", extra={"error": type(err).__name__})
        challenge = getattr(err, "challenge", None)
        if status == 401:
            challenge = challenge or 'Bearer error="invalid_token"'
        headers = {"WWW-Authenticate": challenge} if challenge else None
        return _answer(err.outcome, status, headers)

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException) -> Response:
        status = err.code or 500
        template = _MESSAGES.get(status)
        message = (
            template.format(method=request.method, limit=app.config.get("MAX_CONTENT_LENGTH"))
            if template
            else (err.description or err.name)
        )
        headers = {k: v for k, v in err.get_headers() if k.lower() == "allow"}
        return _answer(outcome(message, _ISSUE_TYPE.get(status, "exception")), status, headers)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        log_unexpected(log, err)
        return _answer(
            outcome("Internal error; it has been logged.", "exception"),
            500,
        )


def _generated(err: FhirClientError) -> bool:
    """Whether the error's outcome was made from its own message, not sent by the server."""
    issues = err.outcome.get("issue") if isinstance(err.outcome, dict) else None
    return (
        isinstance(issues, list)
        and len(issues) == 1
        and isinstance(issues[0], dict)
        and issues[0].get("diagnostics") == err.message
    )
