"""What the app refuses, each with a clear page and the right status: an EHR not on the
allow-list, a forged or replayed sign-in answer, a token exchange without the PKCE verifier, a
token for another patient, an expired session, a write without the CSRF token."""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from fhir_cml.state.smart import SessionRecord, SmartSession
from tests.web.conftest import PUBLIC
from tests.web.smart.conftest import (
    AS_OF,
    CLIENT_ID,
    Ehr,
    authorize,
    come_back,
    form_fields,
    home,
    launch_url,
    local,
    sign_in,
    smart,
)

pytestmark = pytest.mark.integration

EXAMPLE = "01-optimal-responder"


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def refused(response: TestResponse, status: int, *phrases: str) -> None:
    """An HTML error page with ``status`` that says each phrase."""
    body = html.unescape(text(response))
    assert response.status_code == status, body[-2000:]
    assert response.mimetype == "text/html"
    assert '<p class="error-message" role="alert">' in body
    for phrase in phrases:
        assert phrase in body, phrase
    assert response.headers["Cache-Control"] == "no-store"


class Recorder(ThreadingHTTPServer):
    """An HTTP server that only counts the requests it gets."""

    hits = 0


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        assert isinstance(self.server, Recorder)
        self.server.hits += 1
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stranger() -> Iterator[Recorder]:
    server = Recorder(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def started(browser: FlaskClient, ehr: Ehr, patient: str) -> str:
    """Launches and returns where the authorization server sends the browser back."""
    response = browser.get(launch_url(ehr.base, ehr.auth.launch(patient)))
    assert response.status_code == 302, text(response)
    return authorize(response.headers["Location"])


def page(browser: FlaskClient) -> TestResponse:
    return browser.get(home(browser))


# --- iss -----------------------------------------------------------------------------------------


def test_an_iss_not_on_the_allow_list_is_refused_before_anything_is_fetched(
    browser: FlaskClient, ehr: Ehr, stranger: Recorder
) -> None:
    iss = f"http://127.0.0.1:{stranger.server_address[1]}/fhir"
    response = browser.get(launch_url(iss, "some-launch"))
    refused(response, 403, "This EHR may not launch the app", iss, "Nothing was requested")
    assert stranger.hits == 0
    assert "Set-Cookie" not in response.headers


def test_an_allowed_iss_differs_from_a_lookalike(browser: FlaskClient, ehr: Ehr) -> None:
    for lookalike in (ehr.base + "x", ehr.base.replace("/fhir", "/fhir2"), "ftp://x/fhir"):
        refused(browser.get(launch_url(lookalike, "l")), 403, "not on the app's list")
    # A trailing slash names the same server.
    assert browser.get(launch_url(ehr.base + "/", ehr.auth.launch("p"))).status_code == 302


# --- state ---------------------------------------------------------------------------------------


def test_a_wrong_state_is_refused_and_the_right_one_still_works(
    browser: FlaskClient, ehr: Ehr
) -> None:
    patient = ehr.load(EXAMPLE)
    back = started(browser, ehr, patient)
    forged = back.replace("state=", "state=forged")
    refused(browser.get(local(forged)), 400, "does not carry the state")
    assert len(ehr.auth.token_requests) == 0  # no code was traded
    assert come_back(browser, back).status_code == 303
    assert page(browser).status_code == 200


def test_a_missing_state_is_refused(browser: FlaskClient, ehr: Ehr) -> None:
    patient = ehr.load(EXAMPLE)
    back = urlsplit(started(browser, ehr, patient))
    code = parse_qs(back.query)["code"][0]
    refused(browser.get(f"/smart/callback?code={code}"), 400, "does not carry the state")


def test_a_replayed_answer_is_refused(browser: FlaskClient, ehr: Ehr) -> None:
    patient = ehr.load(EXAMPLE)
    back = started(browser, ehr, patient)
    assert browser.get(local(back)).status_code == 303
    refused(browser.get(local(back)), 400, "already been used")
    assert len(ehr.auth.token_requests) == 1


def test_an_answer_in_another_browser_is_refused(
    smart_app: Flask, browser: FlaskClient, ehr: Ehr
) -> None:
    patient = ehr.load(EXAMPLE)
    back = started(browser, ehr, patient)
    other = smart_app.test_client()
    refused(other.get(local(back)), 400, "no sign-in in progress")
    assert len(ehr.auth.token_requests) == 0


def test_a_sign_in_abandoned_for_ten_minutes_is_refused(
    smart_app: Flask, browser: FlaskClient, ehr: Ehr
) -> None:
    patient = ehr.load(EXAMPLE)
    back = started(browser, ehr, patient)
    smart(smart_app).clock.offset = timedelta(minutes=11)
    refused(browser.get(local(back)), 401, "ten minutes")


# --- PKCE ----------------------------------------------------------------------------------------


def test_the_ehr_requires_pkce_s256(ehr: Ehr) -> None:
    """The test authorization server refuses an authorization request without S256."""
    client_id = "fhir-cml-app"
    ehr.auth.register(client_id, "https://cml.example.org/smart/callback")
    base = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": "https://cml.example.org/smart/callback",
        "scope": "launch/patient patient/Observation.rs",
        "state": "s",
        "aud": ehr.base,
    }
    ehr.auth.standalone_patient = "p"
    for extra in ({}, {"code_challenge": "a" * 43, "code_challenge_method": "plain"}):
        answer = requests.get(
            f"{ehr.auth.url}/authorize", params=base | extra, allow_redirects=False, timeout=30
        )
        assert answer.status_code == 302
        query = parse_qs(urlsplit(answer.headers["Location"]).query)
        assert query["error"] == ["invalid_request"]
        assert "code" not in query


