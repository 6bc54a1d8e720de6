"""Server-side sessions, one per launch: the cookie's flags, what the database keeps, the launch
id and the cookie both needed, idle and absolute expiry, one-time OAuth state, the CSRF check;
and a property-based test of the whole state machine: however launches, views, forms, sign-outs
and the clock interleave across tabs and browsers, a page shows and a form acts on the patient
of its own launch, or on nothing."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask, Response, request
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
)
from sqlalchemy import select

from fhir_cml.state import StateStore
from fhir_cml.state.smart import SessionRecord, SmartSession, SmartState
from fhir_cml.web.smart.errors import SmartError
from fhir_cml.web.smart.sessions import (
    MAX_LAUNCHES,
    PLAIN_COOKIE,
    SECURE_COOKIE,
    SessionPolicy,
    Sessions,
    key_of,
    secure_origin,
)

T0 = datetime(2025, 6, 30, 8, 0, tzinfo=UTC)
IDLE = timedelta(minutes=30)
APP = Flask(__name__)


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


def sessions(
    store: StateStore, clock: Clock, secure: bool = True, framed: bool = False
) -> Sessions:
    policy = SessionPolicy(idle=IDLE, absolute=timedelta(hours=12), secure=secure, framed=framed)
    return Sessions(SmartState(store), policy, clock)


def cookie_of(response: Response) -> str:
    [header] = response.headers.getlist("Set-Cookie")
    return header


def with_cookie(browser: str | None) -> dict[str, str]:
    return {"Cookie": f"{SECURE_COOKIE}={browser}"} if browser else {}


BROWSER = "b" * 43
OTHER_BROWSER = "c" * 43


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
    response = Response()
    s.set_cookie(response, BROWSER)
    header = cookie_of(response)
    assert header.startswith(f"{SECURE_COOKIE}={BROWSER};")
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert {"secure", "httponly", "path", "max-age"} <= attributes
    assert "domain" not in attributes
    assert "partitioned" not in attributes
    assert "SameSite=Lax" in header
    assert "Max-Age=43200" in header


def test_when_ehrs_may_frame_the_app_the_cookie_is_cross_site_and_partitioned(
    store: StateStore, clock: Clock
) -> None:
    s = sessions(store, clock, framed=True)
    response = Response()
    s.set_cookie(response, BROWSER)
    header = cookie_of(response)
    assert header.startswith(f"{SECURE_COOKIE}={BROWSER};")
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert {"secure", "httponly", "partitioned"} <= attributes
    assert "SameSite=None" in header


def test_without_a_secure_origin_the_cookie_drops_the_host_prefix(
    store: StateStore, clock: Clock
) -> None:
    s = sessions(store, clock, secure=False)
    response = Response()
    s.set_cookie(response, BROWSER)
    header = cookie_of(response)
    assert header.startswith(f"{PLAIN_COOKIE}={BROWSER};")
    assert "Secure" not in header
    assert "HttpOnly" in header


def test_the_database_keeps_hashes_of_the_launch_id_and_the_cookie(
    store: StateStore, clock: Clock
) -> None:
    s = sessions(store, clock)
    launch_id, record = s.start("active", BROWSER, access_token="secret-access", patient="p1")
    assert record.id == hashlib.sha256(launch_id.encode()).hexdigest() == key_of(launch_id)
    assert record.browser == key_of(BROWSER)
    with store.session() as db:
        [row] = list(db.scalars(select(SmartSession)))
    assert {row.id, row.browser} == {key_of(launch_id), key_of(BROWSER)}
    assert launch_id not in (row.id, row.browser)
    assert len(launch_id) == 43


def test_a_session_needs_both_its_launch_id_and_its_browsers_cookie(
    store: StateStore, clock: Clock
) -> None:
    s = sessions(store, clock)
    launch_id, record = s.start("active", BROWSER, patient="p1")
    with APP.test_request_context(headers=with_cookie(BROWSER)):
        assert s.current(request, launch_id).id == record.id
    for cookie, launch in (
        (OTHER_BROWSER, launch_id),  # the address copied to another browser
        (None, launch_id),  # no cookie
        (BROWSER, "A" * 43),  # another (unknown) launch
        (BROWSER, "forged"),
        ("forged", launch_id),
    ):
        with APP.test_request_context(headers=with_cookie(cookie)):
            with pytest.raises(SmartError) as refused:
                s.current(request, launch)
            assert refused.value.status == 401
            assert refused.value.title == "No session"


def test_two_launches_in_one_browser_are_two_sessions(store: StateStore, clock: Clock) -> None:
    s = sessions(store, clock)
    a, first = s.start("active", BROWSER, patient="a")
    b, second = s.start("active", BROWSER, patient="b")
    with APP.test_request_context(headers=with_cookie(BROWSER)):
        assert s.current(request, a).patient == "a"
        assert s.current(request, b).patient == "b"
    assert first.csrf_token != second.csrf_token


def test_a_browser_keeps_its_latest_launches(store: StateStore, clock: Clock) -> None:
    s = sessions(store, clock)
    launches = []
    for n in range(MAX_LAUNCHES + 2):
        clock.now = T0 + timedelta(seconds=n)
        launches.append(s.start("active", BROWSER, patient=f"p{n}")[0])
    with APP.test_request_context(headers=with_cookie(BROWSER)):
        for gone in launches[:2]:
            with pytest.raises(SmartError):
                s.current(request, gone)
        assert s.current(request, launches[-1]).patient == f"p{MAX_LAUNCHES + 1}"
    assert len(s.state.browser_sessions(key_of(BROWSER))) == MAX_LAUNCHES


def test_an_idle_session_expires_and_is_deleted(store: StateStore, clock: Clock) -> None:
    s = sessions(store, clock)
    launch_id, record = s.start("active", BROWSER)
    s.state.update_session(record.id, patient_name="Doris History")
    headers = with_cookie(BROWSER)
    clock.now = T0 + timedelta(minutes=29)
    with APP.test_request_context(headers=headers):
        s.current(request, launch_id)  # touched: the idle time starts again
    clock.now = T0 + timedelta(minutes=58)
    with APP.test_request_context(headers=headers):
        s.current(request, launch_id)
    clock.now = T0 + timedelta(minutes=58 + 30)
    with APP.test_request_context(headers=headers), pytest.raises(SmartError) as expired:
        s.current(request, launch_id)
    assert expired.value.status == 401
    assert "idle for more than 30 minutes" in expired.value.message
    assert "for Doris History" in expired.value.message  # the page names its patient
    assert expired.value.message.count("..") == 0
    assert s.state.get_session(record.id) is None


def test_a_session_ends_after_its_absolute_limit_however_busy(
    store: StateStore, clock: Clock
) -> None:
    s = sessions(store, clock)
    launch_id, _ = s.start("active", BROWSER)
    for minutes in range(20, 12 * 60, 20):
        clock.now = T0 + timedelta(minutes=minutes)
        with APP.test_request_context(headers=with_cookie(BROWSER)):
            s.current(request, launch_id)
    clock.now = T0 + timedelta(hours=12)
    with (
        APP.test_request_context(headers=with_cookie(BROWSER)),
        pytest.raises(SmartError) as expired,
    ):
        s.current(request, launch_id)
    assert "at most 12 hours" in expired.value.message


def test_a_pending_sign_in_lasts_ten_minutes(store: StateStore, clock: Clock) -> None:
    s = sessions(store, clock)
    _, record = s.start("pending", BROWSER, state="abc")
    assert s.expired(record, T0 + timedelta(minutes=9)) is None
    assert "ten minutes" in (s.expired(record, T0 + timedelta(minutes=10)) or "")


def test_purge_removes_expired_and_idle_sessions_only(store: StateStore, clock: Clock) -> None:
    s = sessions(store, clock)
    _, live = s.start("active", BROWSER)
    _, pending = s.start("pending", BROWSER, state="x")
    clock.now = T0 + timedelta(minutes=40)
    _, fresh = s.start("demo", OTHER_BROWSER)
    state = s.state
    removed = state.purge(clock.now, clock.now - IDLE)
    assert removed == 2  # the idle active session and the pending sign-in past ten minutes
    assert state.get_session(live.id) is None
    assert state.get_session(pending.id) is None
    assert state.get_session(fresh.id) is not None


def test_the_oauth_state_is_taken_once_by_the_browser_that_started_it(
    store: StateStore, clock: Clock
) -> None:
    s = sessions(store, clock)
    _, first = s.start("pending", BROWSER, state="first-state")
    _, second = s.start("pending", BROWSER, state="second-state")  # a second tab's sign-in
    assert s.state.take_pending(key_of(BROWSER), "another-state") is None
    assert s.state.take_pending(key_of(OTHER_BROWSER), "second-state") is None
    taken = s.state.take_pending(key_of(BROWSER), "second-state")
    assert taken is not None
    assert taken.id == second.id
    assert taken.state is None
    assert s.state.take_pending(key_of(BROWSER), "second-state") is None
    again = s.state.take_pending(key_of(BROWSER), "first-state")
    assert again is not None
    assert again.id == first.id


def test_the_csrf_token_must_be_the_sessions(store: StateStore, clock: Clock) -> None:
    s = sessions(store, clock)
    _, mine = s.start("active", BROWSER)
    _, other = s.start("active", BROWSER)
    Sessions.check_csrf(mine, mine.csrf_token)
    for given in (None, "", other.csrf_token, mine.csrf_token + "x"):
        with pytest.raises(SmartError) as refused:
            Sessions.check_csrf(mine, given)
        assert refused.value.status == 403


def test_update_names_only_known_fields(store: StateStore, clock: Clock) -> None:
    s = sessions(store, clock)
    _, record = s.start("active", BROWSER)
    assert s.state.update_session(record.id, patient="p2")
    assert not s.state.update_session("0" * 64, patient="p2")
    with pytest.raises(ValueError, match="no such session fields"):
        s.state.update_session(record.id, password="x")


# --- the state machine ---------------------------------------------------------------------------


@dataclass
class Launch:
    """A launch as the model sees it: whose browser, which patient, its last use."""

    launch_id: str
    browser: str
    patient: str
    csrf_token: str
    last_seen: datetime
    deleted: bool = False  # signed out, met expired, or pushed out by newer launches


class LaunchSessions(RuleBasedStateMachine):
    """Tabs in two browsers launch patients, view their pages, post forms (with their own CSRF
    token or another tab's), sign out, and wait; the model says what each must give."""

    launches = Bundle("launches")

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.TemporaryDirectory()
        self.store = StateStore(str(Path(self.directory.name) / "state.sqlite3"))
        self.store.create_all()
        self.clock = Clock()
        self.sessions = sessions(self.store, self.clock)
        self.model: list[Launch] = []

    def teardown(self) -> None:
        self.store.close()
        self.directory.cleanup()

    def live(self, launch: Launch) -> bool:
        return not launch.deleted and self.clock.now - launch.last_seen < IDLE

    @rule(
        target=launches,
        browser=st.sampled_from([BROWSER, OTHER_BROWSER]),
        patient=st.sampled_from(["a", "b", "c"]),
    )
    def launch(self, browser: str, patient: str) -> Launch:
        # The sign-in: a pending session taken back by its state, then the launch's session.
        _, pending = self.sessions.start("pending", browser, state=f"s-{len(self.model)}")
        taken = self.sessions.state.take_pending(key_of(browser), f"s-{len(self.model)}")
        assert taken is not None
        assert taken.id == pending.id
        self.sessions.end(taken)
        launch_id, record = self.sessions.start("active", browser, patient=patient)
        found = Launch(launch_id, browser, patient, record.csrf_token, self.clock.now)
        self.model.append(found)
        stored = [m for m in self.model if m.browser == browser and not m.deleted]
        for old in stored[:-MAX_LAUNCHES]:
            old.deleted = True
        return found

    @rule(launch=launches, browser=st.sampled_from([BROWSER, OTHER_BROWSER]))
    def view(self, launch: Launch, browser: str) -> None:
        expected = self.live(launch) and browser == launch.browser
        record = self._current(launch.launch_id, browser)
        if expected:
            assert record is not None
            assert record.patient == launch.patient  # never another tab's patient
            launch.last_seen = self.clock.now
        else:
            assert record is None
            if browser == launch.browser:
                launch.deleted = True  # an expired session is deleted when met

    @rule(target_launch=launches, form_of=launches)
    def post(self, target_launch: Launch, form_of: Launch) -> None:
        """A form of one tab posted to the address of (maybe) another."""
        record = self._current(target_launch.launch_id, target_launch.browser)
        if record is None:
            assert not self.live(target_launch)
            target_launch.deleted = True
            return
        target_launch.last_seen = self.clock.now
        assert record.patient == target_launch.patient
        try:
            Sessions.check_csrf(record, form_of.csrf_token)
        except SmartError:
            assert form_of.launch_id != target_launch.launch_id
        else:
            assert form_of.launch_id == target_launch.launch_id

    @rule(launch=consumes(launches))
    def sign_out(self, launch: Launch) -> None:
        found = self.sessions.state.get_session(key_of(launch.launch_id))
        if found is not None:
            self.sessions.end(found)
        launch.deleted = True

    @rule(minutes=st.integers(min_value=1, max_value=45))
    def wait(self, minutes: int) -> None:
        self.clock.now += timedelta(minutes=minutes)

    @invariant()
    def a_browser_holds_only_its_own_launches(self) -> None:
        for browser in (BROWSER, OTHER_BROWSER):
            held = self.sessions.state.browser_sessions(key_of(browser))
            assert len(held) <= MAX_LAUNCHES
            assert all(r.browser == key_of(browser) for r in held)
            assert all(r.kind == "active" for r in held)

    def _current(self, launch_id: str, browser: str) -> SessionRecord | None:
        with APP.test_request_context(headers=with_cookie(browser)):
            try:
                return self.sessions.current(request, launch_id)
            except SmartError as refused:
                status = refused.status
        assert status == 401
        return None


LaunchSessions.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_launch_sessions = LaunchSessions.TestCase
