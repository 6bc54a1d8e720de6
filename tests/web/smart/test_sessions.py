"""Server-side sessions: the cookie's flags, what the database keeps, idle and absolute expiry,
one-time OAuth state, the CSRF check."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask, Response, request
from sqlalchemy import select

from fhir_cml.state import StateStore
from fhir_cml.state.smart import SmartSession, SmartState
from fhir_cml.web.smart.errors import SmartError
from fhir_cml.web.smart.sessions import (
    PLAIN_COOKIE,
    SECURE_COOKIE,
    SessionPolicy,
    Sessions,
    key_of,
    secure_origin,
)

T0 = datetime(2025, 6, 30, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    store = StateStore(str(tmp_path / "state.sqlite3"))
    store.create_all()
    yield store
    store.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def sessions(store: StateStore, clock: Clock, secure: bool = True) -> Sessions:
    policy = SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12), secure=secure)
    return Sessions(SmartState(store), policy, clock)


def cookie_of(response: Response) -> str:
    [header] = response.headers.getlist("Set-Cookie")
    return header


@pytest.mark.parametrize(
    ("base", "secure"),
    [
        ("https://cml.example.org", True),
        ("http://127.0.0.1:8000", True),
        ("http://localhost:8000", True),
        ("http://[::1]:8000", True),
        ("http://cml.example.org", False),
        ("http://10.0.0.5:8000", False),
    ],
)
def test_secure_cookies_where_browsers_keep_them(base: str, secure: bool) -> None:
    assert secure_origin(base) is secure


def test_the_cookie_is_host_only_secure_httponly_and_lax(store: StateStore, clock: Clock) -> None:
    s = sessions(store, clock)
    session_id, _ = s.start("demo")
    response = Response()
    s.set_cookie(response, session_id)
    header = cookie_of(response)
    assert header.startswith(f"{SECURE_COOKIE}={session_id};")
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert {"secure", "httponly", "path", "max-age"} <= attributes
    assert "domain" not in attributes
    assert "SameSite=Lax" in header
    assert "Path=/;" in header or header.endswith("Path=/")
    assert "Max-Age=43200" in header


def test_without_a_secure_origin_the_cookie_drops_the_host_prefix(
    store: StateStore, clock: Clock
) -> None:
    s = sessions(store, clock, secure=False)
    session_id, _ = s.start("demo")
    response = Response()
    s.set_cookie(response, session_id)
    header = cookie_of(response)
    assert header.startswith(f"{PLAIN_COOKIE}={session_id};")
    assert "Secure" not in header
    assert "HttpOnly" in header


def test_the_database_keeps_a_hash_of_the_id_and_the_cookie_holds_nothing_else(
    store: StateStore, clock: Clock
) -> None:
    s = sessions(store, clock)
    session_id, record = s.start("active", access_token="secret-access", patient="p1")
    assert record.id == hashlib.sha256(session_id.encode()).hexdigest() == key_of(session_id)
    with store.session() as db:
        keys = list(db.scalars(select(SmartSession.id)))
    assert keys == [record.id]
    assert session_id not in keys
    assert "secret-access" not in session_id
    assert len(session_id) == 43


def test_a_session_is_found_by_its_cookie_only(store: StateStore, clock: Clock) -> None:
    s = sessions(store, clock)
    session_id, record = s.start("active")
    app = Flask(__name__)
    with app.test_request_context(headers={"Cookie": f"{SECURE_COOKIE}={session_id}"}):
        assert s.current(request).id == record.id
    for cookie in (f"{SECURE_COOKIE}=forged", f"{SECURE_COOKIE}={'A' * 43}", ""):
        with app.test_request_context(headers={"Cookie": cookie}):
            with pytest.raises(SmartError) as refused:
                s.current(request)
            assert refused.value.status == 401
            assert refused.value.title == "No session"


def test_an_idle_session_expires_and_is_deleted(store: StateStore, clock: Clock) -> None:
    s = sessions(store, clock)
    session_id, record = s.start("active")
    app = Flask(__name__)
    headers = {"Cookie": f"{SECURE_COOKIE}={session_id}"}
    clock.now = T0 + timedelta(minutes=29)
    with app.test_request_context(headers=headers):
        s.current(request)  # touched: the idle time starts again
    clock.now = T0 + timedelta(minutes=58)
    with app.test_request_context(headers=headers):
        s.current(request)
    clock.now = T0 + timedelta(minutes=58 + 30)
    with app.test_request_context(headers=headers), pytest.raises(SmartError) as expired:
        s.current(request)
    assert expired.value.status == 401
    assert "idle for more than 30 minutes" in expired.value.message
    assert s.state.get_session(record.id) is None


def test_a_session_ends_after_its_absolute_limit_however_busy(
    store: StateStore, clock: Clock
) -> None:
    s = sessions(store, clock)
    session_id, _ = s.start("active")
    app = Flask(__name__)
    headers = {"Cookie": f"{SECURE_COOKIE}={session_id}"}
    for minutes in range(20, 12 * 60, 20):
        clock.now = T0 + timedelta(minutes=minutes)
        with app.test_request_context(headers=headers):
            s.current(request)
    clock.now = T0 + timedelta(hours=12)
    with app.test_request_context(headers=headers), pytest.raises(SmartError) as expired:
        s.current(request)
    assert "at most 12 hours" in expired.value.message


def test_a_pending_sign_in_lasts_ten_minutes(store: StateStore, clock: Clock) -> None:
    s = sessions(store, clock)
    _, record = s.start("pending", state="abc")
    assert s.expired(record, T0 + timedelta(minutes=9)) is None
    assert "ten minutes" in (s.expired(record, T0 + timedelta(minutes=10)) or "")


def test_purge_removes_expired_and_idle_sessions_only(store: StateStore, clock: Clock) -> None:
    s = sessions(store, clock)
    _, live = s.start("active")
    _, pending = s.start("pending", state="x")
    clock.now = T0 + timedelta(minutes=40)
    _, fresh = s.start("demo")
    state = s.state
    removed = state.purge(clock.now, clock.now - timedelta(minutes=30))
    assert removed == 2  # the idle active session and the pending sign-in past ten minutes
    assert state.get_session(live.id) is None
    assert state.get_session(pending.id) is None
    assert state.get_session(fresh.id) is not None


def test_the_oauth_state_is_used_once(store: StateStore, clock: Clock) -> None:
    s = sessions(store, clock)
    _, record = s.start("pending", state="the-state")
    assert not s.state.consume_state(record.id, "another-state")
    assert s.state.consume_state(record.id, "the-state")
    assert not s.state.consume_state(record.id, "the-state")


def test_the_csrf_token_must_be_the_sessions(store: StateStore, clock: Clock) -> None:
    s = sessions(store, clock)
    _, mine = s.start("active")
    _, other = s.start("active")
    Sessions.check_csrf(mine, mine.csrf_token)
    for given in (None, "", other.csrf_token, mine.csrf_token + "x"):
        with pytest.raises(SmartError) as refused:
            Sessions.check_csrf(mine, given)
        assert refused.value.status == 403


def test_update_names_only_known_fields(store: StateStore, clock: Clock) -> None:
    s = sessions(store, clock)
    _, record = s.start("active")
    assert s.state.update_session(record.id, patient="p2")
    assert not s.state.update_session("0" * 64, patient="p2")
    with pytest.raises(ValueError, match="no such session fields"):
        s.state.update_session(record.id, password="x")
