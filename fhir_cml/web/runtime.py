"""What the application holds for its lifetime, made once by ``create_app``.

The settings, the state store (with the CDS tables created), and the EHR's FHIR server: one
shared :class:`~fhir_cml.ehr.client.FhirClient` (thread-safe, a session per thread) whose
credentials come from the settings, and a client of one request with those credentials
(:meth:`Ehr.call`). A private key is read at start-up, so a wrong path fails
before the first request; SMART discovery and the first token wait for the first call, so the
service starts while the EHR is down (``/readyz`` says so).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final

import requests
from flask import current_app
from sqlalchemy import text

from fhir_cml.ehr.auth import SigningKey, load_signing_key, server_credentials
from fhir_cml.ehr.client import FhirClient, RetryPolicy
from fhir_cml.errors import ConfigurationError
from fhir_cml.state import StateStore
from fhir_cml.state.cds import CdsState
from fhir_cml.web.callers import Callers
from fhir_cml.web.cds.services import SERVICES, Service, for_site
from fhir_cml.web.cds.tokens import JwksCache, TokenPolicy, TokenVerifier
from fhir_cml.web.settings import Settings, env_name
from fhir_cml.web.terminology import SiteTerminology

__all__ = ["Ehr", "Runtime", "runtime"]

EXTENSION: Final = "fhir_cml"
# An interactive request may wait for one retry, not for the batch job's patience.
INTERACTIVE_RETRY: Final = RetryPolicy(attempts=1, backoff_factor=0.2, max_retry_after=5.0)


class Ehr:
    """The EHR's FHIR server as the service talks to it."""

    def __init__(self, settings: Settings) -> None:
        assert settings.fhir_base is not None
        self.settings = settings
        self.base_url = settings.fhir_base
        self._key: SigningKey | None = None
        if settings.private_key is not None:
            try:
                self._key = load_signing_key(
                    settings.private_key, kid=settings.key_id, alg=settings.key_alg
                )
            except ConfigurationError as err:
                raise ConfigurationError(f"{env_name('private_key')}: {err}") from None
        self._client: FhirClient | None = None
        self._lock = threading.Lock()

    def client(self) -> FhirClient:
        """The shared client, with credentials (SMART discovery happens on the first call)."""
        with self._lock:
            if self._client is None:
                client = FhirClient(
                    self.base_url,
                    timeout=(self.settings.fhir_connect_timeout, self.settings.fhir_timeout),
                    retry=INTERACTIVE_RETRY,
                )
                client.auth = self._auth(client)
                self._client = client
            return self._client

    @contextmanager
    def call(self) -> Iterator[FhirClient]:
        """A client for one request to the service, closed after it: the shared credentials,
        its own quota budget. A client's quota waits count against one budget for its life
        (a sync run), so the shared client would refuse every request once the service had
        waited INTERACTIVE_RETRY's seconds for the EHR's rate limit in all; each request may
        wait that long."""
        shared = self.client()
        client = FhirClient(
            self.base_url, auth=shared.auth, timeout=shared.timeout, retry=INTERACTIVE_RETRY
        )
        try:
            yield client
        finally:
            client.close()

    def _auth(self, client: FhirClient) -> requests.auth.AuthBase | None:
        s = self.settings
        return server_credentials(
            client,
            token=s.token.get_secret_value() if s.token is not None else None,
            client_id=s.client_id,
            key=self._key,
            token_url=s.token_url,
            scope=s.scope,
        )

    def ping(self) -> None:
        """``GET [base]/metadata`` with the readiness timeout; raises FhirClientError."""
        wait = self.settings.ready_timeout
        probe = FhirClient(self.base_url, timeout=(wait, wait), retry=RetryPolicy(attempts=0))
        try:
            response = probe.request("GET", "metadata", auth=False)
            probe.json(response, "metadata")
        finally:
            probe.close()

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


@dataclass
class Runtime:
    """The services of one app; blueprints reach it with :func:`runtime`."""

    settings: Settings
    store: StateStore
    cds: CdsState
    ehr: Ehr | None
    verifier: TokenVerifier  # the EHR's JWT on CDS Hooks calls
    callers: Callers  # callers of Patient/[id]/$cml-assess
    terminology: SiteTerminology | None = None  # the site's local codes and units
    # The CDS services with prefetch templates that ask for the site's own codes too.
    cds_services: Mapping[str, Service] = field(default_factory=lambda: SERVICES)

    @classmethod
    def start(cls, settings: Settings) -> Runtime:
        store = StateStore(settings.state)
        store.create_all()  # the CDS tables are declared (fhir_cml.state.cds is imported)
        store.engine.dispose()  # no connection survives into forked workers (gunicorn --preload)
        ehr = Ehr(settings) if settings.fhir_base else None
        cds = CdsState(store)
        jwks = JwksCache(
            settings.cds_jwks_cache_seconds,
            settings.cds_jwks_refresh_seconds,
            timeout=settings.cds_jwks_timeout,
        )
        verifier = TokenVerifier(TokenPolicy.cds(settings), cds, jwks)
        terminology = SiteTerminology.start(
            settings.concept_maps, settings.terminology_server, settings.terminology_deadline
        )
        services = for_site(terminology.local_codes() if terminology else {})
        return cls(
            settings,
            store,
            cds,
            ehr,
            verifier,
            Callers(settings, cds, jwks),
            terminology,
            services,
        )

    def state_ok(self) -> None:
        """Raises StateError unless the state store answers a trivial query."""
        with self.store.session() as session:
            session.execute(text("SELECT 1"))

    def close(self) -> None:
        if self.ehr is not None:
            self.ehr.close()
        self.store.close()


def runtime() -> Runtime:
    """The current app's runtime."""
    found = current_app.extensions[EXTENSION]
    assert isinstance(found, Runtime)
    return found
