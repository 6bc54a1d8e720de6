"""Observation status, identity and dates; cytogenetics, counts, CHR, trough, adherence, mutations."""

from __future__ import annotations

from datetime import date

import pytest

from fhir_cml.domain.vocabulary import IssueCode, LabKind, Severity
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound.mutations import one_letter
from tests.unit.inbound_builders import (
    bcr,
    cml_component,
    codes,
    component,
    concept,
    issue,
    obs,
    qty,
    record,
)

# --- status --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status", ["preliminary", "registered", "cancelled", "entered-in-error", "unknown"]
)
def test_unused_statuses_are_left_out_with_an_issue(status: str) -> None:
    rec = record(bcr(0.5, status=status))
    assert rec.bcr_abl1 == ()
    found = issue(rec, IssueCode.STATUS_IGNORED)
    assert status in found.message
    assert found.resource == "Observation/o1"


@pytest.mark.parametrize("status", ["final", "amended", "corrected"])
def test_used_statuses(status: str) -> None:
    assert len(record(bcr(0.5, status=status)).bcr_abl1) == 1


def test_missing_status_is_left_out() -> None:
    result = bcr(0.5)
    del result["status"]
    rec = record(result)
    assert rec.bcr_abl1 == ()
    assert IssueCode.STATUS_IGNORED in codes(rec.issues)


# --- corrections, duplicates, versions -----------------------------------------------------------


def test_amended_replaces_the_result_with_the_same_identifier() -> None:
    ident = [{"system": "urn:lab", "value": "A-1"}]
    rec = record(
        bcr(5.0, oid="old", day="2024-05-02", identifier=ident),
        bcr(0.5, oid="new", day="2024-05-03", status="amended", identifier=ident),
    )
    assert [(r.ref, r.is_percent) for r in rec.bcr_abl1] == [("Observation/new", 0.5)]
    superseded = issue(rec, IssueCode.SUPERSEDED)
    assert superseded.resource == "Observation/old"
    assert "Observation/new" in superseded.message


def test_corrected_replaces_the_result_with_the_same_code_and_time() -> None:
    rec = record(
        bcr(5.0, oid="old", day="2024-05-02T08:00:00Z"),
        bcr(0.5, oid="fix", day="2024-05-02T08:00:00Z", status="corrected"),
        bcr(0.4, oid="other-day", day="2024-06-02T08:00:00Z"),
    )
    assert [r.ref for r in rec.bcr_abl1] == ["Observation/fix", "Observation/other-day"]
    assert issue(rec, IssueCode.SUPERSEDED).resource == "Observation/old"


def test_the_later_of_two_corrections_wins() -> None:
    ident = [{"system": "urn:lab", "value": "A-1"}]
    rec = record(
        bcr(5.0, oid="v1", identifier=ident),
        bcr(4.0, oid="v3", status="corrected", identifier=ident, issued="2024-05-09T00:00:00Z"),
        bcr(3.0, oid="v2", status="amended", identifier=ident, issued="2024-05-05T00:00:00Z"),
    )
    assert [r.ref for r in rec.bcr_abl1] == ["Observation/v3"]
    assert sorted(i.resource or "" for i in rec.issues if i.code is IssueCode.SUPERSEDED) == [
        "Observation/v1",
        "Observation/v2",
    ]


def test_exact_duplicates_count_once() -> None:
    rec = record(bcr(0.5, oid="a"), bcr(0.5, oid="b"))
    assert [r.ref for r in rec.bcr_abl1] == ["Observation/a"]
    assert issue(rec, IssueCode.DUPLICATE).resource == "Observation/b"


def test_same_code_and_time_with_another_value_are_both_kept() -> None:
    rec = record(bcr(0.5, oid="a"), bcr(0.6, oid="b"))
    assert len(rec.bcr_abl1) == 2


def test_same_resource_twice_uses_the_latest_version() -> None:
    rec = record(
        bcr(0.9, oid="x", meta={"versionId": "2"}),
        bcr(0.5, oid="x", meta={"versionId": "10"}),
        bcr(0.7, oid="x", meta={"versionId": "3"}),
    )
    assert [r.is_percent for r in rec.bcr_abl1] == [0.5]
    found = issue(rec, IssueCode.DUPLICATE)
    assert "3 times" in found.message
    assert "version 10" in found.message


def test_same_resource_twice_by_last_updated() -> None:
    rec = record(
        bcr(0.5, oid="x", meta={"lastUpdated": "2024-06-01T00:00:00Z"}),
        bcr(0.9, oid="x", meta={"lastUpdated": "2024-05-01T00:00:00Z"}),
    )
    assert [r.is_percent for r in rec.bcr_abl1] == [0.5]


# --- dates ---------------------------------------------------------------------------------------


