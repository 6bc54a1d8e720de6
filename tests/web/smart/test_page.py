"""The page after a launch, and what Accept and Dismiss do, with Flask's test client against the
test EHR (authorization server and FHIR server)."""

from __future__ import annotations

import copy
import html
import json
import re
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from fhir_cml.app import WriteOutcome
from fhir_cml.ehr.client import BearerToken, FhirClient
from fhir_cml.ehr.fetch import fetch_patient
from fhir_cml.fhir.outbound.care_plan import proposals_of, recommendation_code
from fhir_cml.web.smart.oauth import DEFAULT_SCOPES
from tests.support.fhir_server import FhirTestServer
from tests.web.conftest import PUBLIC
from tests.web.smart.conftest import (
    AS_OF,
    CLIENT_ID,
    EXAMPLES,
    Ehr,
    authorize,
    come_back,
    form_fields,
    home,
    launch_url,
    sign_in,
    smart,
)

pytestmark = pytest.mark.integration


def text(response: TestResponse) -> str:
    return html.unescape(response.get_data(as_text=True))


def flash(response: TestResponse) -> str:
    found = re.search(r'<section class="flash (flash-\w+)".*?</section>', text(response), re.S)
    assert found is not None, "no result shown"
    return found.group(0)


def opened(browser: FlaskClient, ehr: Ehr, example: str) -> tuple[str, TestResponse]:
    patient = ehr.load(example)
    assert sign_in(browser, ehr, patient).status_code == 303
    response = browser.get(home(browser))
    assert response.status_code == 200, text(response)[-1500:]
    return patient, response


def test_the_page_answers_how_the_patient_responds(browser: FlaskClient, ehr: Ehr) -> None:
    _, response = opened(browser, ehr, "03-failure-t315i")
    body = text(response)
    assert '<html lang="en">' in body
    assert "<script" not in body
    assert "<h1>Tom Threefifteen</h1>" in body
    assert f"Reading as of <strong>{AS_OF}</strong>" in body
    assert body.count("Suggestions for a clinician to review; not orders.") >= 2
    assert "Signed in as Dr Helena Hema" in body  # a name, not a reference
    # The reading: depth, the ELN category and why, the next PCR.
    row = re.search(r"<dt>ELN 2020 category</dt>.*?</dd>", body, re.S)
    assert row is not None
    assert "failure (12 months)" in row.group(0)
    assert "Rule:" in row.group(0)
    assert "Source: Hochhaus" in row.group(0)
    # The suggestion to switch, with the mutation and the rule it rests on.
    switch = re.search(
        r'<li class="suggestion" data-code="switch-tki">.*?</li>\s*</ul>', body, re.S
    )
    assert switch is not None
    assert "T315I" in switch.group(0)
    assert "kinase-domain mutation T315I on 2025-06-02" in switch.group(0)
    assert "escalate-dose" not in body.split('id="suggestions-heading"')[1].split("<h3>")[0]
    # The chart and its table.
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in body
    assert '<title id="chart-title">' in body
    # Two layouts (wide and narrow) of one chart, each with the baseline, 3, 6 and 11.5 months.
    assert body.count('<g class="result detected"') == 2 * 4
    assert '<table class="results-table">' in body
    # The forms carry the CSRF token and the fingerprint of what is shown.
    fields = form_fields(body)
    assert set(fields) == {"csrf_token", "patient", "fingerprint"}
    assert fields["patient"].startswith("Patient/")
    assert len(fields["fingerprint"]) == 64