@pytest.mark.parametrize(
    ("verifier", "says"),
    [(None, "Missing 'code_verifier'"), ("w" * 64, "Code challenge failed")],
)
def test_a_token_exchange_without_the_right_verifier_is_refused_by_the_ehr(
    smart_app: Flask, browser: FlaskClient, ehr: Ehr, verifier: str | None, says: str
) -> None:
    patient = ehr.load(EXAMPLE)
    back = started(browser, ehr, patient)
    state = smart(smart_app).state
    [pending] = [r for r in _sessions(smart_app) if r.kind == "pending"]
    state.update_session(pending.id, code_verifier=verifier)
    response = browser.get(local(back))
    refused(response, 403, "The EHR refused the sign-in", says)
    [sent] = ehr.auth.token_requests
    assert sent.get("code_verifier") == verifier
    assert page(browser).status_code == 401  # no session came of it


def test_an_authorization_error_from_the_ehr_is_shown(browser: FlaskClient, ehr: Ehr) -> None:
    response = browser.get(launch_url(ehr.base, "a-launch-the-ehr-never-made"))
    back = authorize(response.headers["Location"])
    refused(
        browser.get(local(back)),
        403,
        "The EHR did not authorize the app",
        "invalid_request",
        "launch",
    )


# --- the patient ---------------------------------------------------------------------------------


def test_a_token_for_another_patient_gets_a_clear_403(browser: FlaskClient, ehr: Ehr) -> None:
    patient = ehr.load(EXAMPLE)
    other = ehr.load("02-warning-6-months")
    ehr.auth.bind_tokens_to = other  # the EHR's token does not cover the launch's patient
    assert sign_in(browser, ehr, patient).status_code == 303
    response = page(browser)
    refused(
        response,
        403,
        "The EHR refused access to this patient",
        f"Patient/{patient}",
        "limited to Patient/" + other,
    )
    assert "Ima" not in text(response)
    assert "Wanda" not in text(response)


def test_an_unknown_patient_is_a_404(browser: FlaskClient, ehr: Ehr) -> None:
    assert sign_in(browser, ehr, "nobody").status_code == 303
    refused(page(browser), 404, "Patient/nobody is not known")


# --- sessions ------------------------------------------------------------------------------------


def test_no_session_is_a_401(browser: FlaskClient, ehr: Ehr) -> None:
    refused(page(browser), 401, "no session with the app")


def test_an_idle_session_expires(smart_app: Flask, browser: FlaskClient, ehr: Ehr) -> None:
    patient = ehr.load(EXAMPLE)
    sign_in(browser, ehr, patient)
    assert page(browser).status_code == 200
    smart(smart_app).clock.offset = timedelta(minutes=31)
    refused(page(browser), 401, "Session expired", "idle for more than 30 minutes")
    refused(page(browser), 401, "no session with the app")  # and it is gone


