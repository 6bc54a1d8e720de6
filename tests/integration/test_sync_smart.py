"""SMART Backend Services end to end: a token endpoint on loopback, a FHIR server that checks
every bearer token by introspection, and ``fhir-cml sync`` with a client id and a private key."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, jsonify, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from werkzeug.serving import BaseWSGIServer, make_server

from tests.support.fhir_server import FhirTestServer
from tests.support.sync_data import CML_PATIENTS, all_resources
from tests.support.sync_helpers import SyncEnv, by_status

pytestmark = pytest.mark.integration

CLIENT_ID = "fhir-cml-nightly"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class AuthServer:
    """A minimal OAuth 2.0 server: client_credentials with private_key_jwt, and introspection."""

    public_key: RSAKey | ECKey
    url: str = ""
    issued: dict[str, float] = field(default_factory=dict)  # token -> expiry
    revoked: set[str] = field(default_factory=set)
    jtis: set[str] = field(default_factory=set)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    introspections: int = 0
    lifetime: int = 300
    revoke_at: int | None = None  # revoke every token issued so far at this introspection

    def app(self) -> Flask:
        app = Flask("test-auth-server")

        @app.post("/token")
        def token() -> Any:
            form = request.form
            self.token_requests.append(dict(form))
            if form.get("grant_type") != "client_credentials":
                return jsonify(error="unsupported_grant_type"), 400
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                return jsonify(error="invalid_client", error_description="no assertion"), 401
            try:
                assertion = jwt.decode(
                    form.get("client_assertion", ""), self.public_key, algorithms=["RS384", "ES384"]
                )
            except (JoseError, ValueError) as err:
                return jsonify(error="invalid_client", error_description=str(err)), 401
            claims = assertion.claims
            now = time.time()
            problems = [
                claims.get("iss") != CLIENT_ID and "iss",
                claims.get("sub") != CLIENT_ID and "sub",
                claims.get("aud") != f"{self.url}/token" and "aud",
                not (now < claims.get("exp", 0) <= now + 300) and "exp",
                claims.get("jti") in self.jtis and "jti replayed",
            ]
            if any(problems):
                reason = ", ".join(p for p in problems if p)
                return jsonify(error="invalid_client", error_description=reason), 401
            self.jtis.add(claims["jti"])
            access = f"token-{len(self.jtis)}"
            self.issued[access] = now + self.lifetime
            return jsonify(
                access_token=access,
                token_type="bearer",
                expires_in=self.lifetime,
                scope=form.get("scope", ""),
            )

        @app.post("/introspect")
        def introspect() -> Any:
            self.introspections += 1
            if self.introspections == self.revoke_at:
                self.revoked.update(self.issued)
            token = request.form.get("token", "")
            active = self.issued.get(token, 0) > time.time() and token not in self.revoked
            return jsonify(active=active)

        return app


def admin_search(env: SyncEnv, auth: AuthServer, query: str) -> list[dict[str, Any]]:
    """Reads the protected server with a token of the test's own."""
    auth.issued["test-admin"] = time.time() + 3600
    auth.revoked.discard("test-admin")
    response = requests.get(
        f"{env.base}/{query}",
        headers={"Authorization": "Bearer test-admin", "Accept": "application/fhir+json"},
        timeout=30,
    )
    response.raise_for_status()
    return [e["resource"] for e in response.json().get("entry", [])]


@pytest.fixture(scope="module")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RSAKey]:
    key = RSAKey.generate_key(2048)
    path = tmp_path_factory.mktemp("keys") / "fhir-cml.pem"
    path.write_bytes(key.as_pem(private=True))
    return path, RSAKey.import_key(key.as_dict(private=False))


@pytest.fixture(scope="module")
def auth_server(key_pair: tuple[Path, RSAKey]) -> Iterator[AuthServer]:
    auth = AuthServer(key_pair[1])
    server: BaseWSGIServer = make_server("127.0.0.1", 0, auth.app(), threaded=True)
    auth.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield auth
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def protected(
    fhir_server_factory: Callable[..., FhirTestServer], auth_server: AuthServer
) -> FhirTestServer:
    return fhir_server_factory(
        introspection_url=f"{auth_server.url}/introspect",
        args=[
            "--smart-authorize-url",
            f"{auth_server.url}/authorize",
            "--smart-token-url",
            f"{auth_server.url}/token",
        ],
    )


@pytest.fixture
def env(protected: FhirTestServer, auth_server: AuthServer, tmp_path: Path) -> SyncEnv:
    protected.reset()
    protected.load(list(all_resources()))
    protected.reset_stats()
    auth_server.token_requests.clear()
    auth_server.revoked.clear()
    auth_server.revoke_at = None
    return SyncEnv(protected, protected.base_url, tmp_path / "state.sqlite3")


def test_sync_with_smart_backend_services_found_by_discovery(
    env: SyncEnv, auth_server: AuthServer, key_pair: tuple[Path, RSAKey]
) -> None:
    result = env.run("--client-id", CLIENT_ID, "--private-key", str(key_pair[0]))
    assert result.exit_code == 0, result.output
    assert len(auth_server.token_requests) == 1  # one token for the whole run, all threads
    sent = auth_server.token_requests[0]
    assert "system/CarePlan.crus" in sent["scope"]
    assert env.server.stats()["byInteraction"].get("rejected", 0) == 0
    written = admin_search(env, auth_server, "CarePlan?_count=100")
    assert by_status(written) == {"draft": sorted(f"Patient/{p}" for p in CML_PATIENTS)}


def test_a_revoked_token_is_replaced_once_and_the_run_goes_on(
    env: SyncEnv, auth_server: AuthServer, key_pair: tuple[Path, RSAKey]
) -> None:
    auth_server.revoke_at = auth_server.introspections + 2  # after the population search
    result = env.run(
        "--client-id", CLIENT_ID, "--private-key", str(key_pair[0]), "--concurrency", "1"
    )
    assert result.exit_code == 0, result.output
    assert len(auth_server.token_requests) == 2
    assert env.server.stats()["byInteraction"]["rejected"] == 1
    written = admin_search(env, auth_server, "CarePlan?_count=100")
    assert len(written) == len(CML_PATIENTS)


def test_without_credentials_the_server_refuses_and_the_run_says_so(env: SyncEnv) -> None:
    result = env.run("--retries", "0")
    assert result.exit_code == 3
    assert "HTTP 401" in result.output
    assert "bearer token is required" in result.output


def test_a_key_the_server_does_not_know_is_refused_at_start(
    env: SyncEnv, tmp_path: Path, auth_server: AuthServer
) -> None:
    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(RSAKey.generate_key(2048).as_pem(private=True))
    result = env.run("--client-id", CLIENT_ID, "--private-key", str(stranger))
    assert result.exit_code == 3
    assert "the token endpoint refused the request: invalid_client" in result.output
    assert env.server.stats()["requests"] <= 1  # discovery only; no FHIR data was asked for
