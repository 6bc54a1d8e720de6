"""What the app says when it refuses: sentences with one full stop, and a hint that fits the
cause (a setting only the administrator can change is not fixed by opening the app again)."""

from __future__ import annotations

import html
import re

import pytest
from flask.testing import FlaskClient

from fhir_cml.errors import FhirHttpError
from fhir_cml.web.smart import blueprint
from fhir_cml.web.smart.blueprint import error_page
from fhir_cml.web.smart.errors import (
    RELAUNCH,
    csrf_failed,
    other_patient,
    sentence,
    session_expired,
    session_missing,
)


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("The EHR answered invalid_grant.",), "The EHR answered invalid_grant."),
        (("The EHR answered invalid_grant",), "The EHR answered invalid_grant."),
        (("It failed: the server said no..",), "It failed: the server said no."),
        (("Why?",), "Why?"),
        (("First part.", "second part"), "First part. second part."),
    ],
)
def test_a_sentence_ends_in_one_full_stop(parts: tuple[str, ...], expected: str) -> None:
    assert sentence(*parts) == expected


def test_refusals_are_sentences_without_doubled_punctuation() -> None:
    for err in (
        session_missing(),
        session_expired("it was idle for more than 30 minutes."),
        session_expired("sessions last at most 12 hours", "Ima Optimal"),
        csrf_failed(),
        other_patient("Patient/a", "Remy Mission"),
    ):
        for text in (err.message, err.hint or ""):
            assert ".." not in text, text
            assert not re.search(r"\s[.,]", text), text
        assert err.message.endswith((".", "?", "!"))


def test_the_hint_fits_the_cause(client: FlaskClient) -> None:
    # Not configured: only the administrator can change that.
    answer = client.get("/launch?iss=https://ehr.example.org/fhir&launch=x")
    body = html.unescape(answer.get_data(as_text=True))
    assert answer.status_code == 404
    assert "Ask the administrator" in body
    assert RELAUNCH not in body
    # A form that failed its check: reloading the same address helps (it shows the same patient).
    assert "Reload this page (it shows the same patient)" in (csrf_failed().hint or "")
    # An ended session: opening the app again from the chart helps.
    assert session_expired("x").hint == RELAUNCH


def test_an_upstream_message_with_its_own_full_stop_is_not_doubled(client: FlaskClient) -> None:
    app = client.application
    err = FhirHttpError("GET Patient/x: HTTP 500 from the EHR.", status=500)
    with app.test_request_context():
        response = blueprint._upstream(err)
    body = html.unescape(response.get_data(as_text=True))
    assert "HTTP 500 from the EHR." in body
    assert ".." not in body.replace("...", "")
    with app.test_request_context():
        page = error_page(400, "Title", sentence("Said twice."))
    assert "Said twice." in html.unescape(page.get_data(as_text=True))
