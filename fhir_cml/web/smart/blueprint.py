"""The SMART app's blueprint: its pages, its templates and static files, its error pages.

Every answer of the app carries headers for pages that show patient data: nothing cached, no
referrer (URLs carry launch and authorization parameters), and a Content Security Policy that
allows only the app's own stylesheet (the page runs no script) and lets only the EHR origins on
``FHIR_CML_SMART_FRAME_ANCESTORS`` frame it (none by default). The one page any site may frame
says "open the app in a new window" and shows no patient data (:data:`FRAMEABLE`).
"""

from __future__ import annotations

import logging
from typing import Final

from flask import Blueprint, Response, g, render_template, request
from werkzeug.exceptions import HTTPException

from fhir_cml.errors import FhirClientError, FhirTimeoutError, OperationOutcomeError
from fhir_cml.web.logs import log_unexpected
from fhir_cml.web.smart.errors import EHR_ADMINISTRATOR, SmartError, sentence
from fhir_cml.web.smart.runtime import smart_runtime

log = logging.getLogger("fhir_cml.web.smart")

bp = Blueprint(
    "smart",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/smart/assets",
)

CSP: Final = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors "
)
INTERNAL: Final = "The app failed; the error has been logged and nothing was written."
INTERNAL_HINT: Final = "Try again; if it happens again, tell the app's administrator."
FRAMEABLE: Final = "smart_frameable"  # flask.g flag: this answer may be framed by any site


def frame_ancestors(origins: tuple[str, ...]) -> str:
    """The ``frame-ancestors`` sources: the allowed EHR origins, or 'none'."""
    return " ".join(origins) if origins else "'none'"


@bp.after_request
def _headers(response: Response) -> Response:
    if g.get(FRAMEABLE, False):
        ancestors = "*"
    else:
        ancestors = frame_ancestors(smart_runtime().settings.smart_frame_ancestors)
    response.headers["Content-Security-Policy"] = CSP + ancestors
    response.headers.pop("X-Frame-Options", None)  # frame-ancestors decides
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.endpoint != "smart.static":
        response.headers["Cache-Control"] = "no-store"
    return response


def error_page(status: int, title: str, message: str, hint: str | None = None) -> Response:
    body = render_template(
        "smart/error.html", status=status, title=title, message=message, hint=hint
    )
    return Response(body, status=status, content_type="text/html; charset=utf-8")


@bp.errorhandler(SmartError)
def _refused(err: SmartError) -> Response:
    return error_page(err.status, err.title, err.message, err.hint)


@bp.errorhandler(FhirClientError)
def _upstream(err: FhirClientError) -> Response:
    log.warning(
        "the EHR's FHIR server failed",
        extra={"error": type(err).__name__, "upstream_status": err.status},
    )
    status = 504 if isinstance(err, FhirTimeoutError) else 502
    return error_page(
        status,
        "The EHR's FHIR server did not answer as expected",
        sentence(err.message),
        EHR_ADMINISTRATOR,
    )


@bp.errorhandler(OperationOutcomeError)
def _ours(err: OperationOutcomeError) -> Response:
    status = err.status if 400 <= err.status < 600 else 500
    if status >= 500:
        log.error("internal error", extra={"error": type(err).__name__})
        return error_page(status, "Internal error", INTERNAL, INTERNAL_HINT)
    return error_page(
        status,
        "The data cannot be assessed",
        sentence(err.message),
        "Check the patient's results in the EHR; nothing was written.",
    )


@bp.errorhandler(HTTPException)
def _http(err: HTTPException) -> Response:
    status = err.code or 500
    return error_page(status, err.name, sentence(err.description or err.name))


@bp.errorhandler(Exception)
def _unexpected(err: Exception) -> Response:
    log_unexpected(log, err)
    return error_page(500, "Internal error", INTERNAL, INTERNAL_HINT)
