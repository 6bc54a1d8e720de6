"""Every exception fhir-cml raises, in one tree.

Callers catch :class:`FhirCmlError` for anything of ours. Errors that come from or concern a FHIR
exchange carry the OperationOutcome (as a plain JSON dict) that explains them, so a face can pass
it on unchanged.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigurationError",
    "FhirCmlError",
    "InputError",
    "OperationOutcomeError",
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


def _outcome(message: str, code: str, expression: str | None) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": message}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}
