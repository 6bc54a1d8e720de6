"""Server-side sessions, one per launch: the launch id in the page's URL names the session, the
browser's cookie binds it to this browser, the state store holds everything else.

Two patients opened in two tabs are two sessions with two URLs: each tab shows, and acts on, the
patient it was launched for, whatever the other tab does. Neither the URL nor the cookie alone
opens a session (a URL copied to another browser does not; a cookie without a URL names no
patient). A browser keeps at most ``MAX_LAUNCHES`` sessions; a new launch beyond that ends the
oldest.

The cookie is ``HttpOnly`` (no script reads it) and ``Secure`` with the ``__Host-`` prefix (no
``Domain``, path ``/``: a sibling host cannot plant or read it) whenever the app is served over
HTTPS or on loopback, where browsers allow secure cookies over plain HTTP. It is ``SameSite=Lax``
(sent on the EHR's redirect back to the app, not on cross-site form posts), or, when EHRs may
frame the app (``FHIR_CML_SMART_FRAME_ANCESTORS``), ``SameSite=None; Secure; Partitioned``: a
cookie a browser keeps inside another site's frame, in a jar of that site only (CHIPS). Forms
carry the session's CSRF token either way. A session ends after
``FHIR_CML_SMART_SESSION_IDLE_MINUTES`` without a request and, in any case,
``FHIR_CML_SMART_SESSION_MAX_HOURS`` after sign-in; a sign-in that does not come back from the
EHR within ten minutes is dropped. Signing in makes a new launch id (no fixation).
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
MAX_LAUNCHES: Final = 20  # sessions one browser keeps; a new launch ends the oldest beyond
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # a launch id or a cookie value


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
    framed: bool = False  # EHRs may frame the app: a cross-site (partitioned) cookie

    @property
    def cookie_name(self) -> str:
        return SECURE_COOKIE if self.secure else PLAIN_COOKIE

    @property
    def same_site(self) -> str:
        return "None" if self.framed else "Lax"


def key_of(token: str) -> str:
    """The stored key of a launch id or cookie (its SHA-256): the database holds neither."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def well_formed(token: str | None) -> bool:
    return token is not None and _TOKEN.match(token) is not None


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

    # --- the browser -------------------------------------------------------------------------

    def browser(self, request: Request) -> str | None:
        """The browser's cookie value, when it has a well-formed one."""
        raw = request.cookies.get(self.policy.cookie_name)
        return raw if well_formed(raw) else None

    def browser_or_new(self, request: Request) -> tuple[str, bool]:
        """The browser's cookie value, or a new one (then True: set it on the response)."""
        raw = self.browser(request)
        return (raw, False) if raw is not None else (secrets.token_urlsafe(32), True)

    # --- sessions ----------------------------------------------------------------------------

    def start(self, kind: str, browser: str, **values: Any) -> tuple[str, SessionRecord]:
        """A new session (``pending``, ``active`` or ``demo``) of the browser whose cookie is
        ``browser``; returns its launch id (for the URL) and the record."""
        self._purge()
        now = self.clock()
        lifetime = PENDING_LIFETIME if kind == "pending" else self.policy.absolute
        launch_id = secrets.token_urlsafe(32)
        record = SessionRecord(
            id=key_of(launch_id),
            browser=key_of(browser),
            kind=kind,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + lifetime,
            **values,
        )
        self.state.add_session(record)
        for old in self.state.browser_sessions(record.browser)[:-MAX_LAUNCHES]:
            self.state.delete_session(old.id)
        return launch_id, record

    def find(self, request: Request, launch_id: str | None) -> SessionRecord | None:
        """The session ``launch_id`` names, if it exists (expired or not) and belongs to the
        browser that sent the request."""
        browser = self.browser(request)
        if browser is None or not well_formed(launch_id):
            return None
        assert launch_id is not None
        record = self.state.get_session(key_of(launch_id))
        if record is None or not hmac.compare_digest(record.browser, key_of(browser)):
            return None
        return record

    def current(
        self, request: Request, launch_id: str | None, kinds: tuple[str, ...] = ("active",)
    ) -> SessionRecord:
        """The live session of one of ``kinds`` at ``launch_id``, touched; SmartError 401
        otherwise."""
        record = self.find(request, launch_id)
        if record is None or record.kind not in kinds:
            raise session_missing()
        return self.touch(record)

    def touch(self, record: SessionRecord) -> SessionRecord:
        """The session, its idle time restarted; SmartError 401 (and ended) once expired."""
        now = self.clock()
        why = self.expired(record, now)
        if why is not None:
            self.state.delete_session(record.id)
            raise session_expired(why, record.patient_name)
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

    # --- the cookie --------------------------------------------------------------------------

    def set_cookie(self, response: Response, browser: str) -> None:
        response.set_cookie(
            self.policy.cookie_name,
            browser,
            max_age=int(self.policy.absolute.total_seconds()),
            path="/",
            secure=self.policy.secure,
            httponly=True,
            samesite=self.policy.same_site,
            partitioned=self.policy.framed,
        )

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(
            self.policy.cookie_name,
            path="/",
            secure=self.policy.secure,
            httponly=True,
            samesite=self.policy.same_site,
            partitioned=self.policy.framed,
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
