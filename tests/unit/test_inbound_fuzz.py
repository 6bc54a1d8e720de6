"""Arbitrary and mutated input never makes the reader raise; every problem comes back as an Issue.

The reader also catches anything unexpected per resource and reports it as an "internal error"
issue; these tests fail on such an issue too, so a shape the mappers do not handle on purpose
shows up here rather than in production.
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_cml.domain import assess
from fhir_cml.domain.model import Issue
from fhir_cml.domain.vocabulary import IssueCode
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound import LoadResult, records_from_resources
from fhir_cml.fhir.inbound.record import INTERNAL_ERROR
from tests.unit.inbound_builders import (
    OPTIONS,
    bcr,
    cml_component,
    component,
    concept,
    condition,
    imatinib,
    obs,
    patient,
    qty,
    statement,
)

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["%", "mg", "Patient/p1", "2024-05-02", "final", "<", "#pat", "urn:uuid:x"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = [
    "id", "status", "code", "subject", "patient", "effectiveDateTime", "effectivePeriod",
    "valueQuantity", "valueRatio", "valueCodeableConcept", "valueString", "valueBoolean",
    "interpretation", "dataAbsentReason", "component", "identifier", "meta", "issued",
    "medicationCodeableConcept", "medicationReference", "contained", "dosage", "statusReason",
    "dateAsserted", "birthDate", "stage", "onsetDateTime", "verificationStatus", "date",
    "severity", "outcome", "actuality", "event", "entry", "fullUrl", "resource",
]  # fmt: skip
TYPES = [
    "Patient", "Observation", "Condition", "MedicationStatement", "Medication",
    "AdverseEvent", "Bundle", "Encounter",
]  # fmt: skip


def _valid_resources() -> list[dict[str, Any]]:
    return [
        patient(birthDate="1960-02-02", identifier=[{"system": "urn:mrn", "value": "1"}]),
        condition(stage=[{"summary": concept(c.SNOMED, "278177007")}], onsetDateTime="2019-01-01"),
        bcr(
            0.05,
            oid="b1",
            identifier=[{"system": "urn:lab", "value": "1"}],
            component=[
                cml_component(c.ABL1_COPIES, valueQuantity=qty(50000, "{copies}")),
                cml_component(c.TRANSCRIPT_TYPE, valueCodeableConcept=concept(c.CS_TRANSCRIPT, "e14a2")),
                cml_component(c.CONVERSION_FACTOR, valueQuantity=qty(0.7, "1")),
            ],
        ),
        bcr(None, oid="b2", day="2024-06-02", code="55147-3", valueRatio={"numerator": qty(3), "denominator": qty(9000)}),
        bcr(None, oid="b3", day="2024-07-02", code="50195-7", status="amended", valueQuantity={"value": 4.5, "comparator": ">"}),
        bcr(None, oid="b4", day="2024-08-02", interpretation=[concept(c.V3_INTERPRETATION, "ND")], dataAbsentReason={"text": "not detected"}),
        obs(c.PH_POSITIVE_METAPHASES, c.CS_CML, oid="cy", valueRatio={"numerator": qty(2), "denominator": qty(20)},
            component=[cml_component(c.HIGH_RISK_ACA, valueBoolean=False)]),
        obs("6690-2", oid="wbc", valueQuantity=qty(12, "10*3/uL")),
        obs("103609-4", oid="tr", valueQuantity=qty(1.4, "umol/L"),
            component=[component(c.LOINC, "45359-7", valueQuantity=qty(23, "h"))]),
        obs("69548-6", oid="mu", valueCodeableConcept=concept(c.LOINC, "LA9633-4"),
            component=[component(c.LOINC, "48005-3", valueCodeableConcept=concept(c.HGVS, "p.Thr315Ile")),
                       component(c.LOINC, "48018-6", valueCodeableConcept=concept(c.HGNC, "HGNC:76"))]),
        obs("71799-1", oid="ad", valueCodeableConcept=concept(c.SNOMED, "702565001")),
        statement(imatinib("403879"), dose=1, unit="{tbl}", status="stopped",
                  effectivePeriod={"start": "2019-01-01", "end": "2024-01-01"},
                  statusReason=[{"text": "treatment-free remission"}], dateAsserted="2024-01-02"),
        statement(None, mid="m2", medicationReference={"reference": "#med"},
                  contained=[{"resourceType": "Medication", "id": "med", "code": concept(c.ATC, "L01EA03")}],
                  timing={"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}}),
        statement({"text": "voriconazole"}, mid="m3"),
        {"resourceType": "AdverseEvent", "id": "ae", "actuality": "actual", "subject": {"reference": "Patient/p1"},
         "date": "2024-01-01", "event": {"text": "rash"}, "outcome": concept("urn:x", "resolved"),
         "meta": {"lastUpdated": "2024-02-01"}},
    ]  # fmt: skip


def element_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(element_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(element_paths(item, (*prefix, index)))
    return found


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        doc = doc[step]
    if value is _DELETE and isinstance(doc, dict):
        del doc[path[-1]]
    elif value is _DELETE:
        doc.pop(path[-1])
    else:
        doc[path[-1]] = value


_DELETE = object()


@st.composite
def mutated(draw: st.DrawFn) -> list[Any]:
    resources = copy.deepcopy(_valid_resources())
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        target = draw(st.sampled_from(resources))
        paths = [p for p in element_paths(target) if p != ("resourceType",)]
        if not paths:
            continue
        path = draw(st.sampled_from(paths))
        value = draw(json_values | st.just(_DELETE))
        _set(target, path, value)
    if draw(st.booleans()):
        resources = [
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": r} for r in resources],
            }
        ]
    return resources


small_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)
resource_like = st.builds(
    lambda rtype, fields: {"resourceType": rtype, **fields},
    st.sampled_from(TYPES),
    st.dictionaries(st.sampled_from(FIELDS), small_values, max_size=8),
)


def _check(result: LoadResult) -> None:
    issues: list[Issue] = list(result.issues)
    for rec in result.records:
        issues.extend(rec.issues)
    for item in issues:
        assert isinstance(item, Issue)
        assert isinstance(item.code, IssueCode)
        assert isinstance(item.message, str)
        assert item.message
        assert INTERNAL_ERROR not in item.message, item.message


@SETTINGS
@given(st.lists(json_values, max_size=5))
def test_arbitrary_json_values(values: list[Any]) -> None:
    _check(records_from_resources(values, OPTIONS))


@SETTINGS
@given(st.lists(resource_like, max_size=6))
def test_arbitrary_resources(resources: list[Any]) -> None:
    _check(records_from_resources(resources, OPTIONS))


@SETTINGS
@given(mutated())
def test_mutated_valid_resources_are_read_and_assessed(resources: list[Any]) -> None:
    result = records_from_resources(resources, OPTIONS)
    _check(result)
    for rec in result.records:
        assess(rec, date(2025, 6, 30))


def test_the_valid_resources_are_valid() -> None:
    """The mutation test starts from resources that read without warnings."""
    result = records_from_resources(_valid_resources(), OPTIONS)
    (rec,) = result.records
    assert len(rec.bcr_abl1) == 4
    assert len(rec.tki) == 2
    assert len(rec.other_medications) == 1
    assert {i.code for i in rec.issues} <= {IssueCode.INFERRED, IssueCode.NOT_ON_IS}
