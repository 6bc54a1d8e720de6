"""Resources to patients: reference shapes, no subject, CML evidence."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_cml.domain.vocabulary import IssueCode
from fhir_cml.fhir import canonical as c
from tests.unit.inbound_builders import (
    bcr,
    bundle,
    codes,
    concept,
    condition,
    issue,
    load,
    obs,
    patient,
    qty,
)


@pytest.mark.parametrize(
    "reference",
    [
        "Patient/p1",
        "https://ehr.example/fhir/Patient/p1",
        "https://ehr.example/fhir/Patient/p1/_history/4",
        "Patient?identifier=urn:mrn|MRN-1",
    ],
)
def test_reference_shapes_resolve_to_one_patient(reference: str) -> None:
    result = load(
        patient(identifier=[{"system": "urn:mrn", "value": "MRN-1"}]),
        bcr(0.5, oid="a", subject="Patient/p1"),
        bcr(0.4, oid="b", day="2024-06-01", subject=reference),
    )
    (rec,) = result.records
    assert rec.patient == "Patient/p1"
    assert [r.ref for r in rec.bcr_abl1] == ["Observation/a", "Observation/b"]


def test_urn_uuid_full_url_of_the_patient_entry() -> None:
    doc = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:11111111-2222-3333-4444-555555555555", "resource": patient("p9")},
            {"resource": bcr(0.5, subject="urn:uuid:11111111-2222-3333-4444-555555555555")},
        ],
    }
    (rec,) = load(doc).records
    assert rec.patient == "Patient/p9"


def test_patient_without_id_is_named_by_its_urn() -> None:
    urn = "urn:uuid:aaaaaaaa-2222-3333-4444-555555555555"
    anonymous = patient()
    del anonymous["id"]
    observation = bcr(0.5, subject=urn)
    del observation["id"]
    doc = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": urn, "resource": anonymous},
            {"fullUrl": "urn:uuid:bbbbbbbb-2222-3333-4444-555555555555", "resource": observation},
        ],
    }
    (rec,) = load(doc).records
    assert rec.patient == urn
    assert rec.bcr_abl1[0].ref == "urn:uuid:bbbbbbbb-2222-3333-4444-555555555555"


def test_unusable_literal_reference_is_not_guessed() -> None:
    result = load(patient(), bcr(0.5, subject="p1"))
    assert result.records == []
    assert "is not a Patient reference" in issue(result.issues, IssueCode.NO_SUBJECT).message


def test_reference_by_identifier_only() -> None:
    res = bcr(0.5)
    res["subject"] = {"identifier": {"system": "urn:mrn", "value": "MRN-1"}}
    (rec,) = load(patient(identifier=[{"system": "urn:mrn", "value": "MRN-1"}]), res).records
    assert rec.patient == "Patient/p1"


def test_identifier_of_a_patient_not_in_the_input() -> None:
    res = bcr(0.5)
    res["subject"] = {"type": "Patient", "identifier": {"system": "urn:mrn", "value": "7"}}
    (rec,) = load(res).records
    assert rec.patient == "Patient?identifier=urn:mrn|7"


def test_contained_patient_matched_by_identifier() -> None:
    res = bcr(0.5, subject="#pat")
    res["contained"] = [
        {
            "resourceType": "Patient",
            "id": "pat",
            "identifier": [{"system": "urn:mrn", "value": "9"}],
        }
    ]
    (rec,) = load(patient(identifier=[{"system": "urn:mrn", "value": "9"}]), res).records
    assert rec.patient == "Patient/p1"


def test_contained_patient_without_identifier_is_no_subject() -> None:
    res = bcr(0.5, subject="#pat")
    res["contained"] = [{"resourceType": "Patient", "id": "pat"}]
    result = load(res)
    assert result.records == []
    assert (
        "contained Patient #pat without an identifier"
        in issue(result.issues, IssueCode.NO_SUBJECT).message
    )


@pytest.mark.parametrize(
    ("subject", "why"),
    [
        (None, "has no subject"),
        ({"reference": "Group/g1"}, "refers to a Group"),
        ({"reference": "#missing"}, "not among its contained resources"),
        ({"display": "Jane"}, "neither a reference nor an identifier"),
        ({"type": "Group", "identifier": {"value": "1"}}, "is a Group"),
    ],
)
def test_no_subject(subject: dict[str, Any] | None, why: str) -> None:
    res = bcr(0.5)
    if subject is None:
        del res["subject"]
    else:
        res["subject"] = subject
    result = load(patient(), res)
    assert result.records == []
    found = issue(result.issues, IssueCode.NO_SUBJECT)
    assert why in found.message
    assert found.resource == "Observation/o1"
    assert "item 2" in found.message  # names where it was read


def test_many_resources_without_subject_are_capped() -> None:
    resources = []
    for n in range(130):
        res = bcr(0.5, oid=f"o{n}")
        del res["subject"]
        resources.append(res)
    result = load(*resources)
    no_subject = [i for i in result.issues if i.code is IssueCode.NO_SUBJECT]
    assert len(no_subject) == 101
    assert no_subject[-1].message.startswith("30 more resources")


def test_patients_without_cml_evidence_are_skipped_and_counted() -> None:
    result = load(
        patient("p1"),
        patient("p2"),
        obs("8867-4", subject="Patient/p2", valueQuantity=qty(70, "/min")),
        patient("p3"),
        obs("52132-8", subject="Patient/p3", valueQuantity=qty(1, "%")),  # e1a2 alone: Ph+ ALL
        bcr(0.5, subject="Patient/p4"),
    )
    assert [r.patient for r in result.records] == ["Patient/p4"]
    assert result.skipped_patients == 3
    assert set(result.resources_by_patient) == {"Patient/p4"}


def test_a_condition_is_evidence_but_a_tki_alone_is_not() -> None:
    result = load(
        condition(subject={"reference": "Patient/a"}),
        {
            "resourceType": "MedicationStatement",
            "id": "m",
            "status": "active",
            "subject": {"reference": "Patient/b"},
            "medicationCodeableConcept": concept(c.ATC, "L01EA01"),
        },
    )
    assert [r.patient for r in result.records] == ["Patient/a"]
    assert result.skipped_patients == 1
    skipped = [i for i in result.issues if i.resource == "Patient/b"]
    assert len(skipped) == 1
    assert "GIST" in skipped[0].message


def test_unsupported_types_are_summed_up() -> None:
    result = load(
        bundle(
            patient(),
            bcr(0.5),
            {"resourceType": "Encounter", "id": "e1"},
            {"resourceType": "Encounter", "id": "e2"},
            {"resourceType": "Procedure", "id": "x"},
        )
    )
    found = issue(result.issues, IssueCode.UNSUPPORTED_TYPE)
    assert "Encounter (2), Procedure (1)" in found.message


def test_one_patients_bad_data_does_not_stop_another() -> None:
    broken = bcr(None, subject="Patient/bad", valueQuantity="lots", effectiveDateTime=["x"])
    broken["component"] = "nonsense"
    result = load(
        broken,
        bcr(0.5, oid="good", subject="Patient/good"),
        bcr(None, oid="bad2", subject="Patient/bad", valueRatio=[1, 2]),
    )
    assert [r.patient for r in result.records] == ["Patient/bad", "Patient/good"]
    bad, good = result.records
    assert bad.bcr_abl1 == ()
    assert IssueCode.MISSING_DATE in codes(bad.issues)
    assert good.bcr_abl1[0].ref == "Observation/good"
    assert good.issues == ()


def test_resources_by_patient_keeps_one_version_of_each() -> None:
    result = load(
        patient(),
        bcr(0.5, meta={"versionId": "1"}),
        bcr(0.6, meta={"versionId": "2"}),
    )
    kept = result.resources_by_patient["Patient/p1"]
    assert [r["resourceType"] for r in kept] == ["Patient", "Observation"]
    assert kept[1]["meta"]["versionId"] == "2"
