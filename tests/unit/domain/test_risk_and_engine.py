"""Baseline risk scores, loss of MMR, and the engine's handling of the as-of date."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from fhir_cml.domain import assess
from fhir_cml.domain.rules.loss import loss_of_mmr
from fhir_cml.domain.rules.response_depth import classify
from fhir_cml.domain.vocabulary import IssueCode, LabKind, RiskCategory
from fhir_cml.reporting import say

from .builders import START, lab, months, pcr, record

BIRTH = date(1970, 1, 1)  # 50 at the start of therapy


def baseline(
    spleen: float = 5, plt: float = 400, blasts: float = 2, baso: float = 3, on: date = START
):  # type: ignore[no-untyped-def]
    return [
        lab(on, LabKind.SPLEEN, spleen),
        lab(on, LabKind.PLATELETS, plt),
        lab(on, LabKind.BLASTS, blasts),
        lab(on, LabKind.BASOPHILS, baso),
    ]


def test_scores_against_hand_computed_values() -> None:
    scores = assess(record(labs=baseline(), birth_date=BIRTH), months(1)).risk
    # Sokal exp(0.0116*6.6 + 0.0345*-2.51 + 0.188*((400/700)^2-0.563) + 0.0887*-0.1) = 0.9386
    assert scores["sokal"].value == pytest.approx(0.94, abs=0.005)
    assert scores["sokal"].category is RiskCategory.INTERMEDIATE
    # ELTS 0.0025*5^3 + 0.0615*5 + 0.1052*2 + 0.4104/sqrt(0.4) = 1.4793
    assert scores["elts"].value == pytest.approx(1.4793, abs=0.0001)
    assert scores["elts"].category is RiskCategory.LOW
    # EUTOS 7*3 + 4*5 = 41
    assert scores["eutos"].value == 41
    assert scores["eutos"].category is RiskCategory.LOW
    assert all(s.basis.evidence for s in scores.values())


@pytest.mark.parametrize(
    ("baso", "spleen", "category"),
    [(5, 13, RiskCategory.LOW), (5, 13.5, RiskCategory.HIGH)],  # 35+52=87 low, 35+54=89 high
)
def test_eutos_cut_off(baso: float, spleen: float, category: RiskCategory) -> None:
    scores = assess(
        record(labs=baseline(baso=baso, spleen=spleen), birth_date=BIRTH), months(1)
    ).risk
    assert scores["eutos"].category is category


def test_missing_inputs_make_a_score_not_evaluable_with_what_is_missing() -> None:
    scores = assess(record(labs=baseline()[:2]), months(1)).risk
    assert scores["sokal"].category is RiskCategory.NOT_EVALUABLE
    assert "age" in say(scores["sokal"].basis)
    assert "blasts" in say(scores["sokal"].basis)
    assert scores["eutos"].category is RiskCategory.NOT_EVALUABLE


def test_values_outside_the_baseline_window_are_not_used() -> None:
    old = baseline(on=START - timedelta(days=200))
    late = baseline(on=months(3))
    scores = assess(record(labs=old + late, birth_date=BIRTH), months(4)).risk
    assert all(s.category is RiskCategory.NOT_EVALUABLE for s in scores.values())


def calls(*values: float | None):  # type: ignore[no-untyped-def]
    return [(r, classify(r)) for r in (pcr(months(6 + i * 3), v) for i, v in enumerate(values))]


def test_loss_of_mmr() -> None:
    assert not loss_of_mmr(calls(0.5, 0.3)).lost  # never achieved
    assert not loss_of_mmr(calls(0.05, 0.08)).lost
    single = loss_of_mmr(calls(0.05, 0.3))
    assert single.lost
    assert not single.confirmed
    two = loss_of_mmr(calls(0.05, 0.3, 0.4))
    assert two.confirmed
    assert not two.confirmed_eln2013
    eln2013 = loss_of_mmr(calls(0.05, 0.3, 1.2))
    assert eln2013.confirmed_eln2013
    regained = loss_of_mmr(calls(0.05, 0.3, 0.05))
    assert not regained.lost
    skips_unreadable = loss_of_mmr(
        [
            *calls(0.05, 0.3),
            (pcr(months(20), None, copies=100), classify(pcr(months(20), None, copies=100))),
        ]
    )
    assert skips_unreadable.lost
    assert not skips_unreadable.confirmed


def test_results_after_the_as_of_date_are_left_out_and_said_so() -> None:
    later = pcr(months(30), 5.0)
    result = assess(record(bcr_abl1=[pcr(months(12), 0.05), later]), months(13))
    assert result.latest_bcr_abl1 is not None
    assert result.latest_bcr_abl1.date == months(12)
    assert any(i.code is IssueCode.AFTER_AS_OF and i.resource == later.ref for i in result.issues)
    assert later.ref not in result.inputs


def test_same_record_and_date_give_the_same_assessment() -> None:
    rec = record(bcr_abl1=[pcr(months(12), 0.05)], labs=baseline(), birth_date=BIRTH)
    assert assess(rec, months(13)) == assess(rec, months(13))


def test_inputs_name_every_resource_used() -> None:
    rec = record(bcr_abl1=[pcr(months(12), 0.05)], labs=baseline(), birth_date=BIRTH)
    result = assess(rec, months(13))
    assert result.inputs[0] == "Patient/p"
    assert set(result.inputs) >= {r.ref for r in rec.bcr_abl1} | {r.ref for r in rec.labs} | {
        rec.tki[0].ref
    }
