"""Faults the test server does not make by itself, injected with ``responses`` in front of it.

Requests not named by a fault pass through to the real server. Each fault must end with a clear
message, the other patients done, nothing written twice, and a re-run finishing the job.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from fhir_cml.ehr.client import FhirClient, RetryPolicy
from fhir_cml.ehr.fetch import FetchOptions
from fhir_cml.jobs import sync as sync_module
from fhir_cml.jobs.sync import Summary, SyncJob, SyncSettings
from fhir_cml.state import StateStore
from tests.support.fhir_server import FhirTestServer
from tests.support.sync_data import AS_OF, CML_PATIENTS, all_resources
from tests.support.sync_helpers import SyncEnv, assert_requests_follow, by_status

pytestmark = pytest.mark.integration

CML = sorted(f"Patient/{pid}" for pid in CML_PATIENTS)


class Sleeps(list[float]):
    """Records the waits asked for, and moves a clock of its own by them."""

    now = 0.0

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def env(fhir_server: FhirTestServer, fhir_base: str, tmp_path: Path) -> SyncEnv:
    fhir_server.load(list(all_resources()))
    fhir_server.reset_stats()
    return SyncEnv(fhir_server, fhir_base, tmp_path / "state.sqlite3")


@pytest.fixture
def faults(env: SyncEnv) -> Iterator[responses.RequestsMock]:
    """A ``responses`` mock in front of the test server: unmatched requests pass through."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        mock.add_passthru(re.compile(re.escape(env.base.rsplit("/", 1)[0]) + ".*"))
        yield mock


def run(env: SyncEnv, sleeps: Sleeps | None = None, **settings: Any) -> Summary:
    batch_size = settings.pop("batch_size", 50)
    sleeps = sleeps if sleeps is not None else Sleeps()
    client = FhirClient(env.base, sleep=sleeps, clock=sleeps.clock, retry=RetryPolicy(attempts=3))
    store = StateStore(str(env.state))
    job = SyncJob(
        SyncSettings(
            fhir_base=env.base,
            as_of=AS_OF,
            concurrency=1,
            fetch=FetchOptions(batch_size=batch_size),
            **settings,
        ),
        client,
        store,
        progress=False,
        out=io.StringIO(),
    )
    try:
        return job.run()
    finally:
        client.close()
        store.close()


def once(
    mock: responses.RequestsMock, method: str, url: str | re.Pattern[str], **fault: Any
) -> None:
    """The fault for the first matching request; later ones reach the server."""
    mock.add(method, url, **fault)
    mock.add(responses.PassthroughResponse(method, url))


def observations(env: SyncEnv) -> re.Pattern[str]:
    return re.compile(re.escape(f"{env.base}/Observation") + r"\?.*patient=")


def text(summary: Summary) -> str:
    return "\n".join(summary.lines())


def assert_complete(env: SyncEnv) -> None:
    """Every CML patient has exactly one suggestion, RiskAssessment and Provenance, and the
    requests the suggestion proposes, once each."""
    written = env.written()
    assert by_status(written["CarePlan"]) == {"draft": CML}
    assert sorted(r["subject"]["reference"] for r in written["RiskAssessment"]) == CML
    assert len(written["Provenance"]) == len(CML)
    assert_requests_follow(written)


# --- faults that retries absorb ------------------------------------------------------------------


def test_429_with_retry_after_is_waited_out(env: SyncEnv, faults: responses.RequestsMock) -> None:
    once(faults, "GET", observations(env), status=429, headers={"Retry-After": "3"})
    sleeps = Sleeps()
    summary = run(env, sleeps)
    assert summary.exit_code == 0, text(summary)
    assert sleeps == [3.0]
    assert_complete(env)


def test_503_on_a_transaction_of_conditional_creates_is_retried(
    env: SyncEnv, faults: responses.RequestsMock
) -> None:
    faults.add("POST", env.base, status=503)
    faults.add("POST", env.base, status=503)
    faults.add(responses.PassthroughResponse("POST", env.base))
    summary = run(env, transaction_size=2)
    assert summary.exit_code == 0, text(summary)
    assert_complete(env)


def test_a_timeout_on_a_page_is_retried(env: SyncEnv, faults: responses.RequestsMock) -> None:
    once(faults, "GET", observations(env), body=requests.exceptions.ReadTimeout("no answer"))
    summary = run(env)
    assert summary.exit_code == 0, text(summary)
    assert_complete(env)


def test_a_connection_dropped_mid_page_is_retried(
    env: SyncEnv, faults: responses.RequestsMock
) -> None:
    once(
        faults,
        "GET",
        observations(env),
        body=requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead"),
    )
    summary = run(env)
    assert summary.exit_code == 0, text(summary)
    assert_complete(env)


# --- faults that cost some patients a run --------------------------------------------------------


