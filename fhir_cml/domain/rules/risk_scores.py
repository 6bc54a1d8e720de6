"""Baseline risk scores: Sokal (Sokal et al. 1984), ELTS (Pfirrmann et al. 2016), EUTOS (Hasford
et al. 2011).

Inputs are the values closest to the start of first-line TKI, from up to ``baseline_window_days``
before it to the start itself: age (years), spleen (cm below the costal margin), blasts and
basophils (% in peripheral blood), platelets (x10^9/L). A missing value makes that score not
evaluable; nothing is assumed. All three were derived in adults: for a patient under 18 the
category is given with that caution. Where ELTS and Sokal disagree, ELN 2020 recommends ELTS (it
predicts death from CML better in patients on imatinib), and the ELTS reading says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, timedelta

from fhir_cml.domain.basis import Basis, Value, basis
from fhir_cml.domain.config import RuleConfig
from fhir_cml.domain.findings import Finding
from fhir_cml.domain.guidelines.table import Bound, Op
from fhir_cml.domain.model import LabValue
from fhir_cml.domain.results import RiskScore
from fhir_cml.domain.rules.catalogue import ELTS, EUTOS, SOKAL, Rule
from fhir_cml.domain.rules.common import age_on
from fhir_cml.domain.vocabulary import LabKind, RiskCategory

_NEEDS = {
    "sokal": (LabKind.SPLEEN, LabKind.PLATELETS, LabKind.BLASTS),
    "elts": (LabKind.SPLEEN, LabKind.PLATELETS, LabKind.BLASTS),
    "eutos": (LabKind.SPLEEN, LabKind.BASOPHILS),
}
_NEEDS_AGE = {"sokal": True, "elts": True, "eutos": False}
_RULES: dict[str, Rule] = {"sokal": SOKAL, "elts": ELTS, "eutos": EUTOS}


# Cut-offs, lowest category first: a score is in the first category whose bound admits it.
CUTS: dict[str, tuple[tuple[RiskCategory, Bound | None], ...]] = {
    "sokal": (
        (RiskCategory.LOW, Bound(Op.LT, 0.8)),
        (RiskCategory.INTERMEDIATE, Bound(Op.LE, 1.2)),
        (RiskCategory.HIGH, None),
    ),
    "elts": (
        (RiskCategory.LOW, Bound(Op.LE, 1.5680)),
        (RiskCategory.INTERMEDIATE, Bound(Op.LE, 2.2185)),
        (RiskCategory.HIGH, None),
    ),
    "eutos": ((RiskCategory.LOW, Bound(Op.LE, 87)), (RiskCategory.HIGH, None)),
}
_DIGITS = {"sokal": 3, "elts": 4, "eutos": 1}


def baseline_scores(
    labs: Sequence[LabValue],
    birth_date: date | None,
    birth_ref: str | None,
    reference_date: date | None,
    cfg: RuleConfig,
) -> tuple[RiskScore, ...]:
    if reference_date is None:
        return tuple(
            _not_evaluable(name, basis(_RULES[name], Finding.RISK_NO_DATE, (), score=name))
            for name in _RULES
        )
    earliest = reference_date - timedelta(days=cfg.baseline_window_days)
    chosen: dict[LabKind, LabValue] = {}
    for lab in labs:
        if earliest <= lab.date <= reference_date:
            held = chosen.get(lab.kind)
            if held is None or lab.date >= held.date:
                chosen[lab.kind] = lab
    whole = age_on(birth_date, reference_date)
    age = float(whole) if whole is not None else None
    scores = []
    for name in _RULES:
        missing: list[Value] = [k for k in _NEEDS[name] if k not in chosen]
        if _NEEDS_AGE[name] and age is None:
            missing.insert(0, "age")
        refs = tuple(chosen[k].ref for k in _NEEDS[name] if k in chosen)
        if _NEEDS_AGE[name] and birth_ref:
            refs = (birth_ref, *refs)
        if missing:
            scores.append(
                _not_evaluable(
                    name,
                    basis(
                        _RULES[name],
                        Finding.RISK_MISSING_INPUTS,
                        refs,
                        score=name,
                        missing=tuple(missing),
                        earliest=earliest,
                        latest=reference_date,
                    ),
                )
            )
            continue
        v = {k: chosen[k].value for k in _NEEDS[name]}
        child = whole is not None and whole < cfg.adult_age_years
        scores.append(_score(name, v, age, refs, reference_date, child))
    return _elts_preferred(tuple(scores))


def _elts_preferred(scores: tuple[RiskScore, ...]) -> tuple[RiskScore, ...]:
    """ELN 2020 prefers the ELTS score to Sokal: where they disagree, the ELTS reading says so."""
    by_name = {s.name: s for s in scores}
    sokal_score, elts_score = by_name.get("sokal"), by_name.get("elts")
    if (
        sokal_score is None
        or elts_score is None
        or RiskCategory.NOT_EVALUABLE in (sokal_score.category, elts_score.category)
        or sokal_score.category is elts_score.category
    ):
        return scores
    noted = replace(
        elts_score,
        basis=replace(
            elts_score.basis,
            params=(*elts_score.basis.params, ("sokal_disagrees", sokal_score.category)),
            evidence=elts_score.basis.evidence,
        ),
    )
    return tuple(noted if s is elts_score else s for s in scores)


def sokal(age: float, spleen: float, platelets: float, blasts: float) -> float:
    return math.exp(
        0.0116 * (age - 43.4)
        + 0.0345 * (spleen - 7.51)
        + 0.188 * ((platelets / 700) ** 2 - 0.563)
        + 0.0887 * (blasts - 2.10)
    )


def elts(age: float, spleen: float, platelets: float, blasts: float) -> float:
    return (
        0.0025 * (age / 10) ** 3
        + 0.0615 * spleen
        + 0.1052 * blasts
        + 0.4104 / math.sqrt(platelets / 1000)
    )


def eutos(basophils: float, spleen: float) -> float:
    return 7 * basophils + 4 * spleen


def category(name: str, value: float) -> RiskCategory:
    for cat, bound in CUTS[name]:
        if bound is None or bound.admits(value):
            return cat
    raise AssertionError("the last cut-off admits every value")


def _score(
    name: str,
    v: dict[LabKind, float],
    age: float | None,
    refs: tuple[str, ...],
    on: date,
    child: bool,
) -> RiskScore:
    inputs: tuple[tuple[Value, Value], ...]
    if name == "eutos":
        value = eutos(v[LabKind.BASOPHILS], v[LabKind.SPLEEN])
        inputs = ((LabKind.BASOPHILS, v[LabKind.BASOPHILS]), (LabKind.SPLEEN, v[LabKind.SPLEEN]))
    else:
        assert age is not None
        args = (age, v[LabKind.SPLEEN], v[LabKind.PLATELETS], v[LabKind.BLASTS])
        inputs = (
            ("age", age),
            (LabKind.SPLEEN, v[LabKind.SPLEEN]),
            (LabKind.PLATELETS, v[LabKind.PLATELETS]),
            (LabKind.BLASTS, v[LabKind.BLASTS]),
        )
        value = sokal(*args) if name == "sokal" else elts(*args)
    shown = round(value, _DIGITS[name])
    found = category(name, value)
    cuts = tuple((cat, bound.op, bound.value) if bound else (cat,) for cat, bound in CUTS[name])
    return RiskScore(
        name,
        shown,
        found,
        basis(
            _RULES[name],
            Finding.RISK_SCORE,
            refs,
            score=name,
            value=shown,
            on=on,
            inputs=inputs,
            category=found,
            cuts=cuts,
            # derived in adults: for a child the category is shown with that caution
            child=child,
        ),
    )


def _not_evaluable(name: str, why: Basis) -> RiskScore:
    return RiskScore(name, None, RiskCategory.NOT_EVALUABLE, why)
