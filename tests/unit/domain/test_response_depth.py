"""Molecular response depth, including the control-gene sensitivity rules (Cross 2015)."""

from __future__ import annotations

import pytest

from fhir_cml.domain.rules.response_depth import classify
from fhir_cml.domain.vocabulary import ControlGene, IssueCode, ResponseDepth, Transcript
from fhir_cml.reporting import say

from .builders import START, pcr


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (25.0, ResponseDepth.NO_MMR),
        (0.1001, ResponseDepth.NO_MMR),
        (0.1, ResponseDepth.MMR),
        (0.05, ResponseDepth.MMR),
        (0.0101, ResponseDepth.MMR),
        (0.01, ResponseDepth.MR4),
        (0.0033, ResponseDepth.MR4),
        (0.0032, ResponseDepth.MR4_5),
        (0.0011, ResponseDepth.MR4_5),
        (0.001, ResponseDepth.MR5),
    ],
)
def test_detectable_result_is_classified_by_its_is_value(
    value: float, expected: ResponseDepth
) -> None:
    call = classify(pcr(START, value, copies=150_000))
    assert call.depth is expected
    assert call.value == value


@pytest.mark.parametrize(
    ("copies", "expected"),
    [
        (9_999, ResponseDepth.NOT_EVALUABLE),
        (10_000, ResponseDepth.MR4),
        (
            12_000,
            ResponseDepth.MR4,
        ),  # clinical-rules: undetectable with 12,000 ABL1 is MR4, not MR4.5
        (31_999, ResponseDepth.MR4),
        (32_000, ResponseDepth.MR4_5),
        (99_999, ResponseDepth.MR4_5),
        (100_000, ResponseDepth.MR5),
    ],
)
def test_undetectable_result_is_classified_by_abl1_copies(
    copies: int, expected: ResponseDepth
) -> None:
    call = classify(pcr(START, None, copies=copies))
    assert call.depth is expected


@pytest.mark.parametrize(
    ("copies", "expected"),
    [
        (23_999, ResponseDepth.NOT_EVALUABLE),
        (24_000, ResponseDepth.MR4),
        (77_000, ResponseDepth.MR4_5),
        (240_000, ResponseDepth.MR5),
    ],
)
def test_undetectable_result_with_gusb_uses_gusb_thresholds(
    copies: int, expected: ResponseDepth
) -> None:
    assert classify(pcr(START, None, copies=copies, gene=ControlGene.GUSB)).depth is expected


def test_too_few_copies_is_not_evaluable_with_the_reason() -> None:
    call = classify(pcr(START, None, copies=8_000))
    assert call.depth is ResponseDepth.NOT_EVALUABLE
    assert call.problem is IssueCode.LOW_CONTROL_COPIES
    assert "8,000 ABL1" in say(call.basis)
    assert "10,000" in say(call.basis)
    assert call.value is None


def test_undetectable_without_copies_is_not_evaluable() -> None:
    call = classify(pcr(START, None, copies=None))
    assert call.depth is ResponseDepth.NOT_EVALUABLE
    assert call.problem is IssueCode.MISSING_CONTROL_COPIES


def test_deep_detectable_value_in_an_inadequate_sample_is_capped_at_mmr() -> None:
    call = classify(pcr(START, 0.005, copies=5_000))
    assert call.depth is ResponseDepth.MMR
    assert call.problem is IssueCode.LOW_CONTROL_COPIES


def test_deep_detectable_value_without_copies_is_capped_at_mmr() -> None:
    call = classify(pcr(START, 0.002, copies=None))
    assert call.depth is ResponseDepth.MMR
    assert call.problem is IssueCode.MISSING_CONTROL_COPIES


def test_result_not_on_the_is_is_not_evaluable() -> None:
    call = classify(pcr(START, 0.05, on_is=False))
    assert call.depth is ResponseDepth.NOT_EVALUABLE
    assert call.problem is IssueCode.NOT_ON_IS


def test_atypical_transcript_cannot_be_read_on_the_is() -> None:
    call = classify(pcr(START, 0.05, transcript=Transcript.E1A2))
    assert call.depth is ResponseDepth.NOT_EVALUABLE
    assert call.problem is IssueCode.NOT_TYPICAL_TRANSCRIPT


def test_adequate_undetectable_sample_compares_as_zero() -> None:
    assert classify(pcr(START, None, copies=40_000)).value == 0.0