def test_a_page_that_is_not_a_bundle_fails_its_batch_only(
    env: SyncEnv, faults: responses.RequestsMock
) -> None:
    # Batches of two: [fail, mmr], [opt, warn]; the first batch's Observations come back wrong.
    page = re.compile(re.escape(f"{env.base}/Observation") + r"\?patient=fail%2Cmmr")
    faults.add("GET", page, body="<html>Gateway says hello</html>", content_type="text/html")
    summary = run(env, batch_size=2)
    assert summary.exit_code == 1
    assert summary.errors == {"read: response": 2}
    assert (
        "reading failed: search Observation: the server answered HTTP 200 with a body that is not JSON (text/html)"
        in text(summary)
    )
    assert by_status(env.written()["CarePlan"]) == {"draft": ["Patient/opt", "Patient/warn"]}
    assert summary.high_water_mark is not None  # the failed patients are retried by their state

    faults.remove("GET", page)
    summary = run(env, batch_size=2)
    assert summary.exit_code == 0, text(summary)
    assert summary.assessed == 2
    assert_complete(env)


def test_an_operation_outcome_for_a_transaction_isolates_the_patient(
    env: SyncEnv, faults: responses.RequestsMock
) -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "business-rule",
                "diagnostics": "CarePlan refused: the care team is closed",
            }
        ],
    }

    def mentions_fail(request: Any) -> tuple[bool, str]:
        return (b'"Patient/fail"' in (request.body or b""), "not the failing patient")

    faults.add("POST", env.base, status=422, json=outcome, match=[mentions_fail])
    faults.add_passthru(env.base)
    summary = run(env, transaction_size=4)
    assert summary.exit_code == 1
    assert summary.errors == {"HTTP 422 for a batch": 1}
    assert "CarePlan refused: the care team is closed" in text(summary)
    assert by_status(env.written()["CarePlan"]) == {
        "draft": ["Patient/mmr", "Patient/opt", "Patient/warn"]
    }

    faults.reset()
    faults.add_passthru(re.compile(".*"))
    summary = run(env)
    assert summary.exit_code == 0, text(summary)
    assert summary.assessed == 1
    assert_complete(env)


def test_one_entry_of_a_batch_rejected_fails_that_patient_only(
    env: SyncEnv, faults: responses.RequestsMock
) -> None:
    def server_refusing_warn_care_plan(request: Any) -> tuple[int, dict[str, str], str]:
        bundle = json.loads(request.body)
        refused = [
            i
            for i, e in enumerate(bundle["entry"])
            if e["resource"]["resourceType"] == "CarePlan"
            and e["resource"]["subject"]["reference"] == "Patient/warn"
        ]
        kept = {**bundle, "entry": [e for i, e in enumerate(bundle["entry"]) if i not in refused]}
        forwarded = urllib.request.Request(
            env.base,
            data=json.dumps(kept).encode(),
            headers={"Content-Type": "application/fhir+json"},
        )
        with urllib.request.urlopen(forwarded) as answer:
            result = json.loads(answer.read())
        for i in refused:
            result["entry"].insert(
                i,
                {
                    "response": {
                        "status": "422 Unprocessable Entity",
                        "outcome": {
                            "resourceType": "OperationOutcome",
                            "issue": [
                                {
                                    "severity": "error",
                                    "code": "invariant",
                                    "diagnostics": "CarePlan.activity: too many activities",
                                }
                            ],
                        },
                    }
                },
            )
        return 200, {"Content-Type": "application/fhir+json"}, json.dumps(result)

    faults.add_callback("POST", env.base, callback=server_refusing_warn_care_plan)
    summary = run(env, write_mode="batch")
    assert summary.exit_code == 1
    assert summary.errors == {"HTTP 422 for one entry": 1}
    assert (
        "the server refused POST CarePlan (HTTP 422): CarePlan.activity: too many activities"
        in text(summary)
    )
    written = env.written()
    assert by_status(written["CarePlan"]) == {
        "draft": ["Patient/fail", "Patient/mmr", "Patient/opt"]
    }
    assert len(written["Provenance"]) == 3  # warn's step 3 was not attempted

    faults.reset()
    faults.add_passthru(re.compile(".*"))
    summary = run(env, write_mode="batch")
    assert summary.exit_code == 0, text(summary)
    assert_complete(env)  # warn's RiskAssessment from the first run was found, not doubled


def test_a_server_error_that_persists_fails_the_batch_and_a_rerun_finishes(
    env: SyncEnv, faults: responses.RequestsMock
) -> None:
    faults.add(
        "POST",
        env.base,
        status=503,
        json={
            "resourceType": "OperationOutcome",
            "issue": [
                {"severity": "error", "code": "transient", "diagnostics": "database failover"}
            ],
        },
    )
    summary = run(env, transaction_size=4)
    assert summary.exit_code == 1
    assert "database failover" in text(summary)
    assert summary.errors == {"HTTP 503 for a batch": 4}
    assert env.written()["CarePlan"] == []

    faults.reset()
    faults.add_passthru(re.compile(".*"))
    summary = run(env)
    assert summary.exit_code == 0, text(summary)
    assert_complete(env)


