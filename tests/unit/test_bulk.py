"""Bulk Data $export against faults (``responses``); the happy path runs in test_sync.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import responses
from responses import matchers

from fhir_cml.ehr.bulk import BulkOptions, export
from fhir_cml.ehr.client import FhirClient, RetryPolicy
from fhir_cml.errors import BulkExportError

BASE = "https://ehr.example.org/fhir"
STATUS = f"{BASE}/$export-status/job-1"
FILES = "https://files.example.org/exports/job-1"
MANIFEST = {
    "transactionTime": "2025-06-30T22:00:00Z",
    "request": f"{BASE}/Patient/$export",
    "requiresAccessToken": False,
    "output": [
        {"type": "Patient", "url": f"{FILES}/Patient-1.ndjson", "count": 2},
        {"type": "Observation", "url": f"{FILES}/Observation-1.ndjson", "count": 1},
    ],
    "error": [],
}
PATIENTS = b'{"resourceType":"Patient","id":"a"}\n{"resourceType":"Patient","id":"b"}\n'
OBSERVATIONS = b'{"resourceType":"Observation","id":"o","subject":{"reference":"Patient/a"}}\n'


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(sleeps: Sleeps) -> Iterator[FhirClient]:
    with FhirClient(BASE, sleep=sleeps, retry=RetryPolicy(attempts=2)) as c:
        yield c


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


def kick_off(mocked: responses.RequestsMock, since: str | None = None) -> None:
    params = {"_type": "Patient,Observation"}
    if since:
        params["_since"] = since
    mocked.get(
        f"{BASE}/Patient/$export",
        status=202,
        headers={"Content-Location": STATUS},
        match=[
            matchers.query_param_matcher(params),
            matchers.header_matcher({"Prefer": "respond-async", "Accept": "application/fhir+json"}),
        ],
    )


def test_an_export_is_polled_downloaded_and_deleted(
    client: FhirClient, mocked: responses.RequestsMock, sleeps: Sleeps, tmp_path: Path
) -> None:
    kick_off(mocked)
    mocked.get(STATUS, status=202, headers={"Retry-After": "5", "X-Progress": "10%"})
    mocked.get(STATUS, status=202)  # no hint: the client's own back-off
    mocked.get(STATUS, json=MANIFEST)
    mocked.get(f"{FILES}/Patient-1.ndjson", body=PATIENTS)
    mocked.get(f"{FILES}/Observation-1.ndjson", body=OBSERVATIONS)
    mocked.delete(STATUS, status=202)
    result = export(client, tmp_path, types=["Patient", "Observation"])
    assert sleeps == [5.0, 2.0]
    assert result.resources == 3
    assert result.transaction_time.isoformat() == "2025-06-30T22:00:00+00:00"
    assert [p.read_bytes() for p in result.files] == [PATIENTS, OBSERVATIONS]
    assert json.loads((tmp_path / "manifest.json").read_text()) == MANIFEST


def test_files_get_the_token_only_when_the_manifest_says_so(
    client: FhirClient, mocked: responses.RequestsMock, tmp_path: Path
) -> None:
    client.auth = _Token()
    kick_off(mocked)
    mocked.get(STATUS, json={**MANIFEST, "requiresAccessToken": False})
    mocked.get(f"{FILES}/Patient-1.ndjson", body=PATIENTS)
    mocked.get(f"{FILES}/Observation-1.ndjson", body=OBSERVATIONS)
    mocked.delete(STATUS, status=202)
    export(client, tmp_path, types=["Patient", "Observation"])
    file_calls = [call for call in mocked.calls if call.request.url.startswith(FILES)]
    assert all("Authorization" not in call.request.headers for call in file_calls)
    assert "Authorization" in mocked.calls[0].request.headers


def test_a_download_cut_short_is_started_again(
    client: FhirClient, mocked: responses.RequestsMock, tmp_path: Path
) -> None:
    kick_off(mocked)
    mocked.get(STATUS, json=MANIFEST)
    mocked.get(
        f"{FILES}/Patient-1.ndjson",
        body=requests.exceptions.ChunkedEncodingError("Connection broken"),
    )
    mocked.get(f"{FILES}/Patient-1.ndjson", body=PATIENTS)
    mocked.get(f"{FILES}/Observation-1.ndjson", body=OBSERVATIONS)
    mocked.delete(STATUS, status=202)
    result = export(client, tmp_path, types=["Patient", "Observation"])
    assert result.files[0].read_bytes() == PATIENTS


def test_error_files_are_read_and_reported(
    client: FhirClient, mocked: responses.RequestsMock, tmp_path: Path
) -> None:
    kick_off(mocked, since="2025-06-01T00:00:00Z")
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "processing", "diagnostics": "Observation/9 unreadable"}
        ],
    }
    manifest = {
        **MANIFEST,
        "output": [],
        "error": [{"type": "OperationOutcome", "url": f"{FILES}/errors.ndjson"}],
    }
    mocked.get(STATUS, json=manifest)
    mocked.get(f"{FILES}/errors.ndjson", body=json.dumps(outcome) + "\n")
    mocked.delete(STATUS, status=202)
    result = export(
        client,
        tmp_path,
        types=["Patient", "Observation"],
        since=datetime(2025, 6, 1, tzinfo=UTC),
    )
    assert result.errors == [outcome]
    assert "Observation/9 unreadable" in result.error_summary()


def test_a_failed_export_carries_the_server_outcome(
    client: FhirClient, mocked: responses.RequestsMock, tmp_path: Path
) -> None:
    kick_off(mocked)
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "exception", "diagnostics": "disk full"}],
    }
    mocked.get(STATUS, status=500, json=outcome)
    mocked.delete(STATUS, status=404)
    with pytest.raises(
        BulkExportError, match=r"the export failed on the server: .*disk full"
    ) as err:
        export(client, tmp_path, types=["Patient", "Observation"])
    assert err.value.outcome == outcome


def test_an_export_that_takes_too_long_is_cancelled(
    client: FhirClient, mocked: responses.RequestsMock, tmp_path: Path
) -> None:
    kick_off(mocked)
    for _ in range(3):
        mocked.get(STATUS, status=202, headers={"Retry-After": "60"})
    mocked.delete(STATUS, status=202)
    mocked.delete(STATUS, status=404)
    with pytest.raises(BulkExportError, match=r"not ready after 120s .* cancelled"):
        export(
            client, tmp_path, types=["Patient", "Observation"], options=BulkOptions(max_wait=150)
        )


def test_a_kick_off_without_202_is_refused(
    client: FhirClient, mocked: responses.RequestsMock, tmp_path: Path
) -> None:
    mocked.get(f"{BASE}/Patient/$export", status=200, json={"resourceType": "Bundle"})
    with pytest.raises(BulkExportError, match="needs 202 and Content-Location"):
        export(client, tmp_path, types=["Patient", "Observation"])


def test_a_status_url_on_another_origin_is_not_polled(
    client: FhirClient, mocked: responses.RequestsMock, tmp_path: Path
) -> None:
    mocked.get(
        f"{BASE}/Patient/$export",
        status=202,
        headers={"Content-Location": "https://elsewhere.example.com/status/1"},
    )
    with pytest.raises(BulkExportError, match="another origin"):
        export(client, tmp_path, types=["Patient", "Observation"])


def test_a_group_export_asks_the_group(
    client: FhirClient, mocked: responses.RequestsMock, tmp_path: Path
) -> None:
    mocked.get(
        f"{BASE}/Group/clinic-a/$export",
        status=400,
        json={
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "not-found", "diagnostics": "no such group"}],
        },
    )
    with pytest.raises(BulkExportError, match=r"did not start the export: .*no such group"):
        export(client, tmp_path, types=["Patient"], group="clinic-a")


class _Token(requests.auth.AuthBase):
    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = "Bearer t"
        return request