def test_missing_date() -> None:
    rec = record(bcr(0.5, day=None))
    assert rec.bcr_abl1 == ()
    assert issue(rec, IssueCode.MISSING_DATE).resource == "Observation/o1"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("effectivePeriod", {"start": "2024-05-02T10:00:00Z", "end": "2024-05-02T11:00:00Z"}),
        ("effectiveInstant", "2024-05-02T10:00:00.000Z"),
    ],
)
def test_other_date_shapes(field: str, value: object) -> None:
    rec = record(bcr(0.5, day=None, **{field: value}))
    assert rec.bcr_abl1[0].date == date(2024, 5, 2)


def test_the_written_day_is_kept_whatever_the_time_zone() -> None:
    assert record(bcr(0.5, day="2024-05-02T23:30:00-05:00")).bcr_abl1[0].date == date(2024, 5, 2)


@pytest.mark.parametrize("day", ["2025-07-01", "2025-06-30T18:00:00Z", "2030"])
def test_future_dates_are_left_out(day: str) -> None:
    rec = record(bcr(0.5, day=day))
    assert rec.bcr_abl1 == ()
    assert codes(rec.issues)[0] in (IssueCode.FUTURE_DATE, IssueCode.MISSING_DATE)


def test_earlier_today_is_not_future() -> None:
    assert len(record(bcr(0.5, day="2025-06-30T08:00:00Z")).bcr_abl1) == 1


def test_future_date_issue_names_the_date() -> None:
    rec = record(bcr(0.5, day="2025-07-01"))
    found = issue(rec, IssueCode.FUTURE_DATE)
    assert "2025-07-01" in found.message
    assert found.severity is Severity.WARNING


def test_month_only_uses_the_first_and_says_so() -> None:
    rec = record(bcr(0.5, day="2024-05"))
    assert rec.bcr_abl1[0].date == date(2024, 5, 1)
    assert IssueCode.INFERRED in codes(rec.issues)


@pytest.mark.parametrize("day", ["2024", "2024-13-01", "yesterday", 20240501])
def test_unusable_dates(day: object) -> None:
    rec = record(bcr(0.5, day=None, effectiveDateTime=day))
    assert rec.bcr_abl1 == ()
    assert IssueCode.MISSING_DATE in codes(rec.issues)


def test_results_are_sorted_by_date() -> None:
    rec = record(bcr(0.1, oid="b", day="2024-06-01"), bcr(0.2, oid="a", day="2024-01-01"))
    assert [r.ref for r in rec.bcr_abl1] == ["Observation/a", "Observation/b"]


# --- cytogenetics --------------------------------------------------------------------------------


def test_ph_positive_metaphases_with_components() -> None:
    rec = record(
        obs(
            c.PH_POSITIVE_METAPHASES,
            c.CS_CML,
            valueQuantity=qty(35, "%"),
            component=[
                cml_component(c.METAPHASES_COUNTED, valueInteger=20),
                cml_component(c.HIGH_RISK_ACA, valueBoolean=True),
                cml_component(c.CLONAL_ABNORMALITY_PH_POSITIVE, valueBoolean=False),
            ],
        )
    )
    (cyto,) = rec.cytogenetics
    assert (cyto.ph_positive_percent, cyto.method, cyto.metaphases) == (35.0, "banding", 20)
    assert cyto.high_risk_aca is True
    assert cyto.clonal_abnormality_in_ph_positive is False


def test_ph_positive_metaphases_as_a_ratio() -> None:
    rec = record(
        obs(
            c.PH_POSITIVE_METAPHASES,
            c.CS_CML,
            valueRatio={"numerator": {"value": 3}, "denominator": {"value": 20}},
        )
    )
    assert rec.cytogenetics[0].ph_positive_percent == pytest.approx(15)
    assert rec.cytogenetics[0].metaphases == 20


def test_t9_22_cells() -> None:
    rec = record(obs("21795-0", valueQuantity=qty(2, "%")))
    assert rec.cytogenetics[0].method == "fish"
    assert rec.cytogenetics[0].ph_positive_percent == 2


def test_cytogenetics_out_of_range() -> None:
    rec = record(obs("21795-0", valueQuantity=qty(140, "%")))
    assert rec.cytogenetics == ()
    assert IssueCode.OUT_OF_RANGE in codes(rec.issues)


def test_boolean_component_without_boolean_is_an_issue() -> None:
    rec = record(
        obs(
            c.PH_POSITIVE_METAPHASES,
            c.CS_CML,
            valueQuantity=qty(0, "%"),
            component=[cml_component(c.HIGH_RISK_ACA, valueString="yes")],
        )
    )
    assert rec.cytogenetics[0].high_risk_aca is None
    assert IssueCode.MISSING_VALUE in codes(rec.issues)