# --- killed ---------------------------------------------------------------------------------------


def interrupt_at(call: int, *, after_writing: bool) -> Callable[..., Any]:
    real = sync_module.write_plans
    calls = {"n": 0}

    def write_plans(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == call:
            if after_writing:
                real(*args, **kwargs)
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    return write_plans


@pytest.mark.parametrize("after_writing", [False, True], ids=["before-write", "after-write"])
def test_a_run_killed_between_read_and_write_is_finished_by_the_next(
    env: SyncEnv, monkeypatch: pytest.MonkeyPatch, after_writing: bool
) -> None:
    monkeypatch.setattr(sync_module, "write_plans", interrupt_at(2, after_writing=after_writing))
    summary = run(env, batch_size=1)
    assert summary.interrupted
    assert summary.exit_code == 130
    assert "interrupted: run it again to finish" in text(summary)
    assert summary.high_water_mark is None
    store = StateStore(str(env.state))
    assert [r.status for r in store.runs()] == ["interrupted"]
    store.close()
    # The batch before the kill is written (and, when killed after writing, the killed one);
    # a batch already on its way when the kill came is allowed to finish.
    done = by_status(env.written()["CarePlan"]).get("draft", [])
    assert (2 if after_writing else 1) <= len(done) < len(CML)

    monkeypatch.undo()
    env.server.reset_stats()
    summary = run(env, batch_size=1)
    assert summary.exit_code == 0, text(summary)
    assert_complete(env)
    # Only what was missing was written again.
    assert summary.written == len(CML) - len(done)


# The real command in its own process, killed with SIGKILL (no handler, no clean-up) when it
# reaches the write of its second batch: before sending it, or with it sent.
_KILLED_AT_A_WRITE = """
import os, signal, sys
from fhir_cml.cli import main
from fhir_cml.jobs import sync

real, calls = sync.write_plans, []

def write_plans(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        if os.environ["KILL_AFTER_WRITING"] == "1":
            real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)

sync.write_plans = write_plans
main(sys.argv[1:], prog_name="fhir-cml")
"""


@pytest.mark.parametrize("after_writing", [False, True], ids=["before-write", "after-write"])
def test_a_process_killed_hard_at_a_write_is_finished_by_the_next_run(
    env: SyncEnv, after_writing: bool
) -> None:
    argv = [
        sys.executable,
        "-c",
        _KILLED_AT_A_WRITE,
        "sync",
        "--fhir-base",
        env.base,
        "--state",
        str(env.state),
        "--as-of",
        AS_OF.isoformat(),
        "--no-progress",
        "--concurrency",
        "1",
        "--batch-size",
        "1",
    ]
    killed = subprocess.run(
        argv,
        env={**os.environ, "KILL_AFTER_WRITING": "1" if after_writing else "0"},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    done = by_status(env.written()["CarePlan"]).get("draft", [])
    assert len(done) == (2 if after_writing else 1)

    result = env.run()
    assert result.exit_code == 0, result.output
    assert_complete(env)
    store = StateStore(str(env.state))
    assert [r.status for r in store.runs()] == ["ok", "interrupted"]
    store.close()


def test_a_bug_met_in_one_batch_costs_that_batch_only(
    env: SyncEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = sync_module.assess

    def assess(record: Any, *args: Any, **kwargs: Any) -> Any:
        if record.patient == "Patient/warn":
            raise ZeroDivisionError("a rule divided by zero")
        return real(record, *args, **kwargs)

    monkeypatch.setattr(sync_module, "assess", assess)
    summary = run(env, batch_size=2)
    assert summary.exit_code == 1
    assert summary.errors == {"assessment error": 1}
    assert "the assessment failed (ZeroDivisionError)" in text(summary)
    assert by_status(env.written()["CarePlan"]) == {
        "draft": ["Patient/fail", "Patient/mmr", "Patient/opt"]
    }

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("plan")

    monkeypatch.setattr(sync_module, "assess", real)
    monkeypatch.setattr(sync_module, "plan_writes", explode)
    summary = run(env, batch_size=2)
    assert summary.exit_code == 1
    # warn's batch (opt and warn) fails as a whole; fail and mmr were unchanged, nothing to plan
    assert summary.errors == {"internal error": 2}
    assert "internal error (KeyError); see the log" in text(summary)

    monkeypatch.undo()
    summary = run(env, batch_size=2)
    assert summary.exit_code == 0, text(summary)
    assert_complete(env)