def test_a_session_ends_at_its_absolute_limit(ehr: Ehr, make_app: Callable[..., Flask]) -> None:
    ehr.auth.register(CLIENT_ID, f"{PUBLIC}/smart/callback")
    app = make_app(
        smart_issuers=ehr.base,
        smart_client_id=CLIENT_ID,
        smart_as_of=AS_OF,
        smart_session_idle_minutes=20,
        smart_session_max_hours=0.5,
    )
    app.config["PREFERRED_URL_SCHEME"] = "https"
    client = app.test_client()
    patient = ehr.load(EXAMPLE)
    sign_in(client, ehr, patient)
    smart(app).clock.offset = timedelta(minutes=15)
    assert page(client).status_code == 200
    smart(app).clock.offset = timedelta(minutes=30)
    refused(page(client), 401, "Session expired", "at most 0.5 hours")


def test_an_expired_access_token_is_refreshed(
    smart_app: Flask, browser: FlaskClient, ehr: Ehr
) -> None:
    ehr.auth.access_lifetime = 300
    patient = ehr.load(EXAMPLE)
    sign_in(browser, ehr, patient)
    smart(smart_app).clock.offset = timedelta(minutes=10)
    assert page(browser).status_code == 200
    grants = [r["grant_type"] for r in ehr.auth.token_requests]
    assert grants == ["authorization_code", "refresh_token"]
    # The new tokens are kept: the next view does not refresh again.
    assert page(browser).status_code == 200
    assert len(ehr.auth.token_requests) == 2


def test_without_a_refresh_token_an_expired_access_token_ends_the_session(
    smart_app: Flask, browser: FlaskClient, ehr: Ehr
) -> None:
    ehr.auth.access_lifetime = 300
    ehr.auth.issue_refresh_tokens = False
    patient = ehr.load(EXAMPLE)
    sign_in(browser, ehr, patient)
    smart(smart_app).clock.offset = timedelta(minutes=10)
    refused(page(browser), 401, "Session expired", "gave no refresh token")


def test_a_revoked_token_ends_the_session(browser: FlaskClient, ehr: Ehr) -> None:
    ehr.auth.issue_refresh_tokens = False
    patient = ehr.load(EXAMPLE)
    sign_in(browser, ehr, patient)
    for token in ehr.auth.tokens.values():
        token.revoked = True
    refused(page(browser), 401, "Session expired", "no longer accepts")


# --- writes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["accept", "dismiss"])
@pytest.mark.parametrize("token", [None, "", "not-the-token"])
def test_a_write_without_the_csrf_token_is_refused(
    browser: FlaskClient, ehr: Ehr, path: str, token: str | None
) -> None:
    patient = ehr.load(EXAMPLE)
    sign_in(browser, ehr, patient)
    fields = form_fields(text(page(browser)))
    fields["reason"] = "other"
    fields["comment"] = "forged"
    if token is None:
        del fields["csrf_token"]
    else:
        fields["csrf_token"] = token
    refused(browser.post(home(browser, path), data=fields), 403, "anti-forgery (CSRF) token")
    assert ehr.search(f"CarePlan?patient={patient}") == []
    assert smart(_app_of(browser)).state.decisions(ehr.base, f"Patient/{patient}") == []


def test_a_write_without_a_session_is_a_401(browser: FlaskClient, ehr: Ehr) -> None:
    refused(browser.post(home(browser, "accept"), data={"csrf_token": "x"}), 401, "No session")


def test_another_sessions_csrf_token_does_not_do(
    smart_app: Flask, browser: FlaskClient, ehr: Ehr
) -> None:
    patient = ehr.load(EXAMPLE)
    sign_in(browser, ehr, patient)
    mine = form_fields(text(page(browser)))
    other = smart_app.test_client()
    sign_in(other, ehr, patient)
    theirs = form_fields(text(page(other)))
    refused(
        browser.post(home(browser, "accept"), data=mine | {"csrf_token": theirs["csrf_token"]}),
        403,
        "CSRF",
    )
    assert ehr.search(f"CarePlan?patient={patient}") == []


def test_pages_carry_protective_headers(browser: FlaskClient, ehr: Ehr) -> None:
    patient = ehr.load(EXAMPLE)
    sign_in(browser, ehr, patient)
    response = page(browser)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "script-src" not in response.headers["Content-Security-Policy"]  # default 'none'


def _sessions(app: Flask) -> list[SessionRecord]:
    state = smart(app).state
    with state.store.session() as db:
        keys = list(db.scalars(select(SmartSession.id)))
    return [r for k in keys if (r := state.get_session(k)) is not None]


def _app_of(client: FlaskClient) -> Flask:
    app = client.application
    assert isinstance(app, Flask)
    return app
