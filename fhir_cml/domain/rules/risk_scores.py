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

from fhir_cml.domain.config import RuleConfig
from fhir_cml.domain.model import LabValue
from fhir_cml.domain.results import Basis, RiskScore
from fhir_cml.domain.rules.catalogue import ELTS, EUTOS, SOKAL, Rule
from fhir_cml.domain.vocabulary import LabKind, RiskCategory

_NEEDS = {
    "sokal": (LabKind.SPLEEN, LabKind.PLATELETS, LabKind.BLASTS),
    "elts": (LabKind.SPLEEN, LabKind.PLATELETS, LabKind.BLASTS),
    "eutos": (LabKind.SPLEEN, LabKind.BASOPHILS),
}
_NEEDS_AGE = {"sokal": True, "elts": True, "eutos": False}
_RULES: dict[str, Rule] = {"sokal": SOKAL, "elts": ELTS, "eutos": EUTOS}


def baseline_scores(
    labs: Sequence[LabValue],
    birth_date: date | None,
    birth_ref: str | None,
    reference_date: date | None,
    cfg: RuleConfig,
) -> tuple[RiskScore, ...]:
    if reference_date is None:
        return tuple(
            _not_evaluable(
                name, "no start of TKI therapy or diagnosis date to take baseline values at", ()
            )
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
        missing = [k.value for k in _NEEDS[name] if k not in chosen]
        if _NEEDS_AGE[name] and age is None:
            missing.insert(0, "age (birth date)")
        refs = tuple(chosen[k].ref for k in _NEEDS[name] if k in chosen)
        if _NEEDS_AGE[name] and birth_ref:
            refs = (birth_ref, *refs)
        if missing:
            scores.append(
                _not_evaluable(
                    name,
                    f"baseline {', '.join(missing)} not recorded between "
                    f"{earliest.isoformat()} and {reference_date.isoformat()}",
                    refs,
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


def _score(
    name: str, v: dict[LabKind, float], age: float | None, refs: tuple[str, ...], on: date
) -> RiskScore:
    if name == "eutos":
        value = eutos(v[LabKind.BASOPHILS], v[LabKind.SPLEEN])
        category = RiskCategory.LOW if value <= 87 else RiskCategory.HIGH
        inputs = f"basophils {v[LabKind.BASOPHILS]:g} %, spleen {v[LabKind.SPLEEN]:g} cm"
        cut = "<= 87 low, > 87 high"
        shown = round(value, 1)
    else:
        assert age is not None
        args = (age, v[LabKind.SPLEEN], v[LabKind.PLATELETS], v[LabKind.BLASTS])
        inputs = (
            f"age {age:g} y, spleen {v[LabKind.SPLEEN]:g} cm, platelets {v[LabKind.PLATELETS]:g} x10^9/L, "
            f"blasts {v[LabKind.BLASTS]:g} %"
        )
        if name == "sokal":
            value = sokal(*args)
            category = (
                RiskCategory.LOW
                if value < 0.8
                else RiskCategory.INTERMEDIATE
                if value <= 1.2
                else RiskCategory.HIGH
            )
            cut = "< 0.8 low, 0.8-1.2 intermediate, > 1.2 high"
            shown = round(value, 3)
        else:
            value = elts(*args)
            category = (
                RiskCategory.LOW
                if value <= 1.5680
                else RiskCategory.INTERMEDIATE
                if value <= 2.2185
                else RiskCategory.HIGH
            )
            cut = "<= 1.5680 low, <= 2.2185 intermediate, > 2.2185 high"
            shown = round(value, 4)
    statement = (
        f"{name.upper() if name != 'sokal' else 'Sokal'} score {shown:g} at baseline ({on.isoformat()}; "
        f"{inputs}): {category.value} ({cut})."
    )
    return RiskScore(name, shown, category, Basis(_RULES[name], statement, refs))


def _not_evaluable(name: str, why: str, refs: tuple[str, ...]) -> RiskScore:
    label = "Sokal" if name == "sokal" else name.upper()
    return RiskScore(
        name,
        None,
        RiskCategory.NOT_EVALUABLE,
        Basis(_RULES[name], f"{label} score not evaluable: {why}.", refs),
    )
