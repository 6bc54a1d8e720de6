"""MedicationStatements: the drug, the daily dose, dates, status and why it stopped."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from fhir_cml.domain.vocabulary import (
    Cyp3a4Effect,
    IssueCode,
    MedicationStatus,
    StopReason,
    Tki,
)
from fhir_cml.fhir import canonical as c
from tests.unit.inbound_builders import (
    bundle,
    codes,
    concept,
    condition,
    imatinib,
    issue,
    load,
    patient,
    record,
    statement,
)

# --- the drug ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("medication", "drug"),
    [
        (concept(c.RXNORM, "282388"), Tki.IMATINIB),
        (concept(c.RXNORM, "403879"), Tki.IMATINIB),
        (concept(c.RXNORM, "662281"), Tki.NILOTINIB),
        (concept(c.RXNORM, "799047"), Tki.DASATINIB),  # dasatinib 100 MG Oral Tablet
        (concept(c.RXNORM, "1045404"), Tki.DASATINIB),  # ... 140 MG Oral Tablet [Sprycel]
        (concept(c.RXNORM, "1307633"), Tki.BOSUTINIB),  # bosutinib 500 MG Oral Tablet
        (concept(c.RXNORM, "1987734"), Tki.BOSUTINIB),  # ... 400 MG Oral Tablet [Bosulif]
        (concept(c.ATC, "L01EA01"), Tki.IMATINIB),
        (concept(c.ATC, "L01EA02"), Tki.DASATINIB),
        (concept(c.ATC, "L01EA03"), Tki.NILOTINIB),
        (concept(c.ATC, "L01EA04"), Tki.BOSUTINIB),
        (concept(c.ATC, "L01EA05"), Tki.PONATINIB),
        (concept(c.ATC, "L01EA06"), Tki.ASCIMINIB),
    ],
)
def test_tki_by_code(medication: dict[str, Any], drug: Tki) -> None:
    rec = record(statement(medication))
    assert rec.tki[0].drug is drug
    assert IssueCode.INFERRED not in codes(rec.issues)


@pytest.mark.parametrize(
    ("text", "drug"),
    [
        ("Imatinib 400 mg", Tki.IMATINIB),
        ("GLIVEC", Tki.IMATINIB),
        ("Sprycel 100mg", Tki.DASATINIB),
        ("Tasigna", Tki.NILOTINIB),
        ("Bosulif", Tki.BOSUTINIB),
        ("Iclusig", Tki.PONATINIB),
        ("Scemblix", Tki.ASCIMINIB),
    ],
)
def test_tki_by_name_says_so(text: str, drug: Tki) -> None:
    rec = record(statement({"text": text}))
    assert rec.tki[0].drug is drug
    assert "not by an RxNorm or ATC code" in issue(rec, IssueCode.INFERRED).message


def test_display_of_an_unknown_code_is_a_name() -> None:
    rec = record(statement(concept("urn:local", "X1", "Gleevec 400 mg tablet")))
    assert rec.tki[0].drug is Tki.IMATINIB


def test_contained_medication() -> None:
    res = statement(
        None,
        medicationReference={"reference": "#med"},
        contained=[{"resourceType": "Medication", "id": "med", "code": imatinib("403879")}],
    )
    assert record(res).tki[0].drug is Tki.IMATINIB


def test_bundled_medication_by_relative_reference_and_by_urn() -> None:
    med = {"resourceType": "Medication", "id": "med1", "code": concept(c.ATC, "L01EA02")}
    by_id = statement(None, mid="a", medicationReference={"reference": "Medication/med1"})
    by_urn = statement(
        None, mid="b", start="2024-02-01", medicationReference={"reference": "urn:uuid:m"}
    )
    doc = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": patient()},
            {"resource": condition()},
            {
                "fullUrl": "urn:uuid:m",
                "resource": {"resourceType": "Medication", "code": imatinib()},
            },
            {"resource": med},
            {"resource": by_id},
            {"resource": by_urn},
        ],
    }
    result = load(doc)
    (rec,) = result.records
    assert [s.drug for s in rec.tki] == [Tki.DASATINIB, Tki.IMATINIB]
    kinds = [r["resourceType"] for r in result.resources_by_patient["Patient/p1"]]
    assert kinds.count("Medication") == 2


def test_missing_medication_falls_back_to_the_display() -> None:
    res = statement(
        None, medicationReference={"reference": "Medication/gone", "display": "Imatinib"}
    )
    rec = record(res)
    assert rec.tki[0].drug is Tki.IMATINIB
    assert any("Medication/gone" in i.message for i in rec.issues)


def test_missing_medication_without_display() -> None:
    rec = record(statement(None, medicationReference={"reference": "Medication/gone"}))
    assert rec.tki == ()
    assert "Medication/gone" in issue(rec, IssueCode.UNKNOWN_CODE).message


def test_other_drugs_are_left_out_quietly() -> None:
    rec = record(statement(concept(c.ATC, "C10AA05", "atorvastatin")))
    assert rec.tki == ()
    assert rec.other_medications == ()
    assert "MedicationStatements for other drugs (1)" in issue(rec, IssueCode.UNKNOWN_CODE).message


# --- strong CYP3A4 modulators --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("medication", "name", "effect"),
    [
        (concept(c.ATC, "J02AC03"), "voriconazole", Cyp3a4Effect.STRONG_INHIBITOR),
        (concept(c.ATC, "J04AB02"), "rifampicin", Cyp3a4Effect.STRONG_INDUCER),
        (concept(c.ATC, "N06AX25"), "st john's wort", Cyp3a4Effect.STRONG_INDUCER),
        (concept(c.RXNORM, "2002"), "carbamazepine", Cyp3a4Effect.STRONG_INDUCER),
        (concept(c.RXNORM, "197853"), "ketoconazole", Cyp3a4Effect.STRONG_INHIBITOR),
        (concept(c.RXNORM, "258326"), "st john's wort", Cyp3a4Effect.STRONG_INDUCER),
        ({"text": "Rifampin 600 mg"}, "rifampicin", Cyp3a4Effect.STRONG_INDUCER),
        ({"text": "lopinavir/ritonavir"}, "ritonavir", Cyp3a4Effect.STRONG_INHIBITOR),
        ({"text": "Grapefruit juice daily"}, "grapefruit", Cyp3a4Effect.STRONG_INHIBITOR),
    ],
)
def test_cyp3a4_modulators(medication: dict[str, Any], name: str, effect: Cyp3a4Effect) -> None:
    rec = record(
        statement(
            medication,
            start="2024-01-01",
            effectivePeriod={"start": "2024-01-01", "end": "2024-02-01"},
        )
    )
    (other,) = rec.other_medications
    assert (other.name, other.effect) == (name, effect)
    assert (other.start, other.end) == (date(2024, 1, 1), date(2024, 2, 1))
    assert other.status is MedicationStatus.ACTIVE


# --- the daily dose ------------------------------------------------------------------------------


def _timing_code(code: str) -> dict[str, Any]:
    return {"code": concept(c.V3_TIMING, code)}


@pytest.mark.parametrize(
    ("dose", "unit", "timing", "daily", "per_day"),
    [
        (400, "mg", None, 400, 1),
        (400, "mg", _timing_code("BID"), 800, 2),
        (200, "mg", _timing_code("TID"), 600, 3),
        (400, "mg", _timing_code("QD"), 400, 1),
        (400, "mg", {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}}, 800, 2),
        (400, "mg", {"repeat": {"frequency": 1, "period": 12, "periodUnit": "h"}}, 800, 2),
        (400, "mg", {"repeat": {"period": 2, "periodUnit": "d"}}, 200, None),
        (300, "mg", {"repeat": {"timeOfDay": ["08:00:00", "20:00:00"]}}, 600, 2),
        (0.4, "g", None, 400, 1),
    ],
)
def test_daily_dose(
    dose: float, unit: str, timing: dict[str, Any] | None, daily: float, per_day: int | None
) -> None:
    st = record(statement(imatinib(), dose=dose, unit=unit, timing=timing)).tki[0]
    assert st.daily_dose_mg == pytest.approx(daily)
    assert st.doses_per_day == per_day


@pytest.mark.parametrize(
    ("code", "mg"),
    [
        ("403878", 400),
        ("403879", 1600),
        ("404588", 400),
        ("404589", 1600),
        ("643105", 80),  # dasatinib 20 MG Oral Tablet
        ("1045406", 320),  # dasatinib 80 MG Oral Tablet
        ("799830", 400),  # dasatinib 100 MG Oral Tablet [Sprycel]
        ("1307624", 400),  # bosutinib 100 MG Oral Tablet
        ("1307635", 2000),  # bosutinib 500 MG Oral Tablet [Bosulif]
    ],
)
def test_tablets_times_known_strength(code: str, mg: float) -> None:
    st = record(statement(imatinib(code), dose=4, unit="{tbl}")).tki[0]
    assert st.daily_dose_mg == mg


def test_tablet_unit_from_orderable_drug_form() -> None:
    res = statement(imatinib("403879"))
    res["dosage"][0]["doseAndRate"][0]["doseQuantity"] = {
        "value": 1,
        "unit": "tablet",
        "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm",
        "code": "TAB",
    }
    assert record(res).tki[0].daily_dose_mg == 400


def test_tablets_without_strength() -> None:
    rec = record(statement(imatinib("282388"), dose=1, unit="{tbl}"))
    assert rec.tki[0].daily_dose_mg is None
    assert "tablet strength" in issue(rec, IssueCode.UNKNOWN_UNIT).message


def test_dose_without_frequency() -> None:
    rec = record(statement(imatinib(), timing={}))
    assert rec.tki[0].daily_dose_mg is None
    assert "frequency" in issue(rec, IssueCode.MISSING_VALUE).message


def test_dose_in_an_unknown_unit() -> None:
    rec = record(statement(imatinib(), unit="mL"))
    assert rec.tki[0].daily_dose_mg is None
    assert IssueCode.UNKNOWN_UNIT in codes(rec.issues)


def test_daily_dose_out_of_range() -> None:
    rec = record(statement(imatinib(), dose=4000))
    assert rec.tki[0].daily_dose_mg is None
    assert IssueCode.OUT_OF_RANGE in codes(rec.issues)


def test_concurrent_dosages_add_up() -> None:
    res = statement(imatinib(), dose=None)
    res["dosage"] = [
        {
            "timing": {"code": concept(c.V3_TIMING, "QD")},
            "doseAndRate": [{"doseQuantity": {"value": 400, "unit": "mg"}}],
        },
        {
            "timing": {"code": concept(c.V3_TIMING, "QD")},
            "doseAndRate": [{"doseQuantity": {"value": 200, "unit": "mg"}}],
        },
    ]
    st = record(res).tki[0]
    assert (st.daily_dose_mg, st.doses_per_day) == (600, 2)


def test_sequential_dosages_are_ambiguous() -> None:
    res = statement(imatinib(), dose=None)
    res["dosage"] = [
        {
            "sequence": 1,
            "timing": {"code": concept(c.V3_TIMING, "QD")},
            "doseAndRate": [{"doseQuantity": {"value": 400, "unit": "mg"}}],
        },
        {
            "sequence": 2,
            "timing": {"code": concept(c.V3_TIMING, "QD")},
            "doseAndRate": [{"doseQuantity": {"value": 600, "unit": "mg"}}],
        },
    ]
    rec = record(res)
    assert rec.tki[0].daily_dose_mg is None
    assert IssueCode.AMBIGUOUS in codes(rec.issues)


def test_no_dosage_is_said() -> None:
    rec = record(statement(imatinib(), dose=None))
    assert rec.tki[0].daily_dose_mg is None
    assert IssueCode.MISSING_VALUE in codes(rec.issues)


# --- time, status, reasons -----------------------------------------------------------------------


def test_period_and_asserted() -> None:
    res = statement(
        imatinib(),
        status="stopped",
        effectivePeriod={"start": "2019-03-01", "end": "2024-03-01"},
        dateAsserted="2024-03-05",
    )
    st = record(res).tki[0]
    assert (st.start, st.end, st.asserted) == (date(2019, 3, 1), date(2024, 3, 1), date(2024, 3, 5))
    assert st.status is MedicationStatus.STOPPED


def test_effective_date_time_is_the_start() -> None:
    st = record(statement(imatinib(), start=None, effectiveDateTime="2020-02-02")).tki[0]
    assert (st.start, st.end) == (date(2020, 2, 2), None)


def test_planned_end_after_now_is_kept() -> None:
    st = record(
        statement(imatinib(), effectivePeriod={"start": "2024-01-01", "end": "2026-01-01"})
    ).tki[0]
    assert st.end == date(2026, 1, 1)


def test_end_before_start_is_left_out() -> None:
    rec = record(
        statement(imatinib(), effectivePeriod={"start": "2024-01-01", "end": "2023-01-01"})
    )
    assert rec.tki[0].end is None
    assert IssueCode.OUT_OF_RANGE in codes(rec.issues)


@pytest.mark.parametrize(
    "status", ["entered-in-error", "not-taken", "intended", "on-hold", "completed"]
)
def test_statuses_are_passed_to_the_course_rules(status: str) -> None:
    assert record(statement(imatinib(), status=status)).tki[0].status.value == status


def test_invalid_status() -> None:
    rec = record(statement(imatinib(), status="paused"))
    assert rec.tki == ()
    assert "paused" in issue(rec, IssueCode.STATUS_IGNORED).message


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (concept(c.CS_STOP_REASON, "tfr"), StopReason.TFR),
        (concept(c.CS_STOP_REASON, "resistance"), StopReason.RESISTANCE),
        ({"text": "Stopped to attempt treatment-free remission"}, StopReason.TFR),
        ({"text": "Intolerance (grade 3 rash)"}, StopReason.INTOLERANCE),
        ({"text": "adverse events"}, StopReason.INTOLERANCE),
        ({"text": "Primary resistance"}, StopReason.RESISTANCE),
        ({"text": "treatment failure"}, StopReason.RESISTANCE),
        ({"text": "Disease progression"}, StopReason.RESISTANCE),
        ({"text": "dose reduction"}, StopReason.DOSE_CHANGE),
        ({"text": "patient moved abroad"}, StopReason.OTHER),
    ],
)
def test_stop_reason(reason: dict[str, Any], expected: StopReason) -> None:
    st = record(statement(imatinib(), status="stopped", statusReason=[reason])).tki[0]
    assert st.stop_reason is expected
    assert st.status_reason_text


def test_stop_reason_keeps_the_text() -> None:
    st = record(
        statement(imatinib(), status="stopped", statusReason=[{"text": "Patient moved abroad"}])
    ).tki[0]
    assert st.status_reason_text == "Patient moved abroad"


def test_statements_are_sorted_by_start() -> None:
    rec = record(
        statement(imatinib(), mid="late", start="2023-01-01"),
        statement(imatinib(), mid="early", start="2020-01-01"),
    )
    assert [s.ref for s in rec.tki] == ["MedicationStatement/early", "MedicationStatement/late"]


def test_tki_statement_alone_is_not_cml_evidence() -> None:
    result = load(bundle(patient(), statement(imatinib())))
    assert result.records == []
    assert result.skipped_patients == 1
    assert any(i.resource == "Patient/p1" and "GIST" in i.message for i in result.issues)
