"""The fast paths for common Observations answer as the general path does, or not at all.

Each test starts from well-formed results of the shapes the fast paths read, mutates them (an
element replaced by another JSON value, often one near a boundary, or deleted) and maps each both
ways: wherever the fast path answers, the general path gives the same candidate and no issue.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound import fast
from fhir_cml.fhir.inbound.context import MappingContext
from fhir_cml.fhir.inbound.identity import Candidate
from fhir_cml.fhir.inbound.observations import map_observation
from tests.unit.inbound_builders import OPTIONS, bcr, cml_component, concept, obs, qty
from tests.unit.test_inbound_fuzz import element_paths, json_values

REF = "Observation/o1"
ORDER = 3
ABL1 = cml_component(c.ABL1_COPIES, valueQuantity=qty(50000, "{copies}"))


def _bases() -> list[dict[str, Any]]:
    """Fresh copies: the tests change them."""
    return copy.deepcopy([
        obs("6690-2", valueQuantity=qty(6.1, "10*9/L")),
        obs("777-3", valueQuantity=qty(250, "10*9/L")),
        obs("706-2", valueQuantity=qty(1, "%")),
        obs("709-6", valueQuantity=qty(0, "%")),
        obs("32489-7", valueQuantity=qty(3.5, "cm")),
        bcr(0.05, component=[ABL1]),
        bcr(
            12,
            day="2024-05-02T08:30:00+02:00",
            component=[
                cml_component(c.GUSB_COPIES, valueInteger=120000),
                cml_component(c.TRANSCRIPT_TYPE, valueCodeableConcept=concept(c.CS_TRANSCRIPT, "e14a2")),
            ],
        ),
        bcr(None, valueCodeableConcept=concept(c.SNOMED, "260415000", "Not detected"), component=[ABL1]),
        bcr(
            0.8,
            day="2024-05-02T08:30:00Z",
            meta={"versionId": "1", "lastUpdated": "2024-05-03T16:20:00Z"},
            identifier=[{"system": "urn:lab", "value": "A1"}],
            category=[{"coding": [{"system": c.OBSERVATION_CATEGORY, "code": "laboratory"}]}],
            issued="2024-05-03T16:20:00Z",
            interpretation=[{**concept(c.V3_INTERPRETATION, "A", "Abnormal"), "text": "Abnormal"}],
            referenceRange=[{"text": "Not detected"}],
            note=[{"text": "EAC protocol"}],
            component=[ABL1, cml_component(c.CONVERSION_FACTOR, valueQuantity=qty(0.8, "1"))],
        ),
    ])  # fmt: skip


_DELETE = object()
# Elements the fast paths read, so that mutations add them as well as change or delete them.
KEYS = [
    "code", "coding", "system", "status", "effectiveDateTime", "effectivePeriod", "valueQuantity",
    "value", "unit", "comparator", "valueRatio", "valueCodeableConcept", "valueInteger",
    "valueString", "interpretation", "component", "text", "display", "dataAbsentReason",
]  # fmt: skip
near_boundaries = st.sampled_from(
    [
        _DELETE, None, "", 0, -0.0, -1, 1000, 1000.5, 50.5, 1e300, True, [], {},
        "final", "amended", "preliminary", "%", "10*9/L", "10*3/uL", "cm", "mm", "{copies}", "h",
        "<", ">=", c.UCUM, c.LOINC, c.SNOMED, c.CS_CML, "69380-4", "6690-2", "260415000",
        c.ABL1_COPIES, c.GUSB_COPIES, c.TRANSCRIPT_TYPE, "ND", "not detected",
        "2025-06-30", "2025-06-30T11:00:00Z", "2025-07-01", "2024-05", "2024", "2024-13-01",
        [concept(c.V3_INTERPRETATION, "ND")], [{"text": "Below the limit of detection"}],
        qty(0.05, "%"), qty(7, "10*9/L"), {"value": 5}, [ABL1],
    ]
)  # fmt: skip
values = near_boundaries | json_values | st.floats(min_value=-10, max_value=2000)


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    res = copy.deepcopy(draw(st.sampled_from(_bases())))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        paths = [p for p in element_paths(res) if p != ("resourceType",)]
        holders = [()] + [p for p in paths if isinstance(_at(res, p), dict)]
        if draw(st.booleans()):  # change or delete an element
            path = draw(st.sampled_from(paths))
        else:  # add (or overwrite) one the fast paths read
            path = (*draw(st.sampled_from(holders)), draw(st.sampled_from(KEYS)))
        drawn = draw(values)
        value = drawn if drawn is _DELETE else copy.deepcopy(drawn)
        holder = _at(res, path[:-1])
        if value is _DELETE:
            holder.pop(path[-1], None) if isinstance(holder, dict) else holder.pop(path[-1])
        else:
            holder[path[-1]] = value
    return res


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


def both_ways(res: dict[str, Any]) -> tuple[Candidate | None, Candidate | None, MappingContext]:
    ctx = MappingContext(OPTIONS)
    quick = fast.observation(res, REF, ctx.today, ORDER)
    general = map_observation(res, REF, ctx, ORDER)
    return quick, general, ctx


WBC, BCR, GUSB_TRANSCRIPT, NOT_DETECTED = 0, 5, 6, 7
# One element changed at the edge of what the fast paths read: (base, path, value).
EDGES: list[tuple[int, tuple[Any, ...], Any]] = [
    (WBC, ("valueQuantity", "comparator"), "<"),
    (WBC, ("valueQuantity", "comparator"), ""),
    (BCR, ("valueQuantity", "comparator"), ">"),
    (BCR, ("valueQuantity", "comparator"), "<="),
    (WBC, ("effectiveDateTime",), "2025-06-30T11:00:00Z"),
    (WBC, ("effectiveDateTime",), "2025-06-30T12:00:01+00:00"),
    (WBC, ("effectiveDateTime",), "2025-07-01"),
    (WBC, ("effectiveDateTime",), "2024-05"),
    (WBC, ("effectiveDateTime",), "2024-02-30"),
    (WBC, ("effectiveDateTime",), 20240502),
    (WBC, ("effectiveDateTime",), None),
    (WBC, ("status",), "amended"),
    (WBC, ("status",), "preliminary"),
    (WBC, ("valueQuantity", "value"), 1000.5),
    (WBC, ("valueQuantity", "value"), -1),
    (WBC, ("valueQuantity", "value"), -0.0),
    (WBC, ("valueQuantity", "value"), True),
    (WBC, ("valueQuantity", "value"), "6.1"),
    (WBC, ("valueQuantity", "value"), float("inf")),
    (WBC, ("valueQuantity", "system"), "urn:other"),
    (WBC, ("valueQuantity", "code"), "10*3/uL"),
    (WBC, ("valueQuantity", "code"), None),
    (WBC, ("code", "coding", 0, "system"), "urn:other"),
    (WBC, ("code", "coding"), [{"system": c.LOINC, "code": "x"}, {"system": c.LOINC, "code": "6690-2"}]),
    (BCR, ("valueQuantity", "value"), 0),
    (BCR, ("valueQuantity", "value"), 1000.5),
    (BCR, ("valueQuantity", "code"), "1"),
    (BCR, ("interpretation",), [concept(c.V3_INTERPRETATION, "ND")]),
    (BCR, ("interpretation",), [{"text": "Below the limit of detection"}]),
    (BCR, ("component", 0, "valueQuantity", "value"), -5),
    (BCR, ("component", 0, "valueQuantity", "code"), "mg"),
    (BCR, ("component", 0, "valueQuantity"), None),
    (BCR, ("component", 0, "code", "coding", 0, "code"), c.GUSB_COPIES),
    (BCR, ("code", "coding", 0, "code"), "55147-3"),
    (GUSB_TRANSCRIPT, ("component", 0, "valueInteger"), -1),
    (GUSB_TRANSCRIPT, ("component", 1, "valueCodeableConcept"), concept(c.CS_TRANSCRIPT, "e99")),
    (NOT_DETECTED, ("valueCodeableConcept",), concept(c.SNOMED, "260373001")),
    (NOT_DETECTED, ("valueCodeableConcept",), {"text": "not detected"}),
    (NOT_DETECTED, ("valueRatio",), {"numerator": qty(1), "denominator": qty(1000)}),
    (NOT_DETECTED, ("valueString",), "not detected"),
]  # fmt: skip


@pytest.mark.parametrize(("base", "path", "value"), EDGES)
def test_at_the_edges_both_paths_agree(base: int, path: tuple[Any, ...], value: Any) -> None:
    res = _bases()[base]
    _at(res, path[:-1])[path[-1]] = value
    quick, general, ctx = both_ways(res)
    if quick is not None:
        assert repr(quick) == repr(general)
        assert ctx.issues == []


def test_the_fast_path_reads_the_common_shapes() -> None:
    for res in _bases():
        quick, general, ctx = both_ways(res)
        assert quick is not None, res
        assert repr(quick) == repr(general)
        assert ctx.issues == []


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_where_the_fast_path_answers_the_general_path_agrees(res: dict[str, Any]) -> None:
    quick, general, ctx = both_ways(res)
    if quick is not None:
        assert repr(quick) == repr(general)  # repr tells -0.0 from 0.0
        assert ctx.issues == []
        assert not ctx.not_read
