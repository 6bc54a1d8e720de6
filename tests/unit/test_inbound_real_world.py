"""Data as real EHRs and laboratories send it: results as text, free-text units, LOINC anywhere
in the coding, and results that exist but cannot be read."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_cml.domain import assess
from fhir_cml.domain.model import PatientRecord
from fhir_cml.domain.vocabulary import Guideline, IssueCode, Recommendation
from fhir_cml.ehr.fetch import CML_CONDITION_CODES
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound.patients import is_cml
from fhir_cml.fhir.inbound.text_values import quantity_from_text
from fhir_cml.reporting import issue_message, say
from tests.unit.inbound_builders import (
    bcr,
    codes,
    coding,
    concept,
    imatinib,
    issue,
    obs,
    qty,
    record,
    statement,
)

AS_OF = date(2025, 6, 30)


def text_bcr(text: str, code: str = "69380-4", **extra: Any) -> dict[str, Any]:
    return bcr(None, code=code, valueString=text, **extra)


def free_unit(value: float, unit: str) -> dict[str, Any]:
    """A Quantity with the unit as free text only (no UCUM system or code)."""
    return {"value": value, "unit": unit}


# --- valueString --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "detectable", "percent"),
    [
        ("0.05 %", True, 0.05),
        ("0.05%", True, 0.05),
        ("0,05 %", True, 0.05),
        (" 0.0058 % ", True, 0.0058),
        ("< 0.0032 %", False, 0.0032),
        ("<0.0032%", False, 0.0032),
        ("≤ 0.0032 %", False, 0.0032),
        ("0.05 % IS", True, 0.05),
        ("0.05 %IS", True, 0.05),
        ("0.05 % (IS)", True, 0.05),
        ("0,1 % (IS)", True, 0.1),
    ],
)
def test_a_number_sent_as_text_is_read(text: str, detectable: bool, percent: float) -> None:
    [result] = record(text_bcr(text)).bcr_abl1
    assert result.detectable is detectable
    assert result.raw_percent == pytest.approx(percent)
    assert result.on_is


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("1,000 %", "decimal comma or a thousands separator"),
        ("1.000,5 %", "mixes"),
        ("0.1-0.5 %", "not a single number"),
        ("about 0.05 %", "not a single number"),
        ("0.05", "cannot be converted to %"),  # a value without a unit is not guessed
        ("0.05 mg", "cannot be converted to %"),
    ],
)
def test_text_that_could_be_read_two_ways_is_an_issue(text: str, why: str) -> None:
    rec = record(text_bcr(text))
    assert rec.bcr_abl1 == ()
    problems = [i for i in rec.issues if i.resource == "Observation/o1"]
    assert problems
    assert why in problems[0].message, problems


def test_not_detected_text_is_still_not_detected() -> None:
    [result] = record(text_bcr("BCR::ABL1 not detected")).bcr_abl1
    assert not result.detectable


def test_a_log_reduction_as_text() -> None:
    [result] = record(text_bcr("4.5", code="50195-7")).bcr_abl1
    assert result.is_percent == pytest.approx(100 / 10**4.5)


def test_blood_counts_and_troughs_as_text() -> None:
    rec = record(
        obs("6690-2", oid="wbc", valueString="7,2 x10^9/L"),
        obs("103609-4", oid="trough", valueString="1120 ng/mL"),
        obs("777-3", oid="plt", valueString="< 20 10^9/L"),
    )
    assert [(lab.ref, lab.value) for lab in rec.labs] == [("Observation/wbc", pytest.approx(7.2))]
    assert rec.troughs[0].ng_ml == pytest.approx(1120)
    assert issue(rec, IssueCode.AMBIGUOUS).resource == "Observation/plt"


# --- units --------------------------------------------------------------------------------------


@pytest.mark.parametrize("unit", ["% IS", "%IS", "% (IS)", "%(is)", "IS %", "%{IS}"])
def test_free_text_spellings_of_the_is_percent(unit: str) -> None:
    [result] = record(bcr(None, valueQuantity=free_unit(0.08, unit))).bcr_abl1
    assert result.is_percent == pytest.approx(0.08)


def test_a_not_is_code_with_an_is_unit_is_ambiguous_not_guessed() -> None:
    rec = record(bcr(None, code="55147-3", valueQuantity=free_unit(0.08, "% IS")))
    assert rec.bcr_abl1 == ()
    assert "says IS" in issue(rec, IssueCode.AMBIGUOUS).message


# --- codes --------------------------------------------------------------------------------------


def test_loinc_in_any_position_of_the_coding() -> None:
    local = coding("https://lab.example.org/codes", "BCRABL-IS", "BCR-ABL IS")
    code = {"coding": [local, coding(c.SNOMED, "1234"), coding(c.LOINC, "69380-4")]}
    result_obs = bcr(0.05)
    result_obs["code"] = code
    [result] = record(result_obs).bcr_abl1
    assert result.is_percent == 0.05


def test_icd_o_3_cml_is_read_and_searched() -> None:
    icdo3 = concept(c.ICD_O_3, "9875/3")
    assert is_cml(icdo3)
    assert (c.ICD_O_3, "9875/3") in CML_CONDITION_CODES


# --- results that exist but cannot be read ------------------------------------------------------


def _assessed(*resources: dict[str, Any]) -> tuple[PatientRecord, Any]:
    rec = record(statement(imatinib(), start="2022-01-10"), *resources)
    return rec, assess(rec, AS_OF, Guideline.ELN2020)


def test_an_unreadable_latest_result_is_not_a_pcr_never_done() -> None:
    read = bcr(0.05, oid="read", effectiveDateTime="2024-09-02")
    unreadable = text_bcr("see report", oid="text", effectiveDateTime="2025-05-20")
    rec, assessment = _assessed(read, unreadable)
    assert [u.ref for u in rec.unread_bcr_abl1] == ["Observation/text"]
    assert not assessment.monitoring.overdue
    suggested = {s.code for s in assessment.recommendations}
    assert Recommendation.PCR_OVERDUE not in suggested
    assert "2025-05-20 exists but could not be read" in say(assessment.monitoring.basis)
    # Without the unreadable one, the same patient is overdue: the test above can fail.
    _, without = _assessed(read)
    assert without.monitoring.overdue


def test_a_preliminary_result_counts_as_a_test_done() -> None:
    read = bcr(0.05, oid="read", effectiveDateTime="2024-09-02")
    pending = bcr(0.04, oid="pending", status="preliminary", effectiveDateTime="2025-06-02")
    _, assessment = _assessed(read, pending)
    assert not assessment.monitoring.overdue


def test_an_old_unreadable_result_does_not_hide_an_overdue_pcr() -> None:
    old = text_bcr("see report", oid="text", effectiveDateTime="2024-08-01")
    read = bcr(0.05, oid="read", effectiveDateTime="2024-09-02")
    _, assessment = _assessed(old, read)
    assert assessment.monitoring.overdue


def test_no_tki_record_at_all_is_a_data_issue() -> None:
    rec = record(bcr(0.05))
    assessment = assess(rec, AS_OF, Guideline.ELN2020)
    found = [i for i in assessment.issues if i.code is IssueCode.NO_THERAPY_START]
    assert found
    assert "No TKI record" in issue_message(found[0])


def test_other_medications_not_read_are_summed_up() -> None:
    other = statement(concept(c.RXNORM, "1191", "aspirin"), mid="asa")
    rec = record(statement(imatinib()), other)
    assert "MedicationStatements for other drugs (1)" in issue(rec, IssueCode.UNKNOWN_CODE).message
    assert IssueCode.NO_THERAPY_START not in codes(rec.issues)


# --- the text reader, fuzzed --------------------------------------------------------------------

numbers = st.decimals(min_value=0, max_value=10_000, places=4, allow_nan=False)
comparators = st.sampled_from(["", "<", "<=", ">", ">=", "≤", "≥"])
unit_texts = st.sampled_from(["", "%", "% IS", "%(IS)", "ng/mL", "x10^9/L", "10*9/L", "mg/L"])


@settings(max_examples=300, deadline=None)
@given(number=numbers, comparator=comparators, unit=unit_texts, comma=st.booleans())
def test_a_written_number_reads_back_as_itself(
    number: Any, comparator: str, unit: str, comma: bool
) -> None:
    written = f"{number:f}"
    if comma:
        written = written.replace(".", ",")
    text = f"{comparator} {written} {unit}".strip()
    parsed = quantity_from_text(text)
    whole, _, fraction = f"{number:f}".partition(".")
    ambiguous = comma and len(fraction) == 3 and whole not in ("0",)
    if ambiguous:
        assert parsed.quantity is None
        assert parsed.problem
        return
    assert parsed.quantity is not None, (text, parsed.problem)
    assert parsed.quantity["value"] == pytest.approx(float(number))
    assert parsed.quantity.get("unit", "") == unit
    assert ("comparator" in parsed.quantity) == bool(comparator)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_text_gives_a_quantity_or_a_reason(text: str) -> None:
    parsed = quantity_from_text(text)
    assert (parsed.quantity is None) != (parsed.problem is None)
    if parsed.quantity is not None:
        assert isinstance(parsed.quantity["value"], float)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=30))
def test_any_bcr_text_is_read_or_reported(text: str) -> None:
    rec = record(text_bcr(text))
    reported = [i for i in rec.issues if i.resource == "Observation/o1"]
    assert rec.bcr_abl1 or reported
    assert not any("internal error" in i.message for i in rec.issues)


def test_quantity_helper_keeps_the_ucum_code_first() -> None:
    assert qty(1, "%")["code"] == "%"
