"""Sync, $cml-assess writeBack and Accept against the test server behaving as real servers do
(tests/fhir_server/README.md, "Real-server behaviours"): after every run, after a run killed
part-way, and after A -> B -> A, every CML patient has exactly one current suggestion
(tests.support.sync_helpers.current_suggestions checks the whole invariant)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from fhir_cml import create_app
from fhir_cml.app import Decider, WriteSettings, write_back
from fhir_cml.domain import Assessment, assess
from fhir_cml.ehr.client import FhirClient
from fhir_cml.fhir.inbound import MappingOptions, records_from_resources
from fhir_cml.web.runtime import runtime
from tests.support.fhir_server import FhirTestServer
from tests.support.sync_data import AS_OF, CML_PATIENTS, all_resources, pcr
from tests.support.sync_helpers import SyncEnv, current_suggestions
from tests.web.conftest import PUBLIC
from tests.web.test_fhir_patient import authenticated, callers

pytestmark = pytest.mark.integration

CML = sorted(f"Patient/{pid}" for pid in CML_PATIENTS)
CONFORMANCE = Path(__file__).resolve().parents[2] / "fhir_cml" / "conformance"
NOW = datetime(2025, 6, 30, 12, tzinfo=UTC)

# Each behaviour of tests/fhir_server, and what the sync is told (write mode, profiles).
MODES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "as-is": ({}, ()),
    "empty-bodies": ({"empty_minimal_bundles": True}, ()),
    "transactions-as-batches": (
        {"transactions_as_batches": True, "entry_failures": "4"},
        ("--write-mode", "transaction"),
    ),
    "rate-limited": ({"rate_limit": "6/1"}, ()),
    "serialization-failures": ({"entry_failures": "3"}, ()),
    "strict-invariants": ({"strict_invariants": True}, ()),
    "enforced-profiles": ({"enforce_profiles": True}, ("--claim-profiles",)),
}


def profiles() -> list[dict[str, Any]]:
    """fhir-cml's StructureDefinitions, as a server that validates against them holds them."""
    return [json.loads(p.read_text()) for p in sorted(CONFORMANCE.glob("StructureDefinition-*"))]


@pytest.fixture(params=sorted(MODES))
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def env(fhir_server: FhirTestServer, fhir_base: str, tmp_path: Path, mode: str) -> SyncEnv:
    fhir_server.load(list(all_resources()))
    if mode == "enforced-profiles":
        fhir_server.load(profiles())
    fhir_server.behave(**MODES[mode][0])
    fhir_server.reset_stats()
    return SyncEnv(fhir_server, fhir_base, tmp_path / "state.sqlite3")


def run(env: SyncEnv, mode: str, *args: str) -> str:
    result = env.run(*MODES[mode][1], *args)
    assert result.exit_code == 0, result.output
    return result.output


def test_sync_keeps_one_current_suggestion_through_a_to_b_to_a(env: SyncEnv, mode: str) -> None:
    output = run(env, mode)
    first = current_suggestions(env.base, CML)
    if mode == "rate-limited":
        assert "waited for quota" in output
    env.server.reset_stats()
    output = run(env, mode)
    assert "written            0" in output
    assert current_suggestions(env.base, CML) == first
    # B: a new result (MMR lost); then A again: that result was entered in error.
    later = pcr("opt", date(2025, 6, 26), 0.5)
    env.put(later)
    run(env, mode)
    second = current_suggestions(env.base, CML)
    assert second["Patient/opt"] != first["Patient/opt"]
    assert {k: v for k, v in second.items() if k != "Patient/opt"} == {
        k: v for k, v in first.items() if k != "Patient/opt"
    }
    env.put({**later, "status": "entered-in-error"})
    run(env, mode)
    assert current_suggestions(env.base, CML) == first


