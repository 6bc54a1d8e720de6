"""Patient, the CML Condition and AdverseEvents."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from fhir_cml.domain.vocabulary import IssueCode, Phase
from fhir_cml.fhir import canonical as c
from tests.unit.inbound_builders import (
    PATIENT,
    bcr,
    codes,
    concept,
    condition,
    issue,
    load,
    patient,
)


def _record(*resources: dict[str, Any]) -> Any:
    result = load(*resources)
    assert len(result.records) == 1
    return result.records[0]


def test_birth_date() -> None:
    assert _record(patient(birthDate="1961-04-02"), bcr()).birth_date == date(1961, 4, 2)


def test_birth_date_in_the_future() -> None:
    rec = _record(patient(birthDate="2031-01-01"), bcr())
    assert rec.birth_date is None
    assert IssueCode.FUTURE_DATE in codes(rec.issues)


def test_conflicting_birth_dates_by_identifier() -> None:
    ident = [{"system": "urn:mrn", "value": "42"}]
    first = patient("a", birthDate="1960-01-01", identifier=ident)
    second = {**patient(birthDate="1961-01-01", identifier=ident)}
    del second["id"]
    rec = _record(first, second, bcr(subject="Patient/a"))
    assert rec.birth_date is None
    assert IssueCode.AMBIGUOUS in codes(rec.issues)


@pytest.mark.parametrize(
    "code",
    [
        concept(c.SNOMED, "92818009"),
        concept(c.ICD10, "C92.1"),
        concept(c.ICD10_CM, "C92.10"),
        concept("http://fhir.de/CodeSystem/bfarm/icd-10-gm", "C92.10"),
        concept(c.ICD_O_3, "9875/3"),
    ],
)
def test_cml_condition_codes(code: dict[str, Any]) -> None:
    rec = _record(patient(), condition(code=code, onsetDateTime="2018-12-20"))
    (dx,) = rec.diagnoses
    assert (dx.ref, dx.onset) == ("Condition/c1", date(2018, 12, 20))


def test_other_condition_is_not_cml_evidence() -> None:
    result = load(patient(), condition(code=concept(c.ICD10, "C92.2")))
    assert result.records == []
    assert result.skipped_patients == 1


@pytest.mark.parametrize(
    ("summary", "phase"),
    [
        (concept(c.SNOMED, "278177007"), Phase.CHRONIC),
        (concept(c.SNOMED, "278179005"), Phase.ACCELERATED),
        (concept(c.SNOMED, "255251009"), Phase.BLAST),
        ({"text": "Blast crisis"}, Phase.BLAST),
    ],
)
def test_phase(summary: dict[str, Any], phase: Phase) -> None:
    rec = _record(patient(), condition(stage=[{"summary": summary}]))
    assert rec.diagnoses[0].phase is phase


def test_two_phases_are_ambiguous() -> None:
    stages = [
        {"summary": concept(c.SNOMED, "278177007")},
        {"summary": concept(c.SNOMED, "278179005")},
    ]
    rec = _record(patient(), condition(stage=stages))
    assert rec.diagnoses[0].phase is Phase.CHRONIC
    assert IssueCode.AMBIGUOUS in codes(rec.issues)


def test_onset_period() -> None:
    rec = _record(patient(), condition(onsetPeriod={"start": "2019-01-05"}))
    assert rec.diagnoses[0].onset == date(2019, 1, 5)


def test_refuted_condition_is_left_out() -> None:
    status = concept("http://terminology.hl7.org/CodeSystem/condition-ver-status", "refuted")
    rec = _record(patient(), condition(verificationStatus=status), bcr())
    assert rec.diagnoses == ()
    assert IssueCode.STATUS_IGNORED in codes(rec.issues)


def _event(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "AdverseEvent",
        "id": "ae1",
        "actuality": "actual",
        "subject": {"reference": PATIENT},
        "event": {"text": "Periorbital oedema"},
        "date": "2024-02-01",
        **extra,
    }


def _events(*resources: dict[str, Any]) -> Any:
    return _record(patient(), condition(), *resources)


@pytest.mark.parametrize(
    ("severity", "affects"),
    [(None, True), ("mild", False), ("moderate", True), ("severe", True)],
)
def test_adverse_event_severity(severity: str | None, affects: bool) -> None:
    extra = {}
    if severity:
        extra["severity"] = concept(
            "http://terminology.hl7.org/CodeSystem/adverse-event-severity", severity
        )
    (event,) = _events(_event(**extra)).adverse_events
    assert event.affects_quality_of_life is affects
    assert (event.ref, event.date, event.description) == (
        "AdverseEvent/ae1",
        date(2024, 2, 1),
        "Periorbital oedema",
    )


def test_resolved_adverse_event_ends_when_last_updated() -> None:
    outcome = concept("http://terminology.hl7.org/CodeSystem/adverse-event-outcome", "resolved")
    rec = _events(_event(outcome=outcome, meta={"lastUpdated": "2024-04-10T10:00:00Z"}))
    assert rec.adverse_events[0].resolved == date(2024, 4, 10)


def test_resolved_adverse_event_without_update_date_ends_on_its_date() -> None:
    outcome = concept("http://terminology.hl7.org/CodeSystem/adverse-event-outcome", "resolved")
    assert _events(_event(outcome=outcome)).adverse_events[0].resolved == date(2024, 2, 1)


def test_ongoing_adverse_event() -> None:
    outcome = concept("http://terminology.hl7.org/CodeSystem/adverse-event-outcome", "ongoing")
    assert _events(_event(outcome=outcome)).adverse_events[0].resolved is None


def test_adverse_event_recorded_date() -> None:
    event = _event(recordedDate="2024-03-03")
    del event["date"]
    assert _events(event).adverse_events[0].date == date(2024, 3, 3)


def test_adverse_event_without_date() -> None:
    event = _event()
    del event["date"]
    rec = _events(event)
    assert rec.adverse_events == ()
    assert issue(rec, IssueCode.MISSING_DATE).resource == "AdverseEvent/ae1"


def test_potential_adverse_event_is_left_out() -> None:
    rec = _events(_event(actuality="potential"))
    assert rec.adverse_events == ()
    assert IssueCode.STATUS_IGNORED in codes(rec.issues)


def test_adverse_event_described_by_code_display() -> None:
    event = _event(event=concept(c.SNOMED, "62014003", "Adverse reaction to drug"))
    assert _events(event).adverse_events[0].description == "Adverse reaction to drug"
