"""UCUM conversion: accepted units, unknown units, the per-unit cache and the lazy registry."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fhir_cml.fhir.inbound import units


@pytest.mark.parametrize(
    ("unit", "target", "factor"),
    [
        ("%", "%", 1.0),
        ("1", "%", 100.0),
        ("%{IS}", "%", 1.0),
        ("10*9/L", "10*9/L", 1.0),
        ("10*3/uL", "10*9/L", 1.0),
        ("/nL", "10*9/L", 1.0),
        ("10*6/mL", "10*9/L", 1.0),
        ("K/uL", "10*9/L", 1.0),
        ("x10^9/L", "10*9/L", 1.0),
        ("cm", "cm", 1.0),
        ("mm", "cm", 0.1),
        ("ng/mL", "ng/mL", 1.0),
        ("ug/L", "ng/mL", 1.0),
        ("mcg/L", "ng/mL", 1.0),
        ("mg/L", "ng/mL", 1000.0),
        ("h", "h", 1.0),
        ("min", "h", 1 / 60),
        ("d", "h", 24.0),
        ("hours", "h", 1.0),
        ("mg", "mg", 1.0),
        ("g", "mg", 1000.0),
    ],
)
def test_accepted_units(unit: str, target: str, factor: float) -> None:
    assert units.factor(unit, target) == pytest.approx(factor)


@pytest.mark.parametrize(
    ("unit", "target"),
    [
        ("furlong", "cm"),
        ("mg", "cm"),
        ("ng/mL", "%"),
        ("cells", "10*9/L"),
        ("", "%"),
        (None, "%"),
        ("x" * 200, "%"),
        ("mg//L", "ng/mL"),
    ],
)
def test_unknown_or_wrong_units(unit: str | None, target: str) -> None:
    assert units.factor(unit, target) is None


@pytest.mark.parametrize(
    ("unit", "ng_ml"),
    [("ng/mL", 1.0), ("mg/L", 1000.0), ("umol/L", 493.6), ("uM", 493.6), ("nmol/L", 0.4936)],
)
def test_imatinib_molar_mass(unit: str, ng_ml: float) -> None:
    assert units.imatinib_ng_ml(unit) == pytest.approx(ng_ml)


def test_imatinib_wrong_unit() -> None:
    assert units.imatinib_ng_ml("mmHg") is None


@pytest.mark.parametrize(
    ("unit", "count"),
    [
        (None, True),
        ("1", True),
        ("{copies}", True),
        ("copies", True),
        ("{copies}/mL", False),
        ("mg", False),
    ],
)
def test_is_count(unit: str | None, count: bool) -> None:
    assert units.is_count(unit) is count


def test_factors_are_cached_per_unit_string() -> None:
    assert units.factor("mg/dL", "ng/mL") == pytest.approx(10_000.0)
    hits = units._factor.cache_info().hits
    assert units.factor("mg/dL", "ng/mL") == pytest.approx(10_000.0)
    assert units._factor.cache_info().hits == hits + 1


def test_quantity_prefers_the_ucum_code() -> None:
    assert units.quantity(
        {"value": 1, "unit": "mcg per litre", "system": "http://unitsofmeasure.org", "code": "ug/L"}
    ) == (1.0, "ug/L", None)
    assert units.quantity({"value": 1, "unit": "tablet", "system": "urn:other", "code": "TAB"}) == (
        1.0,
        "tablet",
        None,
    )
    assert units.quantity({"value": True}) is None
    assert units.quantity({"value": float("nan")}) is None


def test_registry_is_built_only_when_a_unit_needs_converting() -> None:
    """Inputs already in the canonical units never pay the registry's start-up cost."""
    script = (
        "from fhir_cml.fhir.inbound import units\n"
        "assert units.factor('%', '%') == 1.0\n"
        "assert units.factor('10*9/L', '10*9/L') == 1.0\n"
        "assert not units.registry_built()\n"
        "assert units.factor('mg/L', 'ng/mL') == 1000.0\n"
        "assert units.registry_built()\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
