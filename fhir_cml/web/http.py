"""HTTP plumbing the blueprints share: JSON in and out, and every error as an OperationOutcome.

Error statuses are decided in one place: a :class:`~fhir_cml.errors.RequestError` carries its
own (400, 404, 412, 415, 422...), werkzeug's HTTP errors keep theirs (404 unknown route, 405,
413), an exchange with the EHR that failed is 504 when it timed out and 502 otherwise, and
anything unexpected is a 500 that is logged by type without its message.

The request's own limits are checked first, so that they are the ones a client meets (and
answered with an OperationOutcome): a request line over ``MAX_URL_BYTES`` is 414, a header field
over ``MAX_HEADER_BYTES`` or more than ``MAX_HEADER_FIELDS`` fields is 431. gunicorn's limits
(``fhir_cml.web.gunicorn_config``) are set above these; only a request beyond gunicorn's own
ceilings meets gunicorn's plain answer. API responses (everything but the SMART app's pages,
which set their own headers) carry ``X-Content-Type-Options: nosniff`` and
``Cache-Control: no-store``.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Final

from flask import Flask, Response, request
from flask_cors import CORS
from werkzeug.exceptions import HTTPException

from fhir_cml.errors import (
    FhirClientError,
    FhirTimeoutError,
    OperationOutcomeError,
    RequestError,
)
from fhir_cml.web.logs import REQUEST_ID_HEADER, log_unexpected
from fhir_cml.web.settings import Settings

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
    414: "too-costly",
    415: "not-supported",
    422: "processing",
    429: "throttled",
    431: "too-costly",
}
_MESSAGES: Final = {
    404: "No such endpoint.",
    405: "This endpoint does not support the method {method}.",
    413: "The request body is larger than the service accepts ({limit} bytes).",
}
# The request's own limits (below gunicorn's: see fhir_cml/web/gunicorn_config.py).
MAX_URL_BYTES: Final = 4096  # path and query as sent
MAX_HEADER_BYTES: Final = 24 * 1024  # one field, name and value (a bearer JWT is at most 16 KiB)
MAX_HEADER_FIELDS: Final = 64
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
    try:
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate quoted from input: escaped, still valid JSON
        data = json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    response = Response(data, status=status, content_type=f"{media}; charset=utf-8")
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
        value = json.loads(text, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise RequestError("The body is not valid UTF-8.", code="structure") from None
    except json.JSONDecodeError as err:
        raise RequestError(
            f"The body is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}.",
            code="structure",
        ) from None
    except (ValueError, RecursionError) as err:
        raise RequestError(f"The body is not valid JSON: {err}.", code="structure") from None
    if _SURROGATE_ESCAPE.search(text) and not _unicode(value):
        raise RequestError(
            "The body is not valid JSON text: it holds a lone surrogate escape (\\ud800 to "
            "\\udfff without its pair), which stands for no character.",
            code="structure",
        )
    return value


# A \\uD800-\\uDFFF escape: only then can parsed JSON hold a lone surrogate.
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89abcdefABCDEF]")


def _unicode(value: Any) -> bool:
    """Whether every string in parsed JSON (keys too) is Unicode text (no lone surrogate)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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


def check_limits() -> None:
    """414 for a request line over MAX_URL_BYTES, 431 for too large or too many header fields."""
    environ = request.environ
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw is None:
        query = environ.get("QUERY_STRING", "")
        raw = environ.get("PATH_INFO", "") + ("?" + query if query else "")
    if len(raw) > MAX_URL_BYTES:
        raise RequestError(
            f"The URL is longer than the {MAX_URL_BYTES} bytes this service accepts.",
            status=414,
            code="too-costly",
        )
    fields = list(request.headers.items())
    if len(fields) > MAX_HEADER_FIELDS:
        raise RequestError(
            f"The request has {len(fields)} header fields; at most {MAX_HEADER_FIELDS} are "
            "accepted.",
            status=431,
            code="too-costly",
        )
    for name, value in fields:
        if len(name) + len(value) > MAX_HEADER_BYTES:
            raise RequestError(
                f"The header field {name[:40]} is longer than the {MAX_HEADER_BYTES} bytes this "
                "service accepts.",
                status=431,
                code="too-costly",
            )


def _answer(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    if request.path.startswith(_PLAIN_JSON_PREFIXES):
        return json_response(body, status, headers)
    return fhir_response(body, status, headers)


def register(app: Flask) -> None:
    """The request limits, the API headers, and the error handlers: every error leaves as an
    OperationOutcome with the right status."""

    @app.before_request
    def _limits() -> None:
        check_limits()

    @app.after_request
    def _api_headers(response: Response) -> Response:
        if request.blueprint != "smart":  # the SMART app's pages set their own headers
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Cache-Control", "no-store")
        return response

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


def install_cors(app: Flask, settings: Settings) -> None:
    """CORS for browser-based CDS clients (CDS Hooks: "CDS Services and browser-based CDS
    Clients will require CORS support"), with flask-cors: preflights answered, and the headers
    on discovery (any origin: it is public), and on the services and feedback for the origins
    of ``FHIR_CML_CDS_CORS_ORIGINS`` (none by default). Never with credentials: every call
    carries its bearer JWT, and no cookie is read."""
    resources: dict[Any, dict[str, Any]] = {re.compile(r"^/cds-services/?$"): {"origins": "*"}}
    origins = settings.cds_cors_origins
    if origins:
        resources[re.compile(r"^/cds-services/.+")] = {
            "origins": "*" if "*" in origins else list(origins)
        }
    CORS(
        app,
        resources=resources,
        methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Accept", REQUEST_ID_HEADER],
        expose_headers=[REQUEST_ID_HEADER, "WWW-Authenticate"],
        supports_credentials=False,
        send_wildcard=True,  # "*" itself rather than the origin echoed, where any is allowed
        max_age=600,
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
