"""One session per launch, with Flask's test client against the test EHR: two patients in two
tabs of one browser each keep their own page and forms; a form for one patient is never
applied to another; the signed-in user is named; who may decide; tokens renewed while the
clinician works (SMART v2 online_access); framing allowed only for listed EHR origins."""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.web.smart.conftest import (
    USER_NAME,
    Ehr,
    form_fields,
    home,
    launch_url,
    registered_app,
    sign_in,
    smart,
)

pytestmark = pytest.mark.integration


def text(response: TestResponse) -> str:
    return html.unescape(response.get_data(as_text=True))


def launched(browser: FlaskClient, ehr: Ehr, example: str) -> tuple[str, str]:
    """Launches an example patient in a new tab of ``browser``: (patient id, page address)."""
    patient = ehr.load(example)
    assert sign_in(browser, ehr, patient).status_code == 303
    return patient, home(browser)


def test_two_patients_in_two_tabs_keep_their_own_pages_and_forms(
    smart_app: Flask, browser: FlaskClient, ehr: Ehr
) -> None:
    a, tab_a = launched(browser, ehr, "03-failure-t315i")
    form_a = form_fields(text(browser.get(tab_a)))
    b, tab_b = launched(browser, ehr, "05-tfr-candidate")  # the same browser, another tab
    assert tab_a != tab_b
    # Reloading A's tab shows A, not B; each page names its patient.
    assert "<h1>Tom Threefifteen</h1>" in text(browser.get(tab_a))
    assert "<h1>Remy Mission</h1>" in text(browser.get(tab_b))
    # Accept in A's tab acts on A, after B was opened.
    done = browser.post(f"{tab_a}/accept", data=form_a)
    assert done.status_code == 303
    assert done.headers["Location"].endswith(tab_a)
    assert len(ehr.search(f"CarePlan?patient={a}")) == 1
    assert ehr.search(f"CarePlan?patient={b}") == []
    [decision] = smart(smart_app).state.decisions(ehr.base, f"Patient/{a}")
    assert decision.kind == "accepted"


def test_a_form_for_one_patient_is_refused_at_another_patients_address(
    browser: FlaskClient, ehr: Ehr
) -> None:
    a, tab_a = launched(browser, ehr, "03-failure-t315i")
    form_a = form_fields(text(browser.get(tab_a)))
    b, tab_b = launched(browser, ehr, "05-tfr-candidate")
    form_b = form_fields(text(browser.get(tab_b)))
    # A's form (with B's CSRF token, as a confused browser might send) at B's address.
    answer = browser.post(f"{tab_b}/accept", data=form_a | {"csrf_token": form_b["csrf_token"]})
    assert answer.status_code == 409
    says = text(answer)
    assert "Another patient is open here" in says
    assert f"Patient/{a}" in says
    assert "Remy Mission" in says  # the patient at this address, by name
    assert "Nothing was written." in says
    assert "Reload" not in says  # no hint that leads to acting on the wrong patient
    # A's form with A's token at B's address: the CSRF check refuses it, and reloading B's
    # address (the hint) shows B, the patient whose address it is.
    refused = browser.post(f"{tab_b}/accept", data=form_a)
    assert refused.status_code == 403
    assert "<h1>Remy Mission</h1>" in text(browser.get(tab_b))
    assert ehr.search(f"CarePlan?patient={a}") == []
    assert ehr.search(f"CarePlan?patient={b}") == []


def test_an_address_opened_in_another_browser_shows_nothing(
    smart_app: Flask, browser: FlaskClient, ehr: Ehr
) -> None:
    _, tab = launched(browser, ehr, "03-failure-t315i")
    other = smart_app.test_client()
    answer = other.get(tab)
    assert answer.status_code == 401
    assert "Tom" not in text(answer)


def test_ending_one_tab_leaves_the_other(browser: FlaskClient, ehr: Ehr) -> None:
    _, tab_a = launched(browser, ehr, "03-failure-t315i")
    csrf_a = form_fields(text(browser.get(tab_a)))["csrf_token"]
    _, tab_b = launched(browser, ehr, "05-tfr-candidate")
    assert browser.post(f"{tab_a}/logout", data={"csrf_token": csrf_a}).status_code == 200
    assert browser.get(tab_a).status_code == 401
    assert browser.get(tab_b).status_code == 200


def test_the_signed_in_user_is_named_even_from_a_relative_fhir_user(
    browser: FlaskClient, ehr: Ehr
) -> None:
    ehr.auth.relative_fhir_user = True  # SMART allows "Practitioner/dr-hema"
    _, tab = launched(browser, ehr, "01-optimal-responder")
    page = text(browser.get(tab))
    assert f"Signed in as Dr {USER_NAME}" in page
    assert 'id="accept"' in page


def test_without_a_readable_name_the_reference_is_said_to_be_one(
    browser: FlaskClient, ehr: Ehr
) -> None:
    ehr.auth.user = "Practitioner/unknown-doctor"  # no such resource on the FHIR server
    _, tab = launched(browser, ehr, "01-optimal-responder")
    assert "Signed in as Practitioner/unknown-doctor (the EHR gave no name)" in text(
        browser.get(tab)
    )