# --- blood counts and findings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "value", "unit", "kind", "expected"),
    [
        ("6690-2", 12.5, "10*9/L", LabKind.WBC, 12.5),
        ("6690-2", 12.5, "10*3/uL", LabKind.WBC, 12.5),
        ("6690-2", 12.5, "/nL", LabKind.WBC, 12.5),
        ("6690-2", 12.5, "K/uL", LabKind.WBC, 12.5),
        ("777-3", 450, "10*9/L", LabKind.PLATELETS, 450),
        ("706-2", 2, "%", LabKind.BASOPHILS, 2),
        ("707-0", 2, "%", LabKind.BASOPHILS, 2),
        ("30180-4", 2, "%", LabKind.BASOPHILS, 2),
        ("709-6", 1, "%", LabKind.BLASTS, 1),
        ("26446-5", 1, "%", LabKind.BLASTS, 1),
        ("32489-7", 4, "cm", LabKind.SPLEEN, 4),
        ("32489-7", 40, "mm", LabKind.SPLEEN, 4),
    ],
)
def test_counts_and_findings_in_canonical_units(
    code: str, value: float, unit: str, kind: LabKind, expected: float
) -> None:
    rec = record(obs(code, valueQuantity=qty(value, unit)))
    (lab,) = rec.labs
    assert lab.kind is kind
    assert lab.value == pytest.approx(expected)


def test_count_with_unknown_unit() -> None:
    rec = record(obs("6690-2", valueQuantity=qty(12, "cells")))
    assert rec.labs == ()
    assert "cells" in issue(rec, IssueCode.UNKNOWN_UNIT).message


def test_count_with_a_wrong_dimension() -> None:
    rec = record(obs("6690-2", valueQuantity=qty(12, "mg")))
    assert rec.labs == ()
    assert IssueCode.UNKNOWN_UNIT in codes(rec.issues)


def test_count_out_of_range() -> None:
    rec = record(obs("777-3", valueQuantity=qty(-3, "10*9/L")))
    assert rec.labs == ()
    assert IssueCode.OUT_OF_RANGE in codes(rec.issues)


def test_count_with_comparator_is_not_an_exact_value() -> None:
    rec = record(obs("709-6", valueQuantity=qty(1, "%", comparator="<")))
    assert rec.labs == ()
    assert IssueCode.AMBIGUOUS in codes(rec.issues)


@pytest.mark.parametrize("value", [True, False])
def test_hematologic_response(value: bool) -> None:
    rec = record(obs(c.HEMATOLOGIC_RESPONSE, c.CS_CML, valueBoolean=value))
    assert rec.hematologic[0].complete is value


def test_hematologic_response_without_boolean() -> None:
    rec = record(obs(c.HEMATOLOGIC_RESPONSE, c.CS_CML, valueString="CHR"))
    assert rec.hematologic == ()
    assert IssueCode.MISSING_VALUE in codes(rec.issues)


# --- trough --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "ng_ml"),
    [
        (1100, "ng/mL", 1100),
        (1100, "ug/L", 1100),
        (1.1, "mg/L", 1100),
        (1.43, "umol/L", 1.43 * 493.6),
        (2000, "nmol/L", 2 * 493.6),
    ],
)
def test_trough_units(value: float, unit: str, ng_ml: float) -> None:
    rec = record(obs("103609-4", valueQuantity=qty(value, unit)))
    assert rec.troughs[0].ng_ml == pytest.approx(ng_ml)


@pytest.mark.parametrize(
    ("hours", "unit", "expected"), [(23, "h", 23.0), (1380, "min", 23.0), (1, "d", 24.0)]
)
def test_trough_time_since_dose(hours: float, unit: str, expected: float) -> None:
    rec = record(
        obs(
            "57844-3",
            valueQuantity=qty(900, "ng/mL"),
            component=[component(c.LOINC, "45359-7", valueQuantity=qty(hours, unit))],
        )
    )
    assert rec.troughs[0].hours_since_dose == pytest.approx(expected)


def test_trough_time_since_dose_local_code() -> None:
    rec = record(
        obs(
            "57844-3",
            valueQuantity=qty(900, "ng/mL"),
            component=[cml_component(c.TIME_SINCE_DOSE, valueQuantity=qty(22, "h"))],
        )
    )
    assert rec.troughs[0].hours_since_dose == 22


def test_trough_out_of_range() -> None:
    rec = record(obs("103609-4", valueQuantity=qty(200000, "ng/mL")))
    assert rec.troughs == ()
    assert IssueCode.OUT_OF_RANGE in codes(rec.issues)


def test_trough_unknown_unit() -> None:
    rec = record(obs("103609-4", valueQuantity=qty(1100, "mg")))
    assert rec.troughs == ()
    assert IssueCode.UNKNOWN_UNIT in codes(rec.issues)


