"""The public entry points on the hand-written fixture files, through to an assessment."""

from __future__ import annotations

from datetime import date

from fhir_cml.domain import assess
from fhir_cml.domain.vocabulary import (
    ControlGene,
    IssueCode,
    Phase,
    ResponseDepth,
    TherapyStatus,
    Tki,
)
from fhir_cml.fhir.inbound import (
    LoadResult,
    MappingOptions,
    load_paths,
    map_patient,
    records_from_resources,
)
from tests.unit.inbound_builders import DATA, NOW, OPTIONS, bcr, codes, condition, patient


def _by_patient(result: LoadResult) -> dict[str, object]:
    return {r.patient: r for r in result.records}


def test_collection_bundle_with_urn_references() -> None:
    result = load_paths([DATA / "bundle-collection-urn.json"], OPTIONS)
    (rec,) = result.records
    assert rec.patient == "Patient/pat-1"
    assert rec.birth_date == date(1958, 9, 14)
    assert rec.diagnoses[0].phase is Phase.CHRONIC
    (tki,) = rec.tki
    assert (tki.drug, tki.daily_dose_mg, tki.start) == (Tki.IMATINIB, 400, date(2019, 1, 10))
    first, second = rec.bcr_abl1
    assert first.ref == "urn:uuid:0b5c1f3e-1111-4c4c-9c9c-000000000005"  # an entry without id
    assert (second.ref, second.control_gene, second.control_copies) == (
        "Observation/pcr-2",
        ControlGene.ABL1,
        61000,
    )
    assert IssueCode.UNSUPPORTED_TYPE in codes(result.issues)
    kept = result.resources_by_patient["Patient/pat-1"]
    assert sorted(r["resourceType"] for r in kept) == [
        "Condition",
        "Medication",
        "MedicationStatement",
        "Observation",
        "Observation",
        "Patient",
    ]
    reading = assess(rec, date(2019, 8, 1))
    assert reading.therapy.status is TherapyStatus.ACTIVE
    assert reading.molecular_response.depth is ResponseDepth.NO_MMR


def test_several_files_for_one_patient_are_joined() -> None:
    result = load_paths([DATA / "nested-searchset.json", DATA / "single-observation.json"], OPTIONS)
    (rec,) = result.records
    assert rec.patient == "Patient/pat-2"
    assert [r.ref for r in rec.bcr_abl1] == [
        "Observation/pcr-20",
        "Observation/pcr-21",
        "Observation/pcr-22",
    ]
    assert result.files == 2
    assert result.resources == 5  # with the searchset's OperationOutcome


def test_bulk_export_directory() -> None:
    result = load_paths([DATA / "bulk"], OPTIONS)
    (rec,) = result.records
    assert rec.patient == "Patient/b1"
    assert [r.ref for r in rec.bcr_abl1] == ["Observation/bo1", "Observation/bo3"]
    assert rec.tki[0].drug is Tki.IMATINIB
    assert result.skipped_patients == 1  # b2 has no CML evidence
    assert result.unreadable == 0


def test_the_whole_fixture_directory_reads_without_raising() -> None:
    result = load_paths([DATA], OPTIONS)
    assert {"Patient/pat-1", "Patient/pat-2", "Patient/pat-3", "Patient/b1"} <= set(
        _by_patient(result)
    )
    assert result.unreadable > 0


def test_records_from_resources_accepts_bundles_and_resources() -> None:
    result = records_from_resources(
        [
            {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": patient()}]},
            bcr(),
        ],
        OPTIONS,
    )
    assert [r.patient for r in result.records] == ["Patient/p1"]
    assert result.files == 0
    assert result.resources == 2


def test_records_from_resources_with_garbage_items() -> None:
    result = records_from_resources([None, 3, "x", [], {"no": "type"}, bcr()], OPTIONS)
    assert len(result.records) == 1
    assert result.unreadable == 4
    assert all(i.code is IssueCode.UNREADABLE for i in result.issues)


def test_map_patient() -> None:
    rec = map_patient(
        "Patient/p1",
        [patient(birthDate="1960-01-01"), condition(), bcr(0.5), {"resourceType": 7}],
        MappingOptions(now=NOW),
    )
    assert rec.patient == "Patient/p1"
    assert rec.birth_date == date(1960, 1, 1)
    assert len(rec.bcr_abl1) == 1
    assert IssueCode.UNREADABLE in codes(rec.issues)


def test_naive_now_is_accepted() -> None:
    options = MappingOptions(now=NOW.replace(tzinfo=None))
    assert (
        len(map_patient("Patient/p1", [bcr(0.5, day="2024-05-02T10:00:00Z")], options).bcr_abl1)
        == 1
    )


def test_loading_restores_the_garbage_collector_state() -> None:
    import gc

    assert gc.isenabled()
    records_from_resources([bcr()], OPTIONS)
    assert gc.isenabled()
    gc.disable()
    try:
        records_from_resources([bcr()], OPTIONS)
        assert not gc.isenabled()
    finally:
        gc.enable()