def test_accept_writes_once_and_says_what_happened(
    smart_app: Flask, browser: FlaskClient, ehr: Ehr
) -> None:
    patient, response = opened(browser, ehr, "05-tfr-candidate")
    fields = form_fields(text(response))
    first = browser.post(home(browser, "accept"), data=fields)
    assert first.status_code == 303
    assert first.headers["Location"].endswith(home(browser))
    shown = flash(browser.get(home(browser)))
    assert "flash-accepted" in shown
    [plan] = ehr.search(f"CarePlan?patient={patient}")
    [risk] = ehr.search(f"RiskAssessment?patient={patient}")
    assert f"Created CarePlan/{plan['id']}." in shown
    assert f"Created RiskAssessment/{risk['id']}." in shown
    assert "Created Provenance/" in shown
    assert {recommendation_code(a) for a in plan["activity"]} >= {
        "discuss-tfr",
        "continue-therapy",
    }
    # The result is shown once, then the page is the page.
    assert 'class="flash' not in text(browser.get(home(browser)))

    again = browser.post(home(browser, "accept"), data=fields)
    assert again.status_code == 303
    shown = flash(browser.get(home(browser)))
    assert "flash-unchanged" in shown
    assert f"CarePlan/{plan['id']}" in shown
    assert len(ehr.search(f"CarePlan?patient={patient}")) == 1
    assert len(ehr.search(f"RiskAssessment?patient={patient}")) == 1
    decisions = smart(smart_app).state.decisions(ehr.base, f"Patient/{patient}")
    assert [d.kind for d in decisions] == ["accepted", "accepted"]
    assert decisions[0].result is not None
    assert decisions[0].result["created"] == decisions[0].result["updated"] == []
    assert decisions[0].result["accepted"]["action"] == "unchanged"  # already in force
    assert decisions[1].result is not None
    assert decisions[1].result["action"] == "create"
    assert decisions[0].user is not None
    assert decisions[0].user.endswith("Practitioner/dr-hema")


def test_a_changed_reading_is_not_written_until_seen(browser: FlaskClient, ehr: Ehr) -> None:
    patient, response = opened(browser, ehr, "01-optimal-responder")
    stale = form_fields(text(response))
    relapse(ehr.fhir, "01-optimal-responder", "cml-optimal-pcr-2025-06-16", 0.35)
    refused = browser.post(home(browser, "accept"), data=stale)
    assert refused.status_code == 303
    assert "the reading changed" in flash(browser.get(home(browser)))
    assert ehr.search(f"CarePlan?patient={patient}") == []


def test_a_new_reading_supersedes_the_accepted_one(browser: FlaskClient, ehr: Ehr) -> None:
    patient, response = opened(browser, ehr, "01-optimal-responder")
    browser.post(home(browser, "accept"), data=form_fields(text(response)))
    [old] = ehr.search(f"CarePlan?patient={patient}")
    relapse(ehr.fhir, "01-optimal-responder", "cml-optimal-pcr-2025-06-16", 0.35)
    page = browser.get(home(browser))
    assert "Loss of MMR" in text(page)
    browser.post(home(browser, "accept"), data=form_fields(text(page)))
    shown = flash(browser.get(home(browser)))
    assert f"Superseded (withdrawn): CarePlan/{old['id']}." in shown
    plans = {p["id"]: p for p in ehr.search(f"CarePlan?patient={patient}")}
    assert plans[old["id"]]["status"] == "revoked"
    [new] = [p for p in plans.values() if p["id"] != old["id"]]
    assert new["status"] == "active"  # the accepted proposal, in force
    assert new["replaces"] == [{"reference": f"CarePlan/{old['id']}"}]
    # The requests follow their suggestions: the new ones in force, the old ones withdrawn.
    for plan, statuses in ((new, {"active"}), (plans[old["id"]], {"revoked", "cancelled"})):
        proposed = proposals_of(plan)
        assert proposed, "a loss of MMR proposes tests"
        for ref in proposed:
            assert ehr.search(ref.replace("/", "?_id="))[0]["status"] in statuses, ref
            assert ref in shown  # the flash names it


def test_dismiss_records_why(smart_app: Flask, browser: FlaskClient, ehr: Ehr) -> None:
    patient, response = opened(browser, ehr, "07-dose-reduction-candidate")
    fields = form_fields(text(response))
    done = browser.post(
        home(browser, "dismiss"),
        data=fields | {"reason": "patient-preference", "comment": "Prefers to stay at 400 mg."},
    )
    assert done.status_code == 303
    page = browser.get(home(browser))
    shown = flash(page)
    assert "Dismissal recorded" in shown
    assert "Patient's preference. Prefers to stay at 400 mg." in shown
    assert "This proposal was dismissed" in text(page)
    [decision] = smart(smart_app).state.decisions(ehr.base, f"Patient/{patient}")
    assert decision.kind == "dismissed"
    assert decision.reason == "patient-preference"
    assert decision.comment == "Prefers to stay at 400 mg."
    assert "consider-dose-reduction" in decision.recommendations
    assert decision.fingerprint == fields["fingerprint"]
    assert ehr.search(f"CarePlan?patient={patient}") == []  # nothing written to the EHR


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ({}, "Choose one of the listed reasons"),
        ({"reason": "because"}, "Choose one of the listed reasons"),
        ({"reason": "other"}, "say why in the text box"),
        ({"reason": "other", "comment": "   "}, "say why in the text box"),
        ({"reason": "not-applicable", "comment": "x" * 1001}, "longer than 1000 characters"),
    ],
)
def test_a_dismissal_needs_a_reason(
    smart_app: Flask, browser: FlaskClient, ehr: Ehr, form: dict[str, str], says: str
) -> None:
    patient, response = opened(browser, ehr, "07-dose-reduction-candidate")
    refused = browser.post(home(browser, "dismiss"), data=form_fields(text(response)) | form)
    assert refused.status_code == 400
    assert says in text(refused)
    assert smart(smart_app).state.decisions(ehr.base, f"Patient/{patient}") == []


