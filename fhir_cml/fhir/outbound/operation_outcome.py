"""The engine's and the reader's issues as an OperationOutcome.

A FHIR client understands ``severity`` and the issue-type ``code``; our finer reason travels in
``details.coding`` (CodeSystem cml-issue) and the input resource the issue concerns in the
``issue-resource`` extension, so nothing of the JSON contract's ``issues[]`` is lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from fhir_cml.domain.model import Issue
from fhir_cml.domain.vocabulary import IssueCode, Severity
from fhir_cml.fhir.canonical import CS_ISSUE, EXT_ISSUE_RESOURCE
from fhir_cml.fhir.outbound.elements import coding
from fhir_cml.fhir.outbound.identifiers import input_reference
from fhir_cml.reporting import issue_message

SEVERITY: Final[dict[Severity, str]] = {
    Severity.ERROR: "error",
    Severity.WARNING: "warning",
    Severity.INFORMATION: "information",
}

# IssueCode -> FHIR R4 issue-type (http://hl7.org/fhir/issue-type).
ISSUE_TYPE: Final[dict[IssueCode, str]] = {
    IssueCode.UNREADABLE: "structure",
    IssueCode.UNSUPPORTED_TYPE: "not-supported",
    IssueCode.UNKNOWN_CODE: "code-invalid",
    IssueCode.UNKNOWN_UNIT: "code-invalid",
    IssueCode.MISSING_DATE: "required",
    IssueCode.FUTURE_DATE: "value",
    IssueCode.AFTER_AS_OF: "informational",
    IssueCode.OUT_OF_RANGE: "value",
    IssueCode.MISSING_VALUE: "required",
    IssueCode.NO_SUBJECT: "required",
    IssueCode.NOT_ON_IS: "business-rule",
    IssueCode.NOT_TYPICAL_TRANSCRIPT: "business-rule",
    IssueCode.LOW_CONTROL_COPIES: "business-rule",
    IssueCode.MISSING_CONTROL_COPIES: "incomplete",
    IssueCode.STATUS_IGNORED: "informational",
    IssueCode.SUPERSEDED: "informational",
    IssueCode.DUPLICATE: "duplicate",
    IssueCode.NO_THERAPY_START: "incomplete",
    IssueCode.AMBIGUOUS: "multiple-matches",
    IssueCode.INFERRED: "informational",
    IssueCode.TROUGH_NOT_IMATINIB: "not-supported",
}

NO_ISSUES: Final = "No issues."


def issue_element(
    severity: str,
    code: str,
    message: str,
    *,
    cml_code: str | None = None,
    resource: str | None = None,
    expression: Sequence[str] = (),
) -> dict[str, Any]:
    """One ``OperationOutcome.issue`` from its parts (FHIR severity and issue-type codes)."""
    element: dict[str, Any] = {}
    if resource:
        element["extension"] = [
            {"url": EXT_ISSUE_RESOURCE, "valueReference": input_reference(resource)}
        ]
    element["severity"] = severity
    element["code"] = code
    if cml_code:
        element["details"] = {"coding": [coding(CS_ISSUE, cml_code)]}
    element["diagnostics"] = message
    if expression:
        element["expression"] = list(expression)
    return element


def from_issue(issue: Issue) -> dict[str, Any]:
    return issue_element(
        SEVERITY[issue.severity],
        ISSUE_TYPE[issue.code],
        issue_message(issue),
        cml_code=issue.code.value,
        resource=issue.resource,
    )


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """An OperationOutcome of ``issues``; with none, one informational issue says so (1..*)."""
    elements = [from_issue(i) for i in issues]
    if not elements:
        elements = [issue_element("information", "informational", NO_ISSUES)]
    return {"resourceType": "OperationOutcome", "issue": elements}
