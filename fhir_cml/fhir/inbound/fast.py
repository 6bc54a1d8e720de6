"""Fast paths for the Observations laboratories send most, in their common, well-formed shape.

About nine in ten Observations of a CML patient are a blood count or finding in its canonical
unit, or a BCR::ABL1 IS % (or "not detected") with its control-gene copies. For these, one
function reads the few elements that decide, without the general mappers' layers of helpers.
Anything else - another code, status or unit, a comparator, a date to check, a value out of
range, any element the general path would report on - returns None, and the general path
(observations.py, bcr_abl1.py) then reads the resource from the start. So a fast path never
reports an issue, and where it answers it gives what the general path gives; the tests check
both on mutated input (tests/unit/test_inbound_fast.py).
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

from fhir_cml.domain.model import BcrAbl1Result, LabValue
from fhir_cml.domain.vocabulary import ControlGene, LabKind, Transcript
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound.bcr_abl1 import (
    MAX_PERCENT,
    NOT_DETECTED,
    interpreted_not_detected,
    read_count,
    transcript_of,
)
from fhir_cml.fhir.inbound.codes import (
    LAB_KINDS,
    OBSERVATION_CODES,
    Kind,
    Part,
    components,
)
from fhir_cml.fhir.inbound.context import has_code, number
from fhir_cml.fhir.inbound.identity import Candidate
from fhir_cml.fhir.inbound.observations import LAB_UNITS

_UCUM: Final = c.UCUM
_ABL1: Final = ControlGene.ABL1
_GUSB: Final = ControlGene.GUSB
_ABL1_PART: Final = Part.ABL1_COPIES
_GUSB_PART: Final = Part.GUSB_COPIES
_TRANSCRIPT_PART: Final = Part.TRANSCRIPT

# What the first coding's (code, system) means when a fast path reads it: a lab value
# (LabKind, canonical unit, plausible range) or a BCR::ABL1 IS result (None).
_Spec = tuple[Kind, tuple[LabKind, str, float, float] | None]
_FAST: Final[dict[str, dict[str, _Spec]]] = {}
for _code, _systems in OBSERVATION_CODES.items():
    for _system, _kind in _systems.items():
        if _kind in LAB_UNITS:
            unit, low, high = LAB_UNITS[_kind]
            _FAST.setdefault(_code, {})[_system] = (_kind, (LAB_KINDS[_kind], unit, low, high))
        elif _kind is Kind.BCR_IS:
            _FAST.setdefault(_code, {})[_system] = (_kind, None)


def observation(res: dict[str, Any], ref: str, today: date, order: int) -> Candidate | None:
    """The candidate the general path would map, for the common shapes; else None."""
    concept = res.get("code")
    if type(concept) is not dict:
        return None
    codings = concept.get("coding")
    if type(codings) is not list or not codings:
        return None
    coding = codings[0]
    if type(coding) is not dict:
        return None
    code, system = coding.get("code"), coding.get("system")
    if type(code) is not str or type(system) is not str:
        return None
    systems = _FAST.get(code)
    spec = systems.get(system) if systems is not None else None
    if spec is None or res.get("status") != "final":
        return None
    text = res.get("effectiveDateTime")
    if type(text) is not str or len(text) < 10:
        return None
    try:
        day = date.fromisoformat(text[:10])
    except ValueError:
        return None
    if day >= today:  # on or after today: the general path checks the time too
        return None
    kind, lab = spec
    item: LabValue | BcrAbl1Result | None
    if lab is not None:
        value = _amount(res.get("valueQuantity"), lab[1])
        if value is None or not lab[2] <= value <= lab[3]:
            return None
        item = LabValue(ref, day, lab[0], value)
    else:
        item = _bcr_is(res, ref, day)
        if item is None:
            return None
    return Candidate(kind, text, "final", item, ref, res, order)


def _amount(quantity: Any, unit: str) -> float | None:
    """The value of a UCUM Quantity already in ``unit``, without a comparator."""
    if type(quantity) is not dict:
        return None
    value = number(quantity.get("value"))
    if value is None:
        return None
    if (
        quantity.get("code") != unit
        or quantity.get("system", _UCUM) != _UCUM
        or quantity.get("comparator") is not None
    ):
        return None
    return value


def _bcr_is(res: dict[str, Any], ref: str, day: date) -> BcrAbl1Result | None:
    detectable = True
    percent: float | None = None
    found = res.get("valueQuantity")
    if found is not None:
        percent = _amount(found, "%")
        if percent is None or not 0.0 < percent <= MAX_PERCENT:
            return None
        if "interpretation" in res and interpreted_not_detected(res):
            return None
        derived = "percent"
    else:
        if res.get("valueRatio") is not None:
            return None
        if not has_code(res.get("valueCodeableConcept"), c.SNOMED, NOT_DETECTED):
            return None
        detectable = False
        derived = "undetectable"
    gene: ControlGene | None = None
    copies: int | None = None
    transcript: Transcript | None = None
    if "component" in res:
        parts = components(res)
        spelled = parts.get(_TRANSCRIPT_PART)
        comp = parts.get(_ABL1_PART)
        gene = _ABL1
        if comp is None:
            comp = parts.get(_GUSB_PART)
            gene = _GUSB
        if comp is None:
            gene = None
        else:
            counted = _copies(comp)
            if counted is None:
                return None
            copies = counted
        if spelled is not None:
            transcript = transcript_of(spelled)
            if transcript is None:
                return None
    return BcrAbl1Result(
        ref, day, detectable, percent, True, percent, None, gene, copies, transcript, derived
    )


def _copies(comp: dict[str, Any]) -> int | None:
    """``read_count`` of a component when it reads as a count; the usual {copies} Quantity first."""
    if "valueInteger" not in comp:
        quantity = comp.get("valueQuantity")
        if type(quantity) is dict:
            value: Any = quantity.get("value")
            if (
                type(value) is int
                and value >= 0
                and quantity.get("code") == "{copies}"
                and quantity.get("system", _UCUM) == _UCUM
            ):
                return round(float(value))
    counted = read_count(comp)
    return counted if isinstance(counted, int) else None
