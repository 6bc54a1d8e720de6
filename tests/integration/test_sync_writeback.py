"""The application service's write path (fhir_cml.app) against the real test FHIR server: what
every face writes, who decided it, and withdrawing a suggestion."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
import requests

from fhir_cml.app import Decider, WriteSettings, accept, revoke, suggestions, write_back
from fhir_cml.domain import Assessment, assess
from fhir_cml.ehr.client import FhirClient
from fhir_cml.errors import OperationOutcomeError, RequestError
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound import MappingOptions, records_from_resources
from tests.support.fhir_server import FhirTestServer
from tests.support.sync_data import AS_OF, CML_PATIENTS, pcr

pytestmark = pytest.mark.integration

NOW = datetime(2025, 6, 30, 12, tzinfo=UTC)
DOCTOR = Decider({"reference": "Practitioner/dr-a", "display": "Dr A"})


def assessment_of(pid: str) -> Assessment:
    loaded = records_from_resources(CML_PATIENTS[pid], MappingOptions(now=NOW))
    [record] = loaded.records
    return assess(record, AS_OF)


def held(base: str, kind: str) -> list[dict[str, Any]]:
    bundle = requests.get(f"{base}/{kind}?_count=1000", timeout=30).json()
    return [e["resource"] for e in bundle.get("entry", [])]


@pytest.fixture
def client(fhir_server: FhirTestServer, fhir_base: str) -> Iterator[FhirClient]:
    fhir_server.load(CML_PATIENTS["opt"])
    with FhirClient(fhir_base) as c:
        yield c


def test_suggestions_are_validated_before_anything_is_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fhir_cml.fhir.outbound import bundle

    real = bundle.build_care_plan

    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        plan = real(*args, **kwargs)
        plan["status"] = ["draft"]  # not a code
        return plan

    monkeypatch.setattr(bundle, "build_care_plan", broken)
    with pytest.raises(OperationOutcomeError) as caught:
        suggestions(assessment_of("opt"), NOW)
    assert caught.value.status == 500
    assert caught.value.outcome["issue"][0]["expression"] == ["CarePlan.status"]


def test_profiles_are_claimed_only_when_asked(client: FhirClient, fhir_base: str) -> None:
    assert all(
        "meta" not in r
        for r in suggestions(assessment_of("opt"), NOW, claim_profiles=False).resources
    )
    outcome = write_back(client, assessment_of("opt"), NOW)
    assert outcome.ok, outcome.error
    for kind in ("RiskAssessment", "CarePlan", "Provenance"):
        [resource] = held(fhir_base, kind)
        assert "profile" not in resource.get("meta", {}), kind
    claimed = suggestions(assessment_of("opt"), NOW, claim_profiles=True)
    assert claimed.care_plan["meta"]["profile"] == [c.PROFILE_CARE_PLAN]


def test_the_clinician_who_accepted_is_an_agent_of_the_provenance(
    client: FhirClient, fhir_base: str
) -> None:
    outcome = write_back(client, assessment_of("opt"), NOW, decider=DOCTOR)
    assert outcome.ok, outcome.error
    [provenance] = held(fhir_base, "Provenance")
    agents = {a["type"]["coding"][0]["code"]: a["who"] for a in provenance["agent"]}
    assert agents["verifier"] == DOCTOR.who
    assert agents["assembler"]["identifier"]["value"] == "fhir-cml"


def test_a_dismissed_suggestion_is_revoked_with_the_reason_and_who(
    client: FhirClient, fhir_base: str
) -> None:
    assessment = assessment_of("opt")
    written = write_back(client, assessment, NOW, settings=WriteSettings(mode="batch"))
    assert written.ok, written.error
    outcome = revoke(
        client,
        "opt",
        written.fingerprint,
        NOW,
        reason="Patient prefers to wait for the next result",
        decider=DOCTOR,
    )
    assert outcome.ok, outcome.error
    [plan] = held(fhir_base, "CarePlan")
    assert plan["status"] == "revoked"
    [revocation] = [p for p in held(fhir_base, "Provenance") if len(p["target"]) == 1]
    assert revocation["target"][0]["reference"].startswith(f"CarePlan/{plan['id']}/_history/")
    assert revocation["reason"] == [{"text": "Patient prefers to wait for the next result"}]
    assert DOCTOR.who in [a["who"] for a in revocation["agent"]]
    with pytest.raises(RequestError) as again:
        revoke(client, "opt", written.fingerprint, NOW, reason="twice")
    assert again.value.status == 409


def test_an_accepted_suggestion_is_put_in_force_once_and_a_withdrawn_one_cannot_be(
    client: FhirClient, fhir_base: str
) -> None:
    written = write_back(client, assessment_of("opt"), NOW)
    assert written.ok, written.error
    author = Decider(DOCTOR.who, "author")
    first = accept(client, "opt", written.fingerprint, NOW, decider=author)
    assert first.ok, first.error
    [plan] = held(fhir_base, "CarePlan")
    assert (plan["status"], plan["intent"]) == ("active", "proposal")
    assert first.updated == [f"CarePlan/{plan['id']}"]
    [decision] = [p for p in held(fhir_base, "Provenance") if "reason" in p]
    assert DOCTOR.who in [a["who"] for a in decision["agent"]]
    again = accept(client, "opt", written.fingerprint, NOW, decider=author)
    assert (again.action, again.created, again.updated) == ("unchanged", [], [])
    assert len(held(fhir_base, "Provenance")) == 2
    # A suggestion withdrawn (or never written) cannot be accepted.
    with pytest.raises(RequestError) as gone:
        accept(client, "opt", "0" * 64, NOW, decider=author)
    assert gone.value.status == 409


def test_later_writes_keep_what_a_clinician_decided(client: FhirClient, fhir_base: str) -> None:
    """Accepted (active) or withdrawn (revoked): the same reading written again changes nothing;
    a new reading is proposed beside the accepted plan, and supersedes the reading."""
    first = assessment_of("opt")
    assert write_back(client, first, NOW).ok
    written = write_back(client, first, NOW)
    assert written.action == "unchanged"
    accepted = accept(client, "opt", written.fingerprint, NOW, decider=DOCTOR)
    assert accepted.ok, accepted.error
    again = write_back(client, first, NOW)
    assert again.action == "decided"
    assert not again.wrote
    loaded = records_from_resources(
        [*CML_PATIENTS["opt"], pcr("opt", date(2025, 6, 26), 0.5)], MappingOptions(now=NOW)
    )
    later = write_back(client, assess(loaded.records[0], AS_OF), NOW)
    assert later.ok, later.error
    plans = {p["id"]: p["status"] for p in held(fhir_base, "CarePlan")}
    assert sorted(plans.values()) == ["active", "draft"]  # the plan in force, the new proposal
    risks = held(fhir_base, "RiskAssessment")
    current = [r for r in risks if not any(e["url"] == c.EXT_REPLACED_BY for e in r["extension"])]
    assert [r["id"] for r in current] == [later.risk_assessment.split("/")[1]]