def test_the_standalone_launch_asks_the_ehr_to_pick_a_patient(
    browser: FlaskClient, ehr: Ehr
) -> None:
    patient = ehr.load("10-overdue-pcr")
    ehr.auth.standalone_patient = patient
    started = browser.get(launch_url(ehr.base))
    assert started.status_code == 302
    query = parse_qs(urlsplit(started.headers["Location"]).query)
    scopes = query["scope"][0].split()
    assert scopes[0] == "launch/patient"
    assert "launch" not in scopes
    assert "launch" not in query
    assert query["aud"] == [ehr.base]
    assert query["code_challenge_method"] == ["S256"]
    assert come_back(browser, authorize(started.headers["Location"])).status_code == 303
    page = text(browser.get(home(browser)))
    assert "<h1>Otto Overdue</h1>" in page
    assert "OVERDUE since 2024-12-16" in page


def test_the_ehr_launch_asks_for_the_scopes_the_app_needs(browser: FlaskClient, ehr: Ehr) -> None:
    started = browser.get(launch_url(ehr.base, ehr.auth.launch("p")))
    query = parse_qs(urlsplit(started.headers["Location"]).query)
    scopes = query["scope"][0].split()
    assert scopes == ["launch", *DEFAULT_SCOPES, "online_access"]
    for needed in (
        "openid",
        "fhirUser",
        "patient/Observation.rs",
        "patient/MedicationStatement.rs",
        "patient/Condition.rs",
        "patient/CarePlan.cus",
        "patient/RiskAssessment.cus",
        "patient/Provenance.cu",
    ):
        assert needed in scopes
    assert query["redirect_uri"] == [f"{PUBLIC}/smart/callback"]
    assert query["client_id"] == [CLIENT_ID]
    assert len(query["state"][0]) >= 43
    assert len(query["code_challenge"][0]) == 43


def test_the_app_reads_what_it_asks_for(ehr: Ehr) -> None:
    """The scopes cover every resource type the app's fetch reads."""
    patient = ehr.load("09-cyp3a4-inhibitor")
    seen: list[str] = []
    client = FhirClient(ehr.base)
    client.auth = BearerToken(ehr.auth.admin_token())
    client.on_exchange.append(lambda e: seen.append(urlsplit(e.url).path.rsplit("/", 1)[-1]))
    fetched = fetch_patient(client, patient)
    types = {r["resourceType"] for r in fetched.resources} | set(seen)
    readable = {s.split("/")[1].split(".")[0] for s in DEFAULT_SCOPES if s.startswith("patient/")}
    assert types - {"Bundle"} <= readable


def test_with_one_allowed_ehr_a_bare_launch_starts_there(browser: FlaskClient, ehr: Ehr) -> None:
    started = browser.get("/launch")
    assert started.status_code == 302
    assert parse_qs(urlsplit(started.headers["Location"]).query)["aud"] == [ehr.base]


def test_with_several_allowed_ehrs_a_bare_launch_lets_the_user_choose(
    ehr: Ehr, make_app: Callable[..., Flask]
) -> None:
    app = make_app(
        smart_issuers=f"{ehr.base},https://ehr.example.org/fhir", smart_client_id=CLIENT_ID
    )
    page = app.test_client().get("/launch")
    assert page.status_code == 200
    assert "Sign in at which EHR?" in text(page)
    assert "https://ehr.example.org/fhir" in text(page)


def test_the_launch_context_date_sets_the_as_of(browser: FlaskClient, ehr: Ehr) -> None:
    ehr.auth.app_context = json.dumps({"patient": "x", "asOf": "2025-01-31"})
    _, response = opened(browser, ehr, "01-optimal-responder")
    assert "Reading as of <strong>2025-01-31</strong>" in text(response)


