"""Running ``fhir-cml sync`` in tests and reading back what it wrote."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import requests
from click.testing import CliRunner, Result

from fhir_cml.cli import main
from fhir_cml.ehr.fetch import REQUEST_TYPES
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.outbound.care_plan import proposal_keys, proposals_of, proposed_requests
from fhir_cml.fhir.outbound.requests import key_fingerprint, request_key
from tests.support.fhir_server import FhirTestServer
from tests.support.sync_data import AS_OF

WRITES = ("transaction", "batch", "create", "update", "patch", "delete")


@dataclass
class SyncEnv:
    """A seeded test server and a state store of one test."""

    server: FhirTestServer
    base: str
    state: Path

    def run(self, *args: str, state: Path | None = None) -> Result:
        """``fhir-cml sync`` with this server and state, as of the tests' date."""
        argv = [
            "sync",
            "--fhir-base",
            self.base,
            "--state",
            str(state or self.state),
            "--as-of",
            AS_OF.isoformat(),
            "--no-progress",
            "--concurrency",
            "2",
            *args,
        ]
        return CliRunner().invoke(main, argv, catch_exceptions=False)

    def put(self, resource: dict[str, Any]) -> None:
        """An update through the FHIR API, as an EHR would make it (a new meta.lastUpdated;
        whatever real-server behaviour the test switched on is off meanwhile)."""
        body = {k: v for k, v in resource.items() if k != "meta"}
        with self.server.plain():
            response = requests.put(
                f"{self.base}/{resource['resourceType']}/{resource['id']}",
                json=body,
                headers={"Content-Type": "application/fhir+json"},
                timeout=30,
            )
        assert response.status_code in (200, 201), response.text

    def search(self, query: str) -> list[dict[str, Any]]:
        bundle = get(f"{self.base}/{query}")
        assert bundle.get("link") is None or not any(
            link["relation"] == "next" for link in bundle["link"]
        ), "more than one page; raise _count"
        return [e["resource"] for e in bundle.get("entry", [])]

    def written(self) -> dict[str, list[dict[str, Any]]]:
        """Everything fhir-cml wrote, by resource type (of the request types, its proposals)."""
        out = {
            kind: self.search(f"{kind}?_count=1000")
            for kind in ("RiskAssessment", "CarePlan", "Provenance")
        }
        for kind in REQUEST_TYPES:
            out[kind] = [r for r in self.search(f"{kind}?_count=1000") if request_key(r)]
        return out

    def writes(self) -> int:
        """Write requests (transactions, batches, creates, ...) since the stats were reset."""
        stats = self.server.stats()["byInteraction"]
        return sum(stats.get(kind, 0) for kind in WRITES)

    def reads(self) -> int:
        stats = self.server.stats()["byInteraction"]
        return sum(n for kind, n in stats.items() if kind not in WRITES)


def subject_of(resource: dict[str, Any]) -> str:
    return str(resource["subject"]["reference"])


def fingerprint_of(resource: dict[str, Any]) -> str:
    for ident in resource.get("identifier", []):
        if ident["system"] in (c.ID_ASSESSMENT, c.ID_CARE_PLAN):
            return str(ident["value"])
    raise AssertionError("no fhir-cml identifier")


