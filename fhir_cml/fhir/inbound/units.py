"""Unit conversion with UCUM (ucumvert on pint), cached per unit string.

Building the unit registry takes about 0.4 s, so it is built once, and only when a unit differs
from the one wanted; each (unit, target) factor is computed once. A few spellings that EHRs send
instead of UCUM codes are read as the UCUM unit they unambiguously mean.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any, Final

from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound.context import number

_UCUM: Final = c.UCUM
IMATINIB_MOLAR_MASS: Final = 493.6  # g/mol, imatinib free base (C29H31N7O)

# Common non-UCUM spellings, each with a single meaning.
ALIASES: Final = {
    "K/uL": "10*3/uL",
    "x10^9/L": "10*9/L",
    "x10E9/L": "10*9/L",
    "x10E3/uL": "10*3/uL",
    "10^9/L": "10*9/L",
    "10^3/uL": "10*3/uL",
    "µg/L": "ug/L",
    "mcg/L": "ug/L",
    "µmol/L": "umol/L",
    "µM": "umol/L",
    "uM": "umol/L",
    "nM": "nmol/L",
    "hr": "h",
    "hrs": "h",
    "hour": "h",
    "hours": "h",
}
# Free-text spellings of the BCR::ABL1 percentage on the International Scale, compared without
# spaces and in upper case: "% IS", "%IS", "% (IS)", "IS %", "%{IS}" (a UCUM annotation).
IS_PERCENT: Final = frozenset(
    {
        "%IS",
        "%(IS)",
        "%[IS]",
        "%{IS}",
        "IS%",
        "%INTERNATIONALSCALE",
        "%(INTERNATIONALSCALE)",
        "%{INTERNATIONALSCALE}",
    }
)
_SPACES = re.compile(r"\s+")
_ANNOTATION = re.compile(r"\{[^{}]*\}")
_MAX_UNIT_LENGTH = 64
_MAX_CACHED = 10_000

_lock = threading.Lock()
_registry: Any = None


def quantity(value: Any) -> tuple[float, str | None, str | None] | None:
    """(value, unit, comparator) of a Quantity; the UCUM ``code`` is preferred over ``unit``."""
    if type(value) is not dict:
        return None
    amount = number(value.get("value"))
    if amount is None:
        return None
    unit = value.get("code")
    if type(unit) is not str or not unit or value.get("system", _UCUM) != _UCUM:
        unit = value.get("unit")
        if type(unit) is not str or not unit:
            unit = None
    comparator = value.get("comparator")
    return amount, unit, comparator if type(comparator) is str and comparator else None


def factor(unit: str | None, target: str) -> float | None:
    """What to multiply a value in ``unit`` by to have it in ``target``; None if it cannot be."""
    return None if unit is None else _factor(unit, target)


def imatinib_ng_ml(unit: str | None) -> float | None:
    """Factor to ng/mL for a mass or a molar concentration of imatinib (1 umol/L = 493.6 ng/mL)."""
    mass = factor(unit, "ng/mL")
    if mass is not None:
        return mass
    molar = factor(unit, "mol/L")
    if molar is None:
        return None
    return _tidy(molar * IMATINIB_MOLAR_MASS * 1e6)  # g/L to ng/mL


def is_count(unit: str | None) -> bool:
    """A plain count (copies, metaphases): no unit, ``1``, or only an annotation like ``{copies}``."""
    return True if unit is None else _is_count(unit)


@functools.lru_cache(maxsize=_MAX_CACHED)
def _is_count(unit: str) -> bool:
    return unit in ("1", "copies") or not _ANNOTATION.sub("", unit).strip()


def names_is(unit: str | None) -> bool:
    """Whether a unit's spelling says the value is on the International Scale ("% IS")."""
    return unit is not None and _compact(unit) in IS_PERCENT


@functools.lru_cache(maxsize=_MAX_CACHED)
def _compact(unit: str) -> str:
    return _SPACES.sub("", unit).upper()


@functools.lru_cache(maxsize=_MAX_CACHED)  # a few units recur in every feed; UCUM parsing is slow
def _factor(unit: str, target: str) -> float | None:
    unit = unit.strip()
    unit = ALIASES.get(unit) or ("%" if _compact(unit) in IS_PERCENT else unit)
    if unit == target:
        return 1.0
    if not unit or len(unit) > _MAX_UNIT_LENGTH:
        return None
    if not _ANNOTATION.sub("", unit).strip():
        unit = "1"  # {copies}, {ratio}: annotations alone mean 1
    registry = _ucum()
    try:
        ratio = registry.from_ucum(unit) / registry.from_ucum(target)
        value = float(ratio.to("dimensionless").magnitude)
    except Exception:  # the parser and pint raise many kinds for input they do not understand
        return None
    return _tidy(value) if value > 0 and value == value and value != float("inf") else None


def _tidy(value: float) -> float:
    """12 significant digits: mg/L to ng/mL is 1000, not 999.9999999999999."""
    return float(f"{value:.12g}")


def _ucum() -> Any:
    global _registry
    if _registry is None:
        with _lock:
            if _registry is None:
                from ucumvert import PintUcumRegistry

                _registry = PintUcumRegistry()
    return _registry


def registry_built() -> bool:
    """For tests and measurements: whether the UCUM registry has been built in this process."""
    return _registry is not None
