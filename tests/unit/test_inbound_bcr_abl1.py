"""BCR::ABL1 shapes (docs/inbound.md, "BCR::ABL1 quantification")."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fhir_cml.domain.vocabulary import ControlGene, IssueCode, Transcript
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound.bcr_abl1 import interpreted_not_detected, not_detected_words
from fhir_cml.fhir.inbound.context import codings, concept_words
from tests.unit.inbound_builders import (
    OPTIONS,
    bcr,
    cml_component,
    codes,
    concept,
    issue,
    obs,
    qty,
    record,
)
from tests.unit.test_inbound_fuzz import json_scalars


def test_is_percent_with_abl1_copies_and_transcript() -> None:
    rec = record(
        bcr(
            0.08,
            component=[
                cml_component(c.ABL1_COPIES, valueQuantity=qty(52000, "{copies}")),
                cml_component(
                    c.TRANSCRIPT_TYPE, valueCodeableConcept=concept(c.CS_TRANSCRIPT, "e14a2")
                ),
            ],
        )
    )
    (result,) = rec.bcr_abl1
    assert result.ref == "Observation/o1"
    assert result.date == date(2024, 5, 2)
    assert result.detectable is True
    assert result.is_percent == pytest.approx(0.08)
    assert result.on_is is True
    assert result.derived_from == "percent"
    assert result.control_gene is ControlGene.ABL1
    assert result.control_copies == 52000
    assert result.transcript is Transcript.E14A2


def test_gusb_copies_as_integer() -> None:
    rec = record(bcr(0.01, component=[cml_component(c.GUSB_COPIES, valueInteger=30000)]))
    assert rec.bcr_abl1[0].control_gene is ControlGene.GUSB
    assert rec.bcr_abl1[0].control_copies == 30000


def test_abl1_preferred_over_gusb() -> None:
    rec = record(
        bcr(
            0.01,
            component=[
                cml_component(c.GUSB_COPIES, valueInteger=30000),
                cml_component(c.ABL1_COPIES, valueInteger=12000),
            ],
        )
    )
    assert rec.bcr_abl1[0].control_gene is ControlGene.ABL1
    assert rec.bcr_abl1[0].control_copies == 12000


def test_ratio_gives_percent_and_control_copies() -> None:
    rec = record(
        bcr(
            None,
            valueRatio={"numerator": qty(45, "{copies}"), "denominator": qty(90000, "{copies}")},
        )
    )
    (result,) = rec.bcr_abl1
    assert result.is_percent == pytest.approx(0.05)
    assert result.derived_from == "ratio"
    assert result.control_copies == 90000
    assert result.control_gene is None


def test_ratio_zero_numerator_is_undetectable() -> None:
    rec = record(bcr(None, valueRatio={"numerator": {"value": 0}, "denominator": {"value": 40000}}))
    assert rec.bcr_abl1[0].detectable is False
    assert rec.bcr_abl1[0].derived_from == "undetectable"


def test_ratio_with_zero_denominator_is_out_of_range() -> None:
    rec = record(bcr(None, valueRatio={"numerator": {"value": 3}, "denominator": {"value": 0}}))
    assert rec.bcr_abl1 == ()
    assert issue(rec, IssueCode.OUT_OF_RANGE).resource == "Observation/o1"


@pytest.mark.parametrize("code", ["50195-7", "82905-1"])
def test_log_reduction(code: str) -> None:
    rec = record(bcr(None, code=code, valueQuantity={"value": 4}))
    (result,) = rec.bcr_abl1
    assert result.is_percent == pytest.approx(0.01)
    assert result.on_is is True
    assert result.derived_from == "log-reduction"


def test_log_reduction_greater_than_is_below_the_detection_limit() -> None:
    rec = record(bcr(None, code="50195-7", valueQuantity={"value": 4.5, "comparator": ">"}))
    (result,) = rec.bcr_abl1
    assert result.detectable is False
    assert result.derived_from == "limit"
    assert result.is_percent == pytest.approx(100 / 10**4.5)


def test_log_reduction_with_a_percent_unit_is_refused() -> None:
    rec = record(bcr(None, code="50195-7", valueQuantity=qty(4, "%")))
    assert rec.bcr_abl1 == ()
    assert IssueCode.UNKNOWN_UNIT in codes(rec.issues)


@pytest.mark.parametrize("code", ["55147-3", "46434-7"])
def test_not_on_is_without_factor_is_kept_but_not_on_is(code: str) -> None:
    rec = record(bcr(0.4, code=code))
    (result,) = rec.bcr_abl1
    assert result.on_is is False
    assert result.is_percent is None
    assert result.raw_percent == pytest.approx(0.4)


def test_not_on_is_with_component_conversion_factor() -> None:
    rec = record(
        bcr(
            0.4,
            code="55147-3",
            component=[cml_component(c.CONVERSION_FACTOR, valueQuantity=qty(0.5, "1"))],
        )
    )
    (result,) = rec.bcr_abl1
    assert result.on_is is True
    assert result.conversion_factor == 0.5
    assert result.is_percent == pytest.approx(0.2)
    assert result.raw_percent == pytest.approx(0.4)


def test_not_on_is_with_clinic_conversion_factor_says_so() -> None:
    options = replace(OPTIONS, conversion_factor=0.8)
    rec = record(bcr(1.0, code="55147-3"), options=options)
    (result,) = rec.bcr_abl1
    assert result.is_percent == pytest.approx(0.8)
    assert result.conversion_factor == 0.8
    assert "0.8" in issue(rec, IssueCode.NOT_ON_IS).message


def test_component_factor_wins_over_clinic_factor() -> None:
    options = replace(OPTIONS, conversion_factor=0.8)
    rec = record(
        bcr(
            1.0,
            code="55147-3",
            component=[cml_component(c.CONVERSION_FACTOR, valueQuantity=qty(1.2, "1"))],
        ),
        options=options,
    )
    assert rec.bcr_abl1[0].is_percent == pytest.approx(1.2)
    assert IssueCode.NOT_ON_IS not in codes(rec.issues)


def test_out_of_range_conversion_factor_not_used() -> None:
    rec = record(
        bcr(
            1.0,
            code="55147-3",
            component=[cml_component(c.CONVERSION_FACTOR, valueQuantity=qty(-2, "1"))],
        )
    )
    assert rec.bcr_abl1[0].on_is is False
    assert IssueCode.OUT_OF_RANGE in codes(rec.issues)


def test_e1a2_is_kept_with_its_transcript_and_not_on_is() -> None:
    rec = record(bcr(2.0, code="52132-8"))
    (result,) = rec.bcr_abl1
    assert result.transcript is Transcript.E1A2
    assert result.on_is is False
    assert result.raw_percent == pytest.approx(2.0)


@pytest.mark.parametrize(
    "shape",
    [
        {"valueCodeableConcept": concept(c.SNOMED, "260415000", "Not detected")},
        {"valueCodeableConcept": {"text": "BCR-ABL1 undetectable"}},
        {"interpretation": [concept(c.V3_INTERPRETATION, "ND")]},
        {"interpretation": [concept(c.V3_INTERPRETATION, "<")]},
        {"dataAbsentReason": {"text": "Below the detection limit"}},
        {"valueString": "not detected"},
    ],
)
def test_undetectable_shapes(shape: dict[str, object]) -> None:
    rec = record(bcr(None, component=[cml_component(c.ABL1_COPIES, valueInteger=40000)], **shape))
    (result,) = rec.bcr_abl1
    assert result.detectable is False
    assert result.is_percent is None
    assert result.derived_from == "undetectable"
    assert result.control_copies == 40000


@pytest.mark.parametrize("comparator", ["<", "<="])
def test_comparator_below_means_not_detected_below_the_limit(comparator: str) -> None:
    rec = record(bcr(None, valueQuantity=qty(0.0032, "%", comparator=comparator)))
    (result,) = rec.bcr_abl1
    assert result.detectable is False
    assert result.derived_from == "limit"
    assert result.is_percent == pytest.approx(0.0032)


def test_interpretation_nd_with_a_value_reads_it_as_the_limit() -> None:
    rec = record(bcr(0.001, interpretation=[concept(c.V3_INTERPRETATION, "ND")]))
    assert rec.bcr_abl1[0].detectable is False
    assert rec.bcr_abl1[0].derived_from == "limit"


def test_zero_percent_is_undetectable() -> None:
    assert record(bcr(0)).bcr_abl1[0].detectable is False


def test_greater_than_uses_the_bound_and_says_so() -> None:
    rec = record(bcr(None, valueQuantity=qty(100, "%", comparator=">")))
    assert rec.bcr_abl1[0].is_percent == pytest.approx(100)
    assert IssueCode.AMBIGUOUS in codes(rec.issues)


def test_other_data_absent_reason_is_missing_value_quoting_it() -> None:
    rec = record(bcr(None, dataAbsentReason={"text": "INVALID [Too high ABL transcript]"}))
    assert rec.bcr_abl1 == ()
    assert "Too high ABL" in issue(rec, IssueCode.MISSING_VALUE).message


def test_detected_without_quantity_is_missing_value() -> None:
    rec = record(bcr(None, valueCodeableConcept=concept(c.SNOMED, "260373001", "Detected")))
    assert rec.bcr_abl1 == ()
    assert IssueCode.MISSING_VALUE in codes(rec.issues)


def test_unknown_coded_value_is_unknown_code() -> None:
    rec = record(bcr(None, valueCodeableConcept=concept(c.SNOMED, "1234")))
    assert rec.bcr_abl1 == ()
    assert IssueCode.UNKNOWN_CODE in codes(rec.issues)


def test_no_value_at_all() -> None:
    rec = record(bcr(None))
    assert rec.bcr_abl1 == ()
    assert IssueCode.MISSING_VALUE in codes(rec.issues)


@pytest.mark.parametrize("value", [-0.1, 1000.5])
def test_percent_out_of_range(value: float) -> None:
    rec = record(bcr(value))
    assert rec.bcr_abl1 == ()
    assert issue(rec, IssueCode.OUT_OF_RANGE).resource == "Observation/o1"


def test_fraction_unit_is_converted_to_percent() -> None:
    rec = record(bcr(None, valueQuantity=qty(0.001, "1")))
    assert rec.bcr_abl1[0].is_percent == pytest.approx(0.1)


def test_unknown_unit() -> None:
    rec = record(bcr(None, valueQuantity=qty(0.1, "copies/uL")))
    assert rec.bcr_abl1 == ()
    assert "copies/uL" in issue(rec, IssueCode.UNKNOWN_UNIT).message


def test_missing_unit_is_not_guessed() -> None:
    rec = record(bcr(None, valueQuantity={"value": 0.1}))
    assert rec.bcr_abl1 == ()
    assert IssueCode.UNKNOWN_UNIT in codes(rec.issues)


def test_negative_copies_are_left_out_but_the_result_kept() -> None:
    rec = record(bcr(0.1, component=[cml_component(c.ABL1_COPIES, valueInteger=-5)]))
    assert rec.bcr_abl1[0].control_copies is None
    assert IssueCode.OUT_OF_RANGE in codes(rec.issues)


def test_copies_with_a_concentration_unit_are_not_used() -> None:
    rec = record(bcr(0.1, component=[cml_component(c.ABL1_COPIES, valueQuantity=qty(5, "mg"))]))
    assert rec.bcr_abl1[0].control_copies is None
    assert IssueCode.UNKNOWN_UNIT in codes(rec.issues)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("b3a2", Transcript.E14A2),
        ("e13a2", Transcript.E13A2),
        ("b2a2/b3a2", Transcript.E13A2_E14A2),
        ("e19a2 (p230)", Transcript.ATYPICAL),
    ],
)
def test_transcript_from_text_component(text: str, expected: Transcript) -> None:
    rec = record(
        bcr(0.1, component=[cml_component(c.TRANSCRIPT_TYPE, valueCodeableConcept={"text": text})])
    )
    assert rec.bcr_abl1[0].transcript is expected


def test_unknown_transcript_component_is_an_issue() -> None:
    rec = record(
        bcr(
            0.1, component=[cml_component(c.TRANSCRIPT_TYPE, valueCodeableConcept={"text": "p210"})]
        )
    )
    assert rec.bcr_abl1[0].transcript is None
    assert IssueCode.UNKNOWN_CODE in codes(rec.issues)


def test_transcript_as_a_separate_observation() -> None:
    rec = record(
        obs(
            c.TRANSCRIPT_TYPE,
            c.CS_CML,
            oid="t1",
            valueCodeableConcept=concept(c.CS_TRANSCRIPT, "e13a2"),
        ),
        bcr(0.1),
    )
    assert rec.transcript is Transcript.E13A2
    assert rec.transcript_ref == "Observation/t1"


def test_one_sample_as_percent_and_log_reduction_counts_once() -> None:
    rec = record(
        bcr(0.01, oid="pct", day="2024-05-02T09:00:00Z"),
        bcr(
            None, oid="log", code="50195-7", day="2024-05-02T09:00:00Z", valueQuantity={"value": 4}
        ),
    )
    assert [r.ref for r in rec.bcr_abl1] == ["Observation/pct"]
    assert issue(rec, IssueCode.DUPLICATE).resource == "Observation/log"


def test_one_sample_with_disagreeing_values_is_ambiguous() -> None:
    rec = record(
        bcr(0.5, oid="pct", day="2024-05-02T09:00:00Z"),
        bcr(
            None, oid="log", code="50195-7", day="2024-05-02T09:00:00Z", valueQuantity={"value": 4}
        ),
    )
    assert [r.ref for r in rec.bcr_abl1] == ["Observation/pct"]
    assert issue(rec, IssueCode.AMBIGUOUS).resource == "Observation/log"


interpretation_texts = st.sampled_from(
    [
        "Abnormal",
        "Not Detected",
        "BELOW THE LIMIT OF DETECTION",
        "undetectable (ND)",
        "High",
        "ΑΣ | σ",
    ]
) | st.text(max_size=12)
interpretation_codings = st.fixed_dictionaries(
    {},
    optional={
        "system": st.sampled_from([c.V3_INTERPRETATION, c.SNOMED]) | json_scalars,
        "code": st.sampled_from(["ND", "<", "A", "N"]) | json_scalars,
        "display": interpretation_texts | json_scalars,
    },
)
interpretations = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "coding": st.lists(interpretation_codings | json_scalars, max_size=3) | json_scalars,
            "text": interpretation_texts | json_scalars,
        },
    )
    | json_scalars,
    max_size=3,
)


@settings(max_examples=500, deadline=None)
@given(interpretations | json_scalars)
@example([{"coding": [{"system": c.SNOMED, "code": "ND"}]}])
@example([{"coding": [{"code": "<"}]}])
@example([{"coding": [{"system": c.V3_INTERPRETATION, "code": "A", "display": "Abnormal"}]}])
@example([{"coding": [{"system": "urn:lab", "code": "A", "display": "Not detected"}], "text": "A"}])
@example(["ND", {"coding": {"display": "not detected"}}, {"text": "Below detection limit"}])
def test_interpretation_reads_as_its_words_and_codes(value: Any) -> None:
    """Not detected when a concept has an ND or < code, or its text or displays say so."""

    def said(concept: Any) -> bool:
        codes_say = any(
            code in ("ND", "<") and system in (c.V3_INTERPRETATION, None)
            for system, code in codings(concept)
        )
        return codes_say or not_detected_words(concept_words(concept))

    expected = isinstance(value, list) and any(said(concept) for concept in value)
    assert interpreted_not_detected({"interpretation": value}) is expected
