"""Every exception fhir-cml raises, in one tree.

Callers catch :class:`FhirCmlError` for anything of ours. Errors that come from or concern a FHIR
exchange carry the OperationOutcome (as a plain JSON dict) that explains them, so a face can pass
it on unchanged.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "BulkExportError",
    "ConfigurationError",
    "FhirAuthError",
    "FhirClientError",
    "FhirCmlError",
    "FhirConflictError",
    "FhirHttpError",
    "FhirNotFoundError",
    "FhirRateLimitError",
    "FhirResponseError",
    "FhirServerError",
    "FhirTimeoutError",
    "FhirTransportError",
    "ForbiddenError",
    "InputError",
    "OperationOutcomeError",
    "PrefetchError",
    "RequestError",
    "StateError",
    "SyncAlreadyRunning",
    "TokenError",
]


class FhirCmlError(Exception):
    """Base class of every error raised by fhir-cml."""


class ConfigurationError(FhirCmlError):
    """A setting is missing or wrong; raised at start-up, before any work is done."""


class OperationOutcomeError(FhirCmlError):
    """An error that can be described to a FHIR client as an OperationOutcome."""

    def __init__(
        self,
        message: str,
        *,
        outcome: dict[str, Any] | None = None,
        code: str = "processing",
        status: int = 400,
        expression: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.expression = expression
        self.outcome: dict[str, Any] = outcome or _outcome(message, code, expression)


class InputError(OperationOutcomeError):
    """Input that cannot be read at all: not JSON, not FHIR, too large.

    ``source`` names the file (and entry) so the message can be acted on.
    """

    def __init__(self, message: str, *, source: str | None = None, code: str = "invalid") -> None:
        super().__init__(f"{source}: {message}" if source else message, code=code, status=400)
        self.source = source


class StateError(FhirCmlError):
    """The state store (SQLite or PostgreSQL) cannot be opened, read or written."""


class SyncAlreadyRunning(StateError):
    """Another sync of the same server holds the state store's run lock; this one did nothing."""


# --- Talking to a FHIR server --------------------------------------------------------------------
#
# FhirClientError                  anything that went wrong in an exchange with a FHIR server
# +-- FhirTransportError           no HTTP answer: refused, reset, dropped mid-body (.status 502)
# |   +-- FhirTimeoutError         no answer in time (.status 504)
# +-- FhirHttpError                the server answered with an error status (.status is it)
# |   +-- FhirAuthError            401, 403
# |   +-- FhirNotFoundError        404, 410
# |   +-- FhirConflictError        409, 412 (a version or If-Match conflict)
# |   +-- FhirRateLimitError       429
# |   +-- FhirServerError          5xx
# +-- FhirResponseError            a 2xx answer that is not what FHIR promises (not JSON, not a
# |                                Bundle, a next link to another origin) (.status 502)
# +-- TokenError                   the OAuth token endpoint refused or failed (.status 401)
# +-- BulkExportError              a Bulk Data export failed or gave up (.status 502)
#
# ``.status`` is the upstream HTTP status where there was one; otherwise the status a gateway
# would answer (502 bad gateway, 504 gateway timeout), so a face can pass the error on as is.


class FhirClientError(OperationOutcomeError):
    """An exchange with a FHIR server failed; ``outcome`` is the server's OperationOutcome.

    When the server sent no OperationOutcome, one is made from the message, so callers can always
    pass ``outcome`` on. ``method`` and ``url`` name the request (the URL without its query, which
    may carry patient ids).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 502,
        outcome: dict[str, Any] | None = None,
        code: str = "exception",
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message, outcome=outcome, code=code, status=status)
        self.method = method
        self.url = url


class FhirTransportError(FhirClientError):
    """No usable HTTP answer: connection refused or reset, or dropped while the body arrived."""


class FhirTimeoutError(FhirTransportError):
    """The server did not answer within the configured timeout."""


class FhirHttpError(FhirClientError):
    """The server answered with an HTTP error status (4xx/5xx)."""


class FhirAuthError(FhirHttpError):
    """401 or 403: the token is missing, expired, or does not allow the request."""


class FhirNotFoundError(FhirHttpError):
    """404 or 410: the resource (or the endpoint) is not there, or is gone."""


class FhirConflictError(FhirHttpError):
    """409 or 412: the resource changed since it was read (If-Match), or a conflicting write."""


class FhirRateLimitError(FhirHttpError):
    """429 even after the retries allowed; ``retry_after`` is the server's last hint (seconds)."""

    retry_after: float | None = None


class FhirServerError(FhirHttpError):
    """5xx even after the retries allowed (or not retried because repeating was unsafe)."""


class FhirResponseError(FhirClientError):
    """A success status with a body that is not what FHIR promises (e.g. a page not a Bundle)."""


class TokenError(FhirClientError):
    """The authorization server did not issue an access token (SMART Backend Services)."""


class BulkExportError(FhirClientError):
    """A Bulk Data export could not be started, failed on the server, or took too long."""


# --- The service's answers to its callers (fhir_cml.web) -----------------------------------------
#
# RequestError                     the request cannot be served as sent (.status: 400, 404, 405,
# |                                413, 415, 422...)
# +-- AuthenticationError          no acceptable bearer token: the CDS Hooks JWT of a trusted EHR,
# |                                or a caller's access token on the FHIR API (401)
# +-- ForbiddenError               an authenticated caller whose scopes do not cover it (403)
# +-- PrefetchError                a CDS Hooks call lacks data it was not allowed to fetch (412)


class RequestError(OperationOutcomeError):
    """A request the service cannot serve as sent; ``status`` is the HTTP status to answer."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        code: str = "invalid",
        expression: str | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status, expression=expression)


class AuthenticationError(RequestError):
    """The bearer token is missing or not acceptable; the message says why.

    ``challenge`` is the ``WWW-Authenticate`` value to answer with (RFC 6750), when not the
    default ``Bearer error="invalid_token"``.
    """

    def __init__(self, message: str, *, challenge: str | None = None) -> None:
        super().__init__(message, status=401, code="login")
        self.challenge = challenge


class ForbiddenError(RequestError):
    """An authenticated caller whose token does not allow the request (403); ``challenge`` as
    for :class:`AuthenticationError` (``error="insufficient_scope"``)."""

    def __init__(self, message: str, *, challenge: str | None = None) -> None:
        super().__init__(message, status=403, code="forbidden")
        self.challenge = challenge


class PrefetchError(RequestError):
    """A CDS Hooks call without the prefetch it needs and without FHIR access to fetch it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=412, code="incomplete")


def _outcome(message: str, code: str, expression: str | None) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": message}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}
