"""Bulk Data Access ($export): kick-off, polling, manifest, NDJSON download to a directory.

For large populations reading patient by patient costs more than having the server write
everything out once. The flow (Bulk Data Access 2.0):

1. ``GET [base]/Patient/$export`` (or ``Group/[id]/$export``) with ``Prefer: respond-async``,
   ``_type`` and, for an incremental run, ``_since``: 202 with ``Content-Location``.
2. Poll that status URL: 202 (wait ``Retry-After`` when given, else 1, 2, 4... s up to a cap)
   until 200 with the manifest, or an error (4xx/5xx with an OperationOutcome) or the time
   limit, after which the export is cancelled (``DELETE``).
3. Download each output file, streamed to disk (files can be larger than memory), with the
   bearer token only when the manifest says ``requiresAccessToken``. A download cut short is
   started again. Error files (OperationOutcomes) are read and reported.
4. ``DELETE`` the status URL so the server can free the files.

The directory then holds NDJSON files that :func:`fhir_cml.fhir.inbound.load_paths` reads; the
manifest's ``transactionTime`` is where the next incremental export starts.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from fhir_cml.ehr.client import FhirClient, outcome_text, same_origin
from fhir_cml.errors import BulkExportError, FhirClientError

log = logging.getLogger(__name__)

NDJSON = "application/fhir+ndjson"
CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class BulkOptions:
    """Polling limits: ``max_wait`` seconds in all, each wait between ``min_poll`` and
    ``max_poll`` seconds (a ``Retry-After`` is honoured within that range)."""

    max_wait: float = 6 * 3600.0
    min_poll: float = 1.0
    max_poll: float = 120.0
    download_attempts: int = 3


DEFAULT_BULK = BulkOptions()


@dataclass(slots=True)
class ExportResult:
    """The downloaded export."""

    directory: Path
    transaction_time: datetime
    files: list[Path] = field(default_factory=list)
    resources: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    def error_summary(self) -> str:
        texts = [outcome_text(e, 120) for e in self.errors[:5]]
        more = f" (and {len(self.errors) - 5} more)" if len(self.errors) > 5 else ""
        return "; ".join(texts) + more


def export(
    client: FhirClient,
    directory: Path,
    *,
    types: Sequence[str],
    since: datetime | None = None,
    group: str | None = None,
    options: BulkOptions = DEFAULT_BULK,
) -> ExportResult:
    """Runs a Patient- (or Group-) level export into ``directory`` and returns what it holds."""
    directory.mkdir(parents=True, exist_ok=True)
    status_url = kick_off(client, types=types, since=since, group=group)
    try:
        manifest = poll(client, status_url, options)
        return download(client, manifest, directory, options)
    finally:
        _forget(client, status_url)


def kick_off(
    client: FhirClient,
    *,
    types: Sequence[str],
    since: datetime | None = None,
    group: str | None = None,
) -> str:
    """Starts the export; returns the status URL."""
    path = f"Group/{group}/$export" if group else "Patient/$export"
    params: list[tuple[str, str]] = [("_type", ",".join(types))]
    if since is not None:
        params.append(("_since", since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")))
    try:
        response = client.request(
            "GET",
            path,
            params=params,
            headers={"Accept": "application/fhir+json", "Prefer": "respond-async"},
        )
    except FhirClientError as err:
        raise BulkExportError(
            f"the server did not start the export: {err.message}",
            status=err.status,
            outcome=err.outcome,
            url=err.url,
        ) from None
    location = response.headers.get("Content-Location")
    if response.status_code != 202 or not location:
        raise BulkExportError(
            f"the export kick-off answered HTTP {response.status_code} without a status URL "
            "(Bulk Data needs 202 and Content-Location)",
            url=client.url(path),
        )
    if not same_origin(location, client.base_url):
        raise BulkExportError(
            "the export status URL is on another origin than the FHIR server; not polled, so "
            "that credentials stay with the server",
            url=location.split("?")[0],
        )
    log.info("bulk export started")
    return location


def poll(
    client: FhirClient, status_url: str, options: BulkOptions = DEFAULT_BULK
) -> dict[str, Any]:
    """Polls until the manifest; cancels the export when it takes longer than allowed."""
    waited = 0.0
    wait = options.min_poll
    started = time.monotonic()
    while True:
        try:
            response = client.request("GET", status_url, headers={"Accept": "application/json"})
        except FhirClientError as err:
            raise BulkExportError(
                f"the export failed on the server: {err.message}",
                status=err.status,
                outcome=err.outcome,
                url=err.url,
            ) from None
        if response.status_code == 200:
            manifest = client.json(response, "bulk export manifest")
            if not isinstance(manifest.get("output"), list):
                raise BulkExportError("the export manifest has no output list", url=status_url)
            log.info("bulk export ready after %.0fs", time.monotonic() - started)
            return manifest
        if response.status_code != 202:
            raise BulkExportError(
                f"unexpected HTTP {response.status_code} while polling the export",
                url=status_url.split("?")[0],
            )
        hint = _retry_after(response.headers.get("Retry-After"))
        pause = min(max(hint if hint is not None else wait, options.min_poll), options.max_poll)
        if waited + pause > options.max_wait:
            _forget(client, status_url)
            raise BulkExportError(
                f"the export was not ready after {waited:.0f}s (limit {options.max_wait:.0f}s); "
                "it was cancelled",
                status=504,
                url=status_url.split("?")[0],
            )
        progress = response.headers.get("X-Progress")
        log.info(
            "bulk export in progress%s; next poll in %.0fs",
            f" ({progress})" if progress else "",
            pause,
        )
        client.sleep(pause)
        waited += pause
        wait = min(wait * 2, options.max_poll)


def download(
    client: FhirClient,
    manifest: dict[str, Any],
    directory: Path,
    options: BulkOptions = DEFAULT_BULK,
) -> ExportResult:
    """Streams the manifest's output files into ``directory``; reads its error files."""
    moment = _instant(manifest.get("transactionTime"))
    if moment is None:
        raise BulkExportError("the export manifest has no valid transactionTime")
    result = ExportResult(directory, moment, manifest=manifest)
    token = bool(manifest.get("requiresAccessToken"))
    for number, item in enumerate(manifest.get("output") or [], 1):
        url, kind = _file(item)
        path = directory / f"{number:04d}-{kind}.ndjson"
        result.resources += _fetch_file(client, url, path, token, options)
        result.files.append(path)
    errors_dir = directory / "errors"
    for number, item in enumerate(manifest.get("error") or [], 1):
        url, kind = _file(item)
        errors_dir.mkdir(exist_ok=True)
        path = errors_dir / f"{number:04d}-{kind}.ndjson"
        _fetch_file(client, url, path, token, options)
        result.errors.extend(_outcomes(path))
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    log.info("bulk export downloaded: %d files, %d resources", len(result.files), result.resources)
    return result


