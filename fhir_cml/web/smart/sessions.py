"""Server-side sessions: the browser holds an opaque id, the state store holds everything else.

The cookie is ``HttpOnly`` (no script reads it), ``SameSite=Lax`` (sent on the EHR's redirect
back to the app, not on cross-site form posts) and ``Secure`` with the ``__Host-`` prefix (no
``Domain``, path ``/``: a sibling host cannot plant or read it) whenever the app is served over
HTTPS or on loopback, where browsers allow secure cookies over plain HTTP. A session ends after
``FHIR_CML_SMART_SESSION_IDLE_MINUTES`` without a request and, in any case,
``FHIR_CML_SMART_SESSION_MAX_HOURS`` after sign-in; a sign-in that does not come back from the
EHR within ten minutes is dropped. Signing in replaces the session id (no fixation).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from flask import Request
from werkzeug.wrappers import Response

from fhir_cml.state.smart import SessionRecord, SmartState
from fhir_cml.web.smart.errors import csrf_failed, session_expired, session_missing

SECURE_COOKIE: Final = "__Host-fhir-cml"
PLAIN_COOKIE: Final = "fhir-cml-session"
PENDING_LIFETIME: Final = timedelta(minutes=10)
PURGE_EVERY: Final = 300.0  # seconds between purges of expired sessions, per process
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")


def secure_origin(public_base_url: str) -> bool:
    """Whether browsers keep ``Secure`` cookies for this base: HTTPS, or HTTP on loopback."""
    parts = urlsplit(public_base_url)
    if parts.scheme == "https":
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle: timedelta
    absolute: timedelta
    secure: bool

    @property
    def cookie_name(self) -> str:
        return SECURE_COOKIE if self.secure else PLAIN_COOKIE


def key_of(session_id: str) -> str:
    """The stored key of a session id (its SHA-256): the database never holds the id itself."""
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


class Sessions:
    """Starts, finds, checks and ends sessions; ``clock`` gives the current UTC time."""

    def __init__(
        self, state: SmartState, policy: SessionPolicy, clock: Callable[[], datetime]
    ) -> None:
        self.state = state
        self.policy = policy
        self.clock = clock
        self._last_purge = float("-inf")
        self._lock = threading.Lock()

    def start(self, kind: str, **values: Any) -> tuple[str, SessionRecord]:
        """A new session (``pending``, ``active`` or ``demo``); returns the id for the cookie."""
        self._purge()
        now = self.clock()
        lifetime = PENDING_LIFETIME if kind == "pending" else self.policy.absolute
        session_id = secrets.token_urlsafe(32)
        record = SessionRecord(
            id=key_of(session_id),
            kind=kind,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + lifetime,
            **values,
        )
        self.state.add_session(record)
        return session_id, record

    def find(self, request: Request) -> SessionRecord | None:
        """The session the request's cookie names, if it exists (expired or not)."""
        raw = request.cookies.get(self.policy.cookie_name)
        if not raw or not _SESSION_ID.match(raw):
            return None
        return self.state.get_session(key_of(raw))

    def current(self, request: Request, kinds: tuple[str, ...] = ("active",)) -> SessionRecord:
        """The request's live session of one of ``kinds``, touched; SmartError 401 otherwise."""
        record = self.find(request)
        if record is None or record.kind not in kinds:
            raise session_missing()
        now = self.clock()
        why = self.expired(record, now)
        if why is not None:
            self.state.delete_session(record.id)
            raise session_expired(why)
        self.state.update_session(record.id, last_seen_at=now)
        return record

    def expired(self, record: SessionRecord, now: datetime) -> str | None:
        """Why the session is over, or None while it is live."""
        if now >= record.expires_at:
            if record.kind == "pending":
                return "the sign-in at the EHR took longer than ten minutes"
            hours = self.policy.absolute.total_seconds() / 3600
            return f"sessions last at most {hours:g} hours"
        if record.kind != "pending" and now - record.last_seen_at >= self.policy.idle:
            minutes = self.policy.idle.total_seconds() / 60
            return f"it was idle for more than {minutes:g} minutes"
        return None

    def end(self, record: SessionRecord) -> None:
        self.state.delete_session(record.id)

    def set_cookie(self, response: Response, session_id: str) -> None:
        response.set_cookie(
            self.policy.cookie_name,
            session_id,
            max_age=int(self.policy.absolute.total_seconds()),
            path="/",
            secure=self.policy.secure,
            httponly=True,
            samesite="Lax",
        )

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(
            self.policy.cookie_name,
            path="/",
            secure=self.policy.secure,
            httponly=True,
            samesite="Lax",
        )

    @staticmethod
    def check_csrf(record: SessionRecord, given: str | None) -> None:
        """SmartError 403 unless ``given`` is the session's CSRF token (constant-time compare)."""
        if not given or not hmac.compare_digest(given.encode(), record.csrf_token.encode()):
            raise csrf_failed()

    def _purge(self) -> None:
        with self._lock:
            tick = time.monotonic()
            if tick - self._last_purge < PURGE_EVERY:
                return
            self._last_purge = tick
        now = self.clock()
        self.state.purge(now, now - self.policy.idle)