@pytest.mark.parametrize("user", ["Patient/cml-optimal", "RelatedPerson/carer"])
def test_a_patient_or_other_non_practitioner_may_view_but_not_decide(
    smart_app: Flask, browser: FlaskClient, ehr: Ehr, user: str
) -> None:
    ehr.auth.user = user
    patient, tab = launched(browser, ehr, "01-optimal-responder")
    page = text(browser.get(tab))
    assert "<h1>Ima Optimal</h1>" in page
    assert 'id="accept"' not in page
    assert 'id="dismiss"' not in page
    assert "not a practitioner" in page
    fields = form_fields(page)
    forged = {"csrf_token": fields["csrf_token"], "patient": f"Patient/{patient}"}
    for action in ("accept", "dismiss"):
        answer = browser.post(f"{tab}/{action}", data=forged | {"reason": "not-applicable"})
        assert answer.status_code == 403
        assert "Not a clinician's session" in text(answer)
    assert ehr.search(f"CarePlan?patient={patient}") == []
    assert smart(smart_app).state.decisions(ehr.base, f"Patient/{patient}") == []


# --- tokens that outlive a review ----------------------------------------------------------------


def test_short_lived_tokens_are_renewed_while_the_clinician_works(
    smart_app: Flask, browser: FlaskClient, ehr: Ehr
) -> None:
    ehr.auth.access_lifetime = 120  # two-minute access tokens
    patient, tab = launched(browser, ehr, "01-optimal-responder")
    [first] = ehr.auth.token_requests
    assert any("online_access" in t.scope.split() for t in ehr.auth.tokens.values())
    fields = form_fields(text(browser.get(tab)))
    clock = smart(smart_app).clock
    for minutes in (5, 10, 15, 20):  # a review: a view every five minutes
        clock.offset = timedelta(minutes=minutes)
        assert browser.get(tab).status_code == 200
    assert browser.post(f"{tab}/accept", data=fields).status_code == 303
    assert len(ehr.search(f"CarePlan?patient={patient}")) == 1
    grants = [r["grant_type"] for r in ehr.auth.token_requests]
    assert grants[0] == "authorization_code"
    assert grants.count("refresh_token") >= 4
    assert first["grant_type"] == "authorization_code"


def test_online_access_ends_with_the_users_ehr_session(
    smart_app: Flask, browser: FlaskClient, ehr: Ehr
) -> None:
    ehr.auth.access_lifetime = 120
    _, tab = launched(browser, ehr, "01-optimal-responder")
    assert browser.get(tab).status_code == 200
    ehr.auth.user_online = False  # signed out of the EHR
    smart(smart_app).clock.offset = timedelta(minutes=5)
    answer = browser.get(tab)
    assert answer.status_code == 401
    says = text(answer)
    assert "Session expired" in says
    assert "for Ima Optimal" in says
    assert "sign-in at the EHR may have ended" in says
    assert ".." not in says


def test_without_online_access_the_ehr_gives_no_refresh_token(
    ehr: Ehr, make_app: Callable[..., Flask]
) -> None:
    app = registered_app(ehr, make_app, smart_online_access=False)
    ehr.auth.access_lifetime = 120
    client = app.test_client()
    _, tab = launched(client, ehr, "01-optimal-responder")
    smart(app).clock.offset = timedelta(minutes=5)
    answer = client.get(tab)
    assert answer.status_code == 401
    assert "gave no refresh token" in text(answer)


# --- framing -------------------------------------------------------------------------------------

EHR_ORIGIN = "https://ehr.example.org"


def test_by_default_no_site_may_frame_the_app(browser: FlaskClient, ehr: Ehr) -> None:
    _, tab = launched(browser, ehr, "01-optimal-responder")
    answer = browser.get(tab)
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    # A launch inside a frame answers a page that opens the app in a new window.
    framed = browser.get(
        launch_url(ehr.base, ehr.auth.launch("p")),
        headers={"Sec-Fetch-Dest": "iframe", "Referer": f"{EHR_ORIGIN}/chart"},
    )
    assert framed.status_code == 200
    assert "frame-ancestors *" in framed.headers["Content-Security-Policy"]
    page = text(framed)
    assert 'target="_blank"' in page
    assert "Open the CML app in a new window" in page
    assert "/launch?iss=" in page
    assert "Set-Cookie" not in framed.headers


def test_listed_ehr_origins_may_frame_the_app_with_a_cross_site_cookie(
    ehr: Ehr, make_app: Callable[..., Flask]
) -> None:
    app = registered_app(
        ehr, make_app, smart_frame_ancestors=f"{EHR_ORIGIN}, https://ehr2.example.org:8443/"
    )
    client = app.test_client()
    started = client.get(
        launch_url(ehr.base, ehr.auth.launch(ehr.load("01-optimal-responder"))),
        headers={"Sec-Fetch-Dest": "iframe", "Referer": f"{EHR_ORIGIN}/chart?x=1"},
    )
    assert started.status_code == 302  # the sign-in goes on inside the frame
    cookie = started.headers["Set-Cookie"]
    assert "SameSite=None" in cookie
    assert "Secure" in cookie
    assert "Partitioned" in cookie
    csp = started.headers["Content-Security-Policy"]
    assert f"frame-ancestors {EHR_ORIGIN} https://ehr2.example.org:8443" in csp
    # A site not on the list gets the new-window page.
    elsewhere = client.get(
        launch_url(ehr.base, "l"),
        headers={"Sec-Fetch-Dest": "iframe", "Referer": "https://evil.example.com/"},
    )
    assert "Open the CML app in a new window" in text(elsewhere)


@pytest.mark.parametrize(
    "origin",
    ["ehr.example.org", "https://ehr.example.org/path", "https://*.example.org", "ftp://x"],
)
def test_frame_origins_are_checked(make_app: Callable[..., Flask], origin: str) -> None:
    from fhir_cml.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="FHIR_CML_SMART_FRAME_ANCESTORS"):
        make_app(smart_frame_ancestors=origin)


def test_framing_needs_https(make_app: Callable[..., Flask]) -> None:
    from fhir_cml.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="serve the app over HTTPS"):
        make_app(public_base_url="http://cml.example.org", smart_frame_ancestors=EHR_ORIGIN)