@pytest.mark.parametrize("after", [1, 2, 4])
@pytest.mark.parametrize("mode", ["as-is", "empty-bodies", "transactions-as-batches"])
def test_a_run_killed_between_layers_is_finished_by_the_next(
    env: SyncEnv, mode: str, after: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed with a bundle written and its answer unread: after the readings (1), the
    suggestions (2), or the Provenances of a second group (4)."""
    real = FhirClient.send_bundle
    sent = {"n": 0}

    def send_bundle(self: FhirClient, bundle: dict[str, Any]) -> Any:
        answer = real(self, bundle)
        sent["n"] += 1
        if sent["n"] == after:
            raise KeyboardInterrupt  # killed with the bundle written, its answer unread
        return answer

    monkeypatch.setattr(FhirClient, "send_bundle", send_bundle)
    result = env.run(*MODES[mode][1], "--batch-size", "2", "--concurrency", "1")
    assert result.exit_code == 130, result.output
    monkeypatch.undo()
    run(env, mode)
    current_suggestions(env.base, CML)


# --- writeBack and Accept: the other faces of the same write path --------------------------------


def assessment_of(pid: str, extra: list[dict[str, Any]] | None = None) -> Assessment:
    loaded = records_from_resources([*CML_PATIENTS[pid], *(extra or [])], MappingOptions(now=NOW))
    [record] = loaded.records
    return assess(record, AS_OF)


@pytest.fixture
def service(env: SyncEnv, tmp_path: Path, mode: str) -> Iterator[Flask]:
    settings: dict[str, Any] = {"public_base_url": PUBLIC, "state": str(tmp_path / "web.sqlite3")}
    if MODES[mode][1] == ("--write-mode", "transaction"):
        settings["write_mode"] = "transaction"
    if mode == "enforced-profiles":
        settings["claim_profiles"] = True
    app = create_app(callers(fhir_base=env.base, **settings))
    app.config["TESTING"] = True
    yield app
    with app.app_context():
        runtime().close()


def test_write_back_keeps_one_current_suggestion(env: SyncEnv, service: Flask) -> None:
    client = authenticated(service)
    op = "/fhir/Patient/opt/$cml-assess"
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "asOf", "valueDate": AS_OF.isoformat()},
            {"name": "writeBack", "valueBoolean": True},
        ],
    }

    def write() -> dict[str, str]:
        answer = client.post(op, data=json.dumps(body), content_type="application/fhir+json")
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return current_suggestions(env.base, ["Patient/opt"])

    first = write()
    assert write() == first
    later = pcr("opt", date(2025, 6, 26), 0.5)
    env.put(later)
    assert write() != first
    env.put({**later, "status": "entered-in-error"})
    assert write() == first


def test_accept_keeps_one_current_suggestion_and_records_who(
    env: SyncEnv, mode: str, service: Flask
) -> None:
    settings = WriteSettings(
        mode="transaction" if MODES[mode][1] == ("--write-mode", "transaction") else "batch",
        claim_profiles=mode == "enforced-profiles",
    )
    doctor = Decider({"reference": "Practitioner/dr-a", "display": "Dr A"})
    later = [pcr("opt", date(2025, 6, 26), 0.5)]
    with FhirClient(env.base) as client:
        for assessment in (assessment_of("opt"), assessment_of("opt", later), assessment_of("opt")):
            outcome = write_back(client, assessment, NOW, settings=settings, decider=doctor)
            assert outcome.ok, outcome.error
            assert current_suggestions(env.base, ["Patient/opt"]) == {
                "Patient/opt": outcome.fingerprint
            }
    provenances = env.search("Provenance?_count=100")  # waits out the server's quota
    assert any(
        doctor.who in [a["who"] for a in p["agent"]] for p in provenances
    )  # the one who accepted is on record


def test_a_sync_started_by_the_services_on_the_same_server_agrees(
    env: SyncEnv, mode: str, service: Flask
) -> None:
    """Accept (the SMART app) and the nightly sync on the same patient: one current suggestion."""
    with FhirClient(env.base) as client:
        outcome = write_back(
            client,
            assessment_of("opt"),
            NOW,
            settings=WriteSettings(claim_profiles=mode == "enforced-profiles"),
            decider=Decider({"reference": "Practitioner/dr-a"}),
        )
        assert outcome.ok, outcome.error
    run(env, mode)
    current_suggestions(env.base, CML)


def test_claiming_profiles_a_server_cannot_read_is_refused_and_the_default_claims_none(
    fhir_server: FhirTestServer, fhir_base: str, tmp_path: Path
) -> None:
    fhir_server.load(list(all_resources()))
    fhir_server.behave(enforce_profiles=True)  # the server holds no fhir-cml profile
    env = SyncEnv(fhir_server, fhir_base, tmp_path / "state.sqlite3")
    refused = env.run("--claim-profiles")
    assert refused.exit_code == 1
    assert "Unknown profile https://fhir-cml.org/fhir/StructureDefinition/cml-risk-assessment" in (
        refused.output
    )
    assert env.written()["CarePlan"] == []  # nothing half-written: the first layer was refused
    result = env.run()  # the default: no profile claimed
    assert result.exit_code == 0, result.output
    current_suggestions(env.base, CML)


def test_profiles_as_built_validate_on_a_server_that_holds_them(
    fhir_server: FhirTestServer, fhir_base: str, tmp_path: Path
) -> None:
    """The slices of extensions name their url (Medplum's validator needs it written out)."""
    fhir_server.load(list(all_resources()))
    fhir_server.load(profiles())
    fhir_server.behave(enforce_profiles=True, strict_invariants=True)
    env = SyncEnv(fhir_server, fhir_base, tmp_path / "state.sqlite3")
    result = env.run("--claim-profiles", "--write-mode", "batch")
    assert result.exit_code == 0, result.output
    written = env.written()
    assert all(
        r["meta"]["profile"] for kind in ("RiskAssessment", "CarePlan") for r in written[kind]
    )
    current_suggestions(env.base, CML)


def test_a_strict_ras_2_refuses_a_prediction_without_a_probability(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    fhir_server.behave(strict_invariants=True)
    risk: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "status": "final",
        "subject": {"reference": "Patient/opt"},
        "prediction": [{"outcome": {"text": "Sokal"}, "qualitativeRisk": {"text": "low"}}],
    }
    refused = requests.post(f"{fhir_base}/RiskAssessment", json=risk, timeout=30)
    assert refused.status_code == 400
    assert "ras-2" in refused.text
    risk["prediction"] = [{"outcome": {"text": "relapse"}, "probabilityDecimal": 61}]
    assert requests.post(f"{fhir_base}/RiskAssessment", json=risk, timeout=30).status_code == 201