def by_status(care_plans: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for plan in care_plans:
        out.setdefault(plan["status"], []).append(subject_of(plan))
    return {k: sorted(v) for k, v in out.items()}


def current_suggestions(base: str, patients: Iterable[str]) -> dict[str, str]:
    """Checks the write-back invariant on what the server holds and returns, per patient
    (``Patient/<id>``), the fingerprint of its current suggestion.

    Per patient: exactly one draft fhir-cml CarePlan; it points (supportingInfo) to a
    RiskAssessment that exists, has the same fingerprint and no ``replaced-by``; every other
    fhir-cml RiskAssessment of the patient is ``replaced-by`` one that exists; a Provenance targets
    both. On the whole server: no fingerprint written twice, no Provenance targeting something
    missing, no CarePlan pointing to a missing RiskAssessment; and the proposed requests follow
    their suggestions (:func:`assert_requests_follow`).
    """
    held = {kind: _everything(base, kind) for kind in ("RiskAssessment", "CarePlan", "Provenance")}
    for kind in REQUEST_TYPES:
        held[kind] = [r for r in _everything(base, kind) if request_key(r)]
    assert_requests_follow(held)
    ids = {f"{r['resourceType']}/{r['id']}" for rs in held.values() for r in rs}
    keys = [request_key(r) for kind in REQUEST_TYPES for r in held[kind]]
    assert len(keys) == len(set(keys)), f"a request written twice: {sorted(map(str, keys))}"
    for kind in ("RiskAssessment", "CarePlan"):
        fps = [fingerprint_of(r) for r in held[kind]]
        assert len(fps) == len(set(fps)), f"a {kind} written twice: {sorted(fps)}"
    for provenance in held["Provenance"]:
        for target in provenance["target"]:
            assert _unversioned(target["reference"]) in ids, f"orphan Provenance {provenance['id']}"
    for plan in held["CarePlan"]:
        for info in plan.get("supportingInfo", []):
            assert info["reference"] in ids, f"CarePlan/{plan['id']} points to nothing"
    risks = {f"RiskAssessment/{r['id']}": r for r in held["RiskAssessment"]}
    current: dict[str, str] = {}
    for patient in patients:
        drafts = [
            p for p in held["CarePlan"] if subject_of(p) == patient and p["status"] == "draft"
        ]
        assert len(drafts) == 1, f"{patient}: {len(drafts)} draft suggestions"
        [plan] = drafts
        [info] = plan["supportingInfo"]
        risk = risks[info["reference"]]
        assert fingerprint_of(risk) == fingerprint_of(plan), f"{patient}: plan and reading differ"
        mine = [r for r in held["RiskAssessment"] if subject_of(r) == patient]
        now = [r for r in mine if not _replaced_by(r)]
        assert [r["id"] for r in now] == [risk["id"]], f"{patient}: current readings {now}"
        for r in mine:
            if r is not risk:
                assert _replaced_by(r) in risks, f"{patient}: RiskAssessment/{r['id']} dangles"
        refs = {info["reference"], f"CarePlan/{plan['id']}"}
        assert any(
            refs <= {_unversioned(t["reference"]) for t in p["target"]} for p in held["Provenance"]
        ), f"{patient}: no Provenance of the current suggestion"
        current[patient] = fingerprint_of(plan)
    return current


# A proposed request's status, given its CarePlan's (a withdrawn MedicationRequest is cancelled).
FOLLOWS: Final = {
    "draft": {"draft"},
    "active": {"active"},
    "revoked": {"revoked", "cancelled"},
}


def assert_requests_follow(written: dict[str, list[dict[str, Any]]]) -> None:
    """Every request fhir-cml proposed belongs to at most one of its CarePlans, of the same
    assessment, and has that CarePlan's status; one no CarePlan proposes (an interrupted write
    left it behind) is withdrawn: no proposal outlives its suggestion, and none is a draft unless
    its suggestion is the current draft."""
    requests_ = {
        f"{r['resourceType']}/{r['id']}": r for kind in REQUEST_TYPES for r in written[kind]
    }
    owners: dict[str, list[str]] = {ref: [] for ref in requests_}
    for plan in written["CarePlan"]:
        found = proposed_requests(plan, requests_.values())
        named = len(proposals_of(plan)) + len(proposal_keys(plan))
        assert len(found) == named, (
            f"CarePlan/{plan['id']} proposes a request not there: "
            f"{proposals_of(plan)} {proposal_keys(plan)} {[request_key(r) for r in found]}"
        )
        for request in found:
            ref = f"{request['resourceType']}/{request['id']}"
            key = str(request_key(request))
            assert key_fingerprint(key) == fingerprint_of(plan), f"{ref} is another's"
            assert request["status"] in FOLLOWS[plan["status"]], (
                f"{ref} is {request['status']}, its CarePlan/{plan['id']} {plan['status']}"
            )
            owners[ref].append(plan["id"])
    shared = {ref: plans for ref, plans in owners.items() if len(plans) > 1}
    assert not shared, f"requests proposed by more than one suggestion: {shared}"
    left = {
        ref: requests_[ref]["status"]
        for ref, plans in owners.items()
        if not plans and requests_[ref]["status"] not in FOLLOWS["revoked"]
    }
    assert not left, f"requests no suggestion proposes, not withdrawn: {left}"


def _everything(base: str, kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in get(f"{base}/{kind}?_count=1000").get("entry", [])]


def get(url: str) -> dict[str, Any]:
    """A GET of the tests' own, waiting out a rate-limited test server (it allows no bursts)."""
    for _ in range(30):
        response = requests.get(url, headers={"Accept": "application/fhir+json"}, timeout=30)
        if response.status_code != 429:
            break
        time.sleep(0.5)
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


def _replaced_by(risk: dict[str, Any]) -> str | None:
    for ext in risk.get("extension", []):
        if ext["url"] == c.EXT_REPLACED_BY:
            return str(ext["valueReference"]["reference"])
    return None


def _unversioned(reference: str) -> str:
    return reference.split("/_history/", 1)[0]
