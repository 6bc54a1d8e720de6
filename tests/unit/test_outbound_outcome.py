"""Issues as OperationOutcome, and the validation gate for what fhir-cml writes."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome

from fhir_cml.domain.model import Issue
from fhir_cml.domain.vocabulary import IssueCode, Severity
from fhir_cml.errors import OperationOutcomeError
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.outbound import operation_outcome, validate
from fhir_cml.fhir.outbound.operation_outcome import ISSUE_TYPE, SEVERITY, from_issue

# http://hl7.org/fhir/R4/valueset-issue-type.html
R4_ISSUE_TYPES = {
    "invalid", "structure", "required", "value", "invariant", "security", "login", "unknown",
    "expired", "forbidden", "suppressed", "processing", "not-supported", "duplicate",
    "multiple-matches", "not-found", "deleted", "too-long", "code-invalid", "extension",
    "too-costly", "business-rule", "conflict", "transient", "lock-error", "no-store",
    "exception", "timeout", "incomplete", "throttled", "informational",
}  # fmt: skip


def test_every_issue_code_and_severity_has_a_fhir_counterpart() -> None:
    assert set(ISSUE_TYPE) == set(IssueCode)
    assert set(ISSUE_TYPE.values()) <= R4_ISSUE_TYPES
    assert set(SEVERITY) == set(Severity)
    assert set(SEVERITY.values()) <= {"fatal", "error", "warning", "information"}


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (IssueCode.UNREADABLE, "structure"),
        (IssueCode.UNKNOWN_UNIT, "code-invalid"),
        (IssueCode.MISSING_DATE, "required"),
        (IssueCode.DUPLICATE, "duplicate"),
        (IssueCode.AFTER_AS_OF, "informational"),
        (IssueCode.NOT_ON_IS, "business-rule"),
    ],
)
def test_issue_type_per_code(code: IssueCode, expected: str) -> None:
    assert from_issue(Issue(Severity.WARNING, code, "m", None))["code"] == expected


def test_an_issue_keeps_message_code_and_resource() -> None:
    issue = Issue(
        Severity.WARNING, IssueCode.UNKNOWN_UNIT, "Unit 'mg/dl' is not known.", "Observation/7"
    )
    element = from_issue(issue)
    assert element == {
        "extension": [
            {"url": c.EXT_ISSUE_RESOURCE, "valueReference": {"reference": "Observation/7"}}
        ],
        "severity": "warning",
        "code": "code-invalid",
        "details": {"coding": [{"system": c.CS_ISSUE, "code": "unknown-unit"}]},
        "diagnostics": "Unit 'mg/dl' is not known.",
    }


def test_a_file_or_entry_name_is_kept_as_display_not_as_a_reference() -> None:
    issue = Issue(Severity.ERROR, IssueCode.UNREADABLE, "not JSON", "data/in.json entry 3")
    ref = from_issue(issue)["extension"][0]["valueReference"]
    assert ref == {"display": "data/in.json entry 3"}
    urn = "urn:uuid:7b0e6b1e-1111-4d2a-9a55-000000000001"
    logical = from_issue(Issue(Severity.ERROR, IssueCode.UNREADABLE, "x", urn))
    assert logical["extension"][0]["valueReference"] == {
        "identifier": {"system": c.URI_IDENTIFIER, "value": urn}
    }
    assert from_issue(Issue(Severity.ERROR, IssueCode.UNREADABLE, "x"))["severity"] == "error"
    assert "extension" not in from_issue(Issue(Severity.INFORMATION, IssueCode.INFERRED, "x"))


def test_operation_outcome_is_valid_and_never_empty() -> None:
    issues = [
        Issue(s, code, f"{code} {s}", "Observation/1") for s in Severity for code in IssueCode
    ]
    outcome = operation_outcome(issues)
    OperationOutcome.model_validate(outcome)
    assert len(outcome["issue"]) == len(issues)
    empty = operation_outcome([])
    OperationOutcome.model_validate(empty)
    assert empty["issue"][0]["code"] == "informational"


def care_plan(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "CarePlan",
        "status": "draft",
        "intent": "proposal",
        "subject": {"reference": "Patient/1"},
        **extra,
    }


def test_validate_accepts_a_valid_resource() -> None:
    validate(care_plan())


def test_validate_reports_element_paths_in_an_operation_outcome() -> None:
    bad = care_plan(
        activity=[{"detail": {"status": "not-started", "colour": "blue"}}], created="yesterday"
    )
    with pytest.raises(OperationOutcomeError) as caught:
        validate(bad)
    outcome = caught.value.outcome
    OperationOutcome.model_validate(outcome)
    paths = {e for i in outcome["issue"] for e in i["expression"]}
    assert paths == {"CarePlan.activity[0].detail.colour", "CarePlan.created"}
    assert {i["severity"] for i in outcome["issue"]} == {"error"}
    assert {i["code"] for i in outcome["issue"]} == {"structure", "value"}
    assert "CarePlan." in caught.value.message


def test_validate_reports_a_missing_element() -> None:
    missing = care_plan()
    del missing["status"]
    with pytest.raises(OperationOutcomeError) as caught:
        validate(missing)
    (issue,) = caught.value.outcome["issue"]
    assert issue["code"] == "required"
    assert issue["expression"] == ["CarePlan.status"]


@pytest.mark.parametrize("resource", [{}, {"resourceType": "NoSuchThing"}, {"resourceType": 3}])
def test_validate_refuses_what_is_not_a_resource(resource: dict[str, Any]) -> None:
    with pytest.raises(OperationOutcomeError) as caught:
        validate(resource)
    assert caught.value.outcome["issue"][0]["expression"] == ["resourceType"]
