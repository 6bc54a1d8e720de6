"""Identity and idempotency: fingerprint, identifiers, fullUrls and the transaction's conditions."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from fhir_cml.domain import Guideline, assess
from fhir_cml.domain.results import Suggestion
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.outbound import (
    OutboundIds,
    build,
    fingerprint,
    result_bundle,
    transaction_bundle,
)
from fhir_cml.fhir.outbound.identifiers import full_url, if_none_exist, resource_type
from fhir_cml.reporting import issue_message
from tests.unit.cases import AS_OF, RECORDS, assessment, optimal_record

RECORDED = datetime(2025, 6, 30, 14, 5, 9, tzinfo=UTC)


def test_fingerprint_is_sha256_hex_and_repeatable() -> None:
    fp = fingerprint(assessment("optimal"))
    assert re.fullmatch(r"[0-9a-f]{64}", fp)
    assert fingerprint(assessment("optimal")) == fp


def test_same_conclusions_on_another_day_give_the_same_identifiers() -> None:
    # The next PCR is due on 2025-07-11: up to then nothing the reading concludes changes.
    early, later = assessment("optimal", AS_OF), assessment("optimal", date(2025, 7, 8))
    assert early.as_of != later.as_of
    assert fingerprint(early) == fingerprint(later)
    assert OutboundIds.of(early) == OutboundIds.of(later)


def test_a_changed_conclusion_gives_new_identifiers() -> None:
    before = assessment("optimal", AS_OF)
    overdue = assessment("optimal", date(2025, 7, 20))
    assert overdue.monitoring.overdue
    assert not before.monitoring.overdue
    assert fingerprint(overdue) != fingerprint(before)


def test_texts_do_not_count_but_codes_do() -> None:
    a = assessment("optimal")
    reworded = replace(
        a,
        recommendations=tuple(
            Suggestion(s.code, s.finding, (*s.params, ("reworded", True)), s.basis)
            for s in a.recommendations
        ),
    )
    assert fingerprint(reworded) == fingerprint(a)
    fewer = replace(a, recommendations=a.recommendations[:-1])
    assert fingerprint(fewer) != fingerprint(a)


def test_inputs_rules_and_guideline_are_part_of_the_fingerprint() -> None:
    a = assessment("optimal")
    record = optimal_record()
    extra = replace(
        record,
        bcr_abl1=(*record.bcr_abl1[:-1], replace(record.bcr_abl1[-1], ref="Observation/other")),
    )
    assert fingerprint(assess(extra, AS_OF)) != fingerprint(a)
    assert fingerprint(replace(a, ruleset_version="9.9.9")) != fingerprint(a)
    assert fingerprint(assessment("optimal", guideline=Guideline.ELN2013)) != fingerprint(a)
    assert fingerprint(replace(a, patient="Patient/someone-else")) != fingerprint(a)


def test_full_urls_are_uuid5_urns_distinct_per_resource() -> None:
    ids = OutboundIds.of(assessment("optimal"))
    urls = [ids.risk_assessment, ids.care_plan, ids.provenance, ids.outcome]
    assert len(set(urls)) == 4
    for url in urls:
        assert url.startswith("urn:uuid:")
        assert uuid.UUID(url.removeprefix("urn:uuid:")).version == 5
    assert ids.risk_assessment == full_url(f"{c.ID_ASSESSMENT}|{ids.fingerprint}")
    assert ids.assessment_identifier == {"system": c.ID_ASSESSMENT, "value": ids.fingerprint}
    assert ids.care_plan_identifier == {"system": c.ID_CARE_PLAN, "value": ids.fingerprint}


def test_if_none_exist_shapes() -> None:
    assert if_none_exist("https://x/id", "abc") == "identifier=https://x/id|abc"
    assert (
        if_none_exist("https://x/id", "abc", "target:RiskAssessment.identifier")
        == "target:RiskAssessment.identifier=https://x/id|abc"
    )


def test_transaction_bundle_posts_conditional_creates_linked_by_full_url() -> None:
    assessments = [assessment(n) for n in sorted(RECORDS)]
    bundle = transaction_bundle(assessments, RECORDED)
    assert bundle["type"] == "transaction"
    sizes = [len(build(a, RECORDED).entries) for a in assessments]
    assert len(bundle["entry"]) == sum(sizes)
    assert len({e["fullUrl"] for e in bundle["entry"]}) == len(bundle["entry"])
    at = 0
    for a, size in zip(assessments, sizes, strict=True):
        ra, cp, *requests, prov = bundle["entry"][at : at + size]
        at += size
        fp = fingerprint(a)
        assert [e["resource"]["resourceType"] for e in (ra, cp, prov)] == [
            "RiskAssessment",
            "CarePlan",
            "Provenance",
        ]
        for request in requests:
            key = request["resource"]["identifier"][0]["value"]
            assert key.startswith(f"{fp}-")
            assert request["request"] == {
                "method": "POST",
                "url": request["resource"]["resourceType"],
                "ifNoneExist": f"identifier={c.ID_REQUEST}|{key}",
            }
            assert request["fullUrl"] in str(cp["resource"]["activity"])
        assert ra["request"] == {
            "method": "POST",
            "url": "RiskAssessment",
            "ifNoneExist": f"identifier={c.ID_ASSESSMENT}|{fp}",
        }
        assert cp["request"] == {
            "method": "POST",
            "url": "CarePlan",
            "ifNoneExist": f"identifier={c.ID_CARE_PLAN}|{fp}",
        }
        assert prov["request"] == {
            "method": "POST",
            "url": "Provenance",
            "ifNoneExist": f"target:RiskAssessment.identifier={c.ID_ASSESSMENT}|{fp}",
        }
        assert ra["resource"]["identifier"] == [{"system": c.ID_ASSESSMENT, "value": fp}]
        assert cp["resource"]["identifier"] == [{"system": c.ID_CARE_PLAN, "value": fp}]
        assert cp["resource"]["supportingInfo"] == [{"reference": ra["fullUrl"]}]
        assert prov["resource"]["target"] == [
            {"reference": e["fullUrl"]} for e in (ra, cp, *requests)
        ]


def test_rerunning_gives_the_same_bundle_apart_from_the_moment_of_writing() -> None:
    first = transaction_bundle([assessment("t315i")], RECORDED)
    later = datetime(2025, 7, 1, 9, 0, 0, tzinfo=UTC)
    second = transaction_bundle([assessment("t315i")], later)
    assert first != second
    for bundle in (first, second):
        del bundle["timestamp"]
        del bundle["entry"][1]["resource"]["created"]  # the moment of writing, as below
        for key in ("recorded", "occurredDateTime", "text"):
            del bundle["entry"][-1]["resource"][key]
        for entry in bundle["entry"][2:-1]:  # the proposals: written when authored
            for resource in (entry["resource"], *entry["resource"].get("contained", [])):
                del resource["authoredOn"]
    assert first == second


def test_result_bundle_is_a_collection_ending_in_an_operation_outcome() -> None:
    a = assessment("not-evaluable")
    bundle = result_bundle([a], RECORDED)
    assert bundle["type"] == "collection"
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == ["RiskAssessment", "CarePlan", "Provenance", "OperationOutcome"]  # no proposal
    assert all("request" not in e for e in bundle["entry"])
    outcome = bundle["entry"][-1]["resource"]
    assert [i["diagnostics"] for i in outcome["issue"]] == [issue_message(i) for i in a.issues]
    clean = result_bundle([assessment("optimal")], RECORDED)
    assert clean["entry"][-1]["resource"]["issue"] == [
        {"severity": "information", "code": "informational", "diagnostics": "No issues."}
    ]


@pytest.mark.parametrize(
    ("ref", "kind"),
    [
        ("Condition/1", "Condition"),
        ("https://ehr.example/fhir/Observation/abc", "Observation"),
        ("https://ehr.example/fhir/Observation/abc/_history/3", "Observation"),
        ("urn:uuid:0d4c1c7e-0000-4000-8000-000000000000", None),
        ("#contained", None),
        ("nonsense", None),
        ("lower/1", None),
    ],
)
def test_resource_type_of_a_reference(ref: str, kind: str | None) -> None:
    assert resource_type(ref) == kind
