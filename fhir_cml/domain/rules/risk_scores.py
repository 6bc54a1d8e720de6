"""Baseline risk scores: Sokal, ELTS and EUTOS (clinical-rules.md section 7).

Inputs are the values closest to the start of first-line TKI, from up to ``baseline_window_days``
before it to the start itself: age (years), spleen (cm below the costal margin), blasts and
basophils (% in peripheral blood), platelets (x10^9/L). A missing value makes that score not
evaluable; nothing is assumed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, timedelta

from fhir_cml.domain.basis import Basis, Value, basis
from fhir_cml.domain.config import RuleConfig
from fhir_cml.domain.findings import Finding
from fhir_cml.domain.guidelines.table import Bound, Op
from fhir_cml.domain.model import LabValue
from fhir_cml.domain.results import RiskScore
from fhir_cml.domain.rules.catalogue import ELTS, EUTOS, SOKAL, Rule
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
    age = _age(birth_date, reference_date)
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
        scores.append(_score(name, v, age, refs, reference_date))
    return tuple(scores)


def _age(birth: date | None, on: date) -> float | None:
    if birth is None:
        return None
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return float(years)


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
    name: str, v: dict[LabKind, float], age: float | None, refs: tuple[str, ...], on: date
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
        ),
    )


def _not_evaluable(name: str, why: Basis) -> RiskScore:
    return RiskScore(name, None, RiskCategory.NOT_EVALUABLE, why)
