"""What the SMART app holds for the app's lifetime: its tables, sessions, token endpoint client,
clock, and (in demo mode) the demo's examples and in-memory write-back."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from flask import current_app

from fhir_cml.ehr.auth import SigningKey, load_signing_key
from fhir_cml.errors import ConfigurationError
from fhir_cml.state import StateStore
from fhir_cml.state.smart import SmartState
from fhir_cml.web.settings import Settings, env_name
from fhir_cml.web.smart.demo import Demo
from fhir_cml.web.smart.oauth import TokenEndpoint
from fhir_cml.web.smart.sessions import SessionPolicy, Sessions, secure_origin

log = logging.getLogger("fhir_cml.web.smart")

EXTENSION: Final = "fhir_cml.smart"


@dataclass
class Clock:
    """The current UTC time; tests move ``offset`` to reach expiry without waiting."""

    offset: timedelta = field(default_factory=timedelta)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class SmartRuntime:
    settings: Settings
    state: SmartState
    sessions: Sessions
    clock: Clock
    tokens: TokenEndpoint | None
    demo: Demo | None

    @classmethod
    def start(cls, settings: Settings, store: StateStore) -> SmartRuntime:
        """Creates the SMART tables and reads the client key (a wrong path fails at start)."""
        store.create_all()  # the SMART tables are declared (fhir_cml.state.smart is imported)
        key: SigningKey | None = None
        if settings.smart_private_key is not None:
            try:
                key = load_signing_key(settings.smart_private_key, kid=settings.smart_key_id)
            except ConfigurationError as err:
                raise ConfigurationError(f"{env_name('smart_private_key')}: {err}") from None
        secure = secure_origin(settings.public_base_url)
        if settings.smart_frame_ancestors and not secure:
            raise ConfigurationError(
                f"{env_name('smart_frame_ancestors')} lets EHRs frame the app, which needs a "
                f"cookie browsers keep only over HTTPS: serve the app over HTTPS and set "
                f"{env_name('public_base_url')} to its https:// address"
            )
        if not secure:
            log.warning(
                "the app is served over plain HTTP on a non-loopback address: its session "
                "cookie cannot be Secure; serve it over HTTPS",
            )
        policy = SessionPolicy(
            idle=timedelta(minutes=settings.smart_session_idle_minutes),
            absolute=timedelta(hours=settings.smart_session_max_hours),
            secure=secure,
            framed=bool(settings.smart_frame_ancestors),
        )
        clock = Clock()
        state = SmartState(store)
        return cls(
            settings,
            state,
            Sessions(state, policy, clock),
            clock,
            TokenEndpoint(settings, key) if settings.smart_client_id else None,
            Demo.start(settings) if settings.demo else None,
        )


def smart_runtime() -> SmartRuntime:
    """The current app's SMART runtime."""
    found = current_app.extensions[EXTENSION]
    assert isinstance(found, SmartRuntime)
    return found