def test_a_confidential_client_authenticates_with_its_secret(
    ehr: Ehr, make_app: Callable[..., Flask]
) -> None:
    ehr.auth.register("confidential-app", f"{PUBLIC}/smart/callback", "s3cret")
    app = make_app(
        smart_issuers=ehr.base,
        smart_client_id="confidential-app",
        smart_client_secret="s3cret",
        smart_as_of=AS_OF,
    )
    app.config["PREFERRED_URL_SCHEME"] = "https"
    client = app.test_client()
    patient = ehr.load("01-optimal-responder")
    assert sign_in(client, ehr, patient).status_code == 303
    assert client.get(home(client)).status_code == 200
    [sent] = ehr.auth.token_requests
    assert "client_secret" not in sent  # HTTP Basic, not the body


def test_a_wrong_secret_is_refused_by_the_ehr(ehr: Ehr, make_app: Callable[..., Flask]) -> None:
    ehr.auth.register("confidential-app", f"{PUBLIC}/smart/callback", "s3cret")
    app = make_app(
        smart_issuers=ehr.base, smart_client_id="confidential-app", smart_client_secret="wrong"
    )
    app.config["PREFERRED_URL_SCHEME"] = "https"
    client = app.test_client()
    answer = sign_in(client, ehr, ehr.load("01-optimal-responder"))
    assert answer.status_code == 403
    assert "invalid_client" in text(answer)


def test_an_ehr_without_smart_configuration_is_a_502(
    fhir_server: FhirTestServer, make_app: Callable[..., Flask]
) -> None:
    app = make_app(smart_issuers=fhir_server.base_url, smart_client_id=CLIENT_ID)
    answer = app.test_client().get(launch_url(fhir_server.base_url, "l"))
    assert answer.status_code == 502
    assert "SMART configuration cannot be read" in text(answer)
    assert "Set-Cookie" not in answer.headers


def test_an_unconfigured_app_says_so(client: FlaskClient) -> None:
    answer = client.get("/launch?iss=https://ehr.example.org/fhir&launch=x")
    assert answer.status_code == 404
    assert "FHIR_CML_SMART_ISSUERS" in text(answer)


def test_ending_the_session(browser: FlaskClient, ehr: Ehr) -> None:
    _, response = opened(browser, ehr, "01-optimal-responder")
    fields = form_fields(text(response))
    refused = browser.post(home(browser, "logout"), data={})
    assert refused.status_code == 403
    ended = browser.post(home(browser, "logout"), data={"csrf_token": fields["csrf_token"]})
    assert ended.status_code == 200
    assert "Signed out" in text(ended)
    assert "for Ima Optimal" in text(ended)
    assert browser.get(home(browser)).status_code == 401


def relapse(server: FhirTestServer, example: str, observation: str, value: float) -> None:
    """Replaces one BCR::ABL1 result of an example on the server with ``value`` %."""
    bundle = json.loads((EXAMPLES / f"{example}.json").read_text(encoding="utf-8"))
    [resource] = [e["resource"] for e in bundle["entry"] if e["resource"].get("id") == observation]
    changed = copy.deepcopy(resource)
    changed["valueQuantity"]["value"] = value
    changed["meta"] = {"versionId": "2", **changed.get("meta", {})}
    server.load(changed)


def test_a_refused_write_is_shown_with_a_502(
    monkeypatch: pytest.MonkeyPatch, smart_app: Flask, browser: FlaskClient, ehr: Ehr
) -> None:
    def refuse(client: object, assessment: object, recorded: object, **_: object) -> WriteOutcome:
        return WriteOutcome(
            "p", "f", "create", ok=False, error="the server refused POST CarePlan (HTTP 422)"
        )

    monkeypatch.setattr("fhir_cml.web.smart.views.write_back", refuse)
    patient, response = opened(browser, ehr, "01-optimal-responder")
    answer = browser.post(home(browser, "accept"), data=form_fields(text(response)))
    assert answer.status_code == 502
    shown = flash(answer)
    assert "flash-error" in shown
    assert "Not written" in shown
    assert "the server refused POST CarePlan (HTTP 422)" in shown
    assert smart(smart_app).state.decisions(ehr.base, f"Patient/{patient}") == []
