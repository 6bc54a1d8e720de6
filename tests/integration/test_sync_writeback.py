"""The application service's write path (fhir_cml.app) against the real test FHIR server: what
every face writes, who decided it, and withdrawing a suggestion."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
import requests

from fhir_cml.app import (
    Decider,
    Hint,
    WriteSettings,
    accept,
    plan,
    revoke,
    suggestions,
    write,
    write_back,
)
from fhir_cml.domain import Assessment, assess
from fhir_cml.ehr.client import FhirClient
from fhir_cml.errors import OperationOutcomeError, RequestError
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound import MappingOptions, records_from_resources
from fhir_cml.fhir.outbound import standalone
from fhir_cml.fhir.outbound.care_plan import proposal_keys
from fhir_cml.fhir.outbound.requests import request_key
from tests.support.fhir_server import FhirTestServer
from tests.support.sync_data import AS_OF, CML_PATIENTS, pcr
from tests.support.sync_helpers import REQUEST_TYPES, assert_requests_follow, current_suggestions

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
    [pcr_proposal] = held(fhir_base, "ServiceRequest")  # the next PCR, proposed
    assert pcr_proposal["status"] == "revoked"  # withdrawn with its suggestion
    assert (
        outcome.updated
        == outcome.withdrawn
        == [
            f"CarePlan/{plan['id']}",
            f"ServiceRequest/{pcr_proposal['id']}",
        ]
    )
    [revocation] = [p for p in held(fhir_base, "Provenance") if "reason" in p]
    assert [t["reference"] for t in revocation["target"]] == [
        f"CarePlan/{plan['id']}/_history/{plan['meta']['versionId']}",
        f"ServiceRequest/{pcr_proposal['id']}/_history/{pcr_proposal['meta']['versionId']}",
    ]
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
    [pcr_proposal] = held(fhir_base, "ServiceRequest")
    assert (pcr_proposal["status"], pcr_proposal["intent"]) == ("active", "proposal")
    assert first.updated == [f"CarePlan/{plan['id']}", f"ServiceRequest/{pcr_proposal['id']}"]
    assert first.withdrawn == []
    [decision] = [p for p in held(fhir_base, "Provenance") if "reason" in p]
    assert DOCTOR.who in [a["who"] for a in decision["agent"]]
    assert len(decision["target"]) == 2  # the CarePlan and its request, at their versions
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


def test_proposals_an_interrupted_write_left_behind_do_not_outlive_it(
    client: FhirClient, fhir_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write stopped after its first layer leaves a reading and its proposed requests, no
    CarePlan proposing them; the next write, of another reading, withdraws them."""
    real = FhirClient.send_bundle

    def stopped(self: FhirClient, bundle: dict[str, Any]) -> Any:
        real(self, bundle)
        raise KeyboardInterrupt  # killed with the first bundle written, its answer unread

    monkeypatch.setattr(FhirClient, "send_bundle", stopped)
    with pytest.raises(KeyboardInterrupt):
        write_back(client, lost_mmr(), NOW)
    monkeypatch.undo()
    left = held(fhir_base, "ServiceRequest")
    assert left
    assert all(r["status"] == "draft" for r in left)
    assert held(fhir_base, "CarePlan") == []
    outcome = write_back(client, assessment_of("opt"), NOW)
    assert outcome.ok, outcome.error
    assert current_suggestions(fhir_base, ["Patient/opt"]) == {"Patient/opt": outcome.fingerprint}
    for request in left:
        assert f"ServiceRequest/{request['id']}" in outcome.updated


def created_from_a_card(base: str, assessment: Assessment) -> dict[str, Any]:
    """What an EHR creates when a clinician takes the CDS card's suggestion: each resource of
    its create actions on its own (no Bundle; the CarePlan names the others by identifier)."""
    made = {}
    for resource in standalone(suggestions(assessment, NOW)):
        answer = requests.post(f"{base}/{resource['resourceType']}", json=resource, timeout=30)
        assert answer.status_code == 201, answer.text
        made[resource["resourceType"]] = answer.json()
    return made["CarePlan"]


def lost_mmr() -> Assessment:
    loaded = records_from_resources(
        [*CML_PATIENTS["opt"], pcr("opt", date(2025, 6, 26), 0.5)], MappingOptions(now=NOW)
    )
    return assess(loaded.records[0], AS_OF)


def test_proposals_a_cds_client_created_follow_their_suggestion(
    client: FhirClient, fhir_base: str
) -> None:
    """A CarePlan created from a card names its requests by identifier: superseded or
    withdrawn, they follow it all the same."""
    card = created_from_a_card(fhir_base, lost_mmr())
    assert proposal_keys(card)
    # A later reading supersedes it, written as a nightly sync does after a run that finished
    # (no deep read: only the drafts and what they propose).
    hint = Hint(deep=False)
    [planned] = plan(client, [assessment_of("opt")], NOW, hints={"opt": hint})
    [outcome] = write(client, [planned])
    assert outcome.ok, outcome.error
    plans = {p["id"]: p for p in held(fhir_base, "CarePlan")}
    assert plans[card["id"]]["status"] == "revoked"
    withdrawn = [r for r in held(fhir_base, "ServiceRequest") if r["status"] == "revoked"]
    assert {("ServiceRequest", request_key(r)) for r in withdrawn} == set(proposal_keys(card))
    assert_requests_follow({k: held(fhir_base, k) for k in ("CarePlan", *REQUEST_TYPES)})


def test_a_dismissed_suggestion_a_cds_client_created_withdraws_its_proposals(
    client: FhirClient, fhir_base: str
) -> None:
    card = created_from_a_card(fhir_base, lost_mmr())
    fp = card["identifier"][0]["value"]
    outcome = revoke(client, "opt", fp, NOW, reason="Not now", decider=DOCTOR)
    assert outcome.ok, outcome.error
    assert len(outcome.withdrawn) == 1 + len(proposal_keys(card))
    assert {r["status"] for r in held(fhir_base, "ServiceRequest")} == {"revoked"}