def _fetch_file(client: FhirClient, url: str, path: Path, token: bool, options: BulkOptions) -> int:
    """Downloads one file (started again if the connection drops); returns its line count."""
    for attempt in range(1, options.download_attempts + 1):
        try:
            response = client.request(
                "GET", url, headers={"Accept": NDJSON}, stream=True, auth=token
            )
            lines = 0
            with path.open("wb") as handle:
                for chunk in response.iter_content(CHUNK):
                    handle.write(chunk)
                    lines += chunk.count(b"\n")
            response.close()
            return lines
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
            if attempt == options.download_attempts:
                raise BulkExportError(
                    f"the download of an export file kept failing ({attempt} attempts)",
                    url=url.split("?")[0],
                ) from None
            log.warning("an export file download was cut short; starting it again")
        except FhirClientError as err:
            raise BulkExportError(
                f"an export file could not be downloaded: {err.message}",
                status=err.status,
                outcome=err.outcome,
                url=err.url,
            ) from None
    raise AssertionError("unreachable")


def _forget(client: FhirClient, status_url: str) -> None:
    """Asks the server to delete the export (best effort: the files expire anyway)."""
    try:
        client.request("DELETE", status_url, repeatable=True)
    except FhirClientError as err:
        log.info("the server did not delete the export (HTTP %s)", err.status)


def _file(item: Any) -> tuple[str, str]:
    if not isinstance(item, dict) or not isinstance(item.get("url"), str):
        raise BulkExportError("an export manifest entry has no url")
    kind = item.get("type")
    name = "".join(ch for ch in kind if ch.isalnum()) if isinstance(kind, str) else ""
    return str(item["url"]), name or "resources"


def _outcomes(path: Path) -> list[dict[str, Any]]:
    found = []
    with path.open("rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict) and value.get("resourceType") == "OperationOutcome":
                found.append(value)
    return found


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