def test_trough_below_a_limit_is_not_an_exact_value() -> None:
    rec = record(obs("103609-4", valueQuantity=qty(1000, "ng/mL", comparator="<")))
    assert rec.troughs == ()
    assert IssueCode.AMBIGUOUS in codes(rec.issues)


# --- adherence -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "adherent"),
    [("1156699004", True), ("702565001", False), ("448176008", False), ("129834002", False)],
)
def test_adherence(code: str, adherent: bool) -> None:
    rec = record(obs("71799-1", valueCodeableConcept=concept(c.SNOMED, code)))
    assert rec.adherence[0].adherent is adherent


def test_adherence_unknown_code() -> None:
    rec = record(obs("71799-1", valueCodeableConcept=concept(c.SNOMED, "12345")))
    assert rec.adherence == ()
    assert IssueCode.UNKNOWN_CODE in codes(rec.issues)


# --- mutations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hgvs", "expected"),
    [
        ("NP_005148.2:p.Thr315Ile", "T315I"),
        ("p.(Met351Thr)", "M351T"),
        ("p.T315I", "T315I"),
        ("T315I", "T315I"),
        ("p.Gln252Ter", "Q252*"),
        ("p.Glu255fs", None),
        ("p.Xyz315Ile", None),
    ],
)
def test_one_letter(hgvs: str, expected: str | None) -> None:
    assert one_letter(hgvs) == expected


def _variant(value: dict[str, object] | None, *parts: dict[str, object]) -> dict[str, object]:
    extra: dict[str, object] = {"component": list(parts)}
    if value is not None:
        extra["valueCodeableConcept"] = value
    return obs("69548-6", **extra)


def _protein(code: str) -> dict[str, object]:
    return component(c.LOINC, "48005-3", valueCodeableConcept=concept(c.HGVS, code))


def _gene(code: str, display: str) -> dict[str, object]:
    return component(c.LOINC, "48018-6", valueCodeableConcept=concept(c.HGNC, code, display))


def test_variant_present() -> None:
    rec = record(
        _variant(
            concept(c.LOINC, "LA9633-4", "Present"),
            _protein("NP_005148.2:p.Thr315Ile"),
            _gene("HGNC:76", "ABL1"),
        )
    )
    (mut,) = rec.mutations
    assert (mut.detected, mut.mutation, mut.hgvs) == (True, "T315I", "NP_005148.2:p.Thr315Ile")


@pytest.mark.parametrize(
    "value", [concept(c.LOINC, "LA9634-2", "Absent"), concept(c.SNOMED, "260415000")]
)
def test_negative_analysis(value: dict[str, object]) -> None:
    (mut,) = record(_variant(value)).mutations
    assert mut.detected is False
    assert mut.mutation is None


def test_coded_finding_names_the_change() -> None:
    (mut,) = record(_variant({"text": "T315I"})).mutations
    assert (mut.detected, mut.mutation) == (True, "T315I")


def test_complex_change_keeps_its_hgvs() -> None:
    (mut,) = record(_variant(concept(c.LOINC, "LA9633-4"), _protein("p.Glu255fs"))).mutations
    assert (mut.mutation, mut.hgvs) == (None, "p.Glu255fs")


def test_variant_without_value_is_read_as_present_with_an_issue() -> None:
    rec = record(_variant(None, _protein("p.Tyr253His")))
    assert rec.mutations[0].mutation == "Y253H"
    assert IssueCode.INFERRED in codes(rec.issues)


def test_variant_in_another_gene_is_not_a_kinase_domain_mutation() -> None:
    rec = record(
        _variant(concept(c.LOINC, "LA9633-4"), _protein("p.Gly646fs"), _gene("HGNC:18318", "ASXL1"))
    )
    assert rec.mutations == ()


def test_variant_with_unknown_value() -> None:
    rec = record(_variant(concept(c.LOINC, "LA00000-0", "Maybe")))
    assert rec.mutations == ()
    assert IssueCode.UNKNOWN_CODE in codes(rec.issues)


def test_variant_with_nothing() -> None:
    rec = record(_variant(None))
    assert rec.mutations == ()
    assert IssueCode.MISSING_VALUE in codes(rec.issues)


# --- what is not read ----------------------------------------------------------------------------


def test_unknown_observation_codes_are_summed_up_in_one_issue() -> None:
    rec = record(
        obs("8867-4", oid="hr1", valueQuantity=qty(70, "/min")),
        obs("8867-4", oid="hr2", valueQuantity=qty(72, "/min")),
        obs("2345-7", oid="glu", valueQuantity=qty(5, "mmol/L")),
    )
    found = issue(rec, IssueCode.UNKNOWN_CODE)
    assert "LOINC 8867-4 (2)" in found.message
    assert "LOINC 2345-7 (1)" in found.message
    assert found.severity is Severity.INFORMATION
