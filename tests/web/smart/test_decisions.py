"""The clinician's decision is recorded in the EHR, on the test FHIR server, with the signed-in
practitioner: Accept puts the proposal in force (draft -> active, still a proposal) with a
Provenance naming the practitioner, also when the nightly sync wrote the draft before; Dismiss
revokes the draft with the reason and the practitioner in its Provenance."""

from __future__ import annotations

import html
from datetime import UTC, date, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from fhir_cml.app import WriteOutcome, write_back
from fhir_cml.ehr.client import BearerToken, FhirClient
from fhir_cml.ehr.fetch import fetch_patient
from fhir_cml.fhir.outbound.care_plan import proposals_of
from fhir_cml.web.smart.views import assess_resources
from tests.support.smart_ehr import USER
from tests.web.smart.conftest import USER_NAME, Ehr, form_fields, home, sign_in, smart

pytestmark = pytest.mark.integration

PRACTITIONER = {"reference": USER, "display": f"Dr {USER_NAME}"}
SYNC_RUN = datetime(2025, 6, 30, 2, 0, tzinfo=UTC)


def text(response: TestResponse) -> str:
    return html.unescape(response.get_data(as_text=True))


def sync_run(smart_app: Flask, ehr: Ehr, patient: str) -> WriteOutcome:
    """Reads, assesses and writes the patient as the sync job does (no clinician)."""
    client = FhirClient(ehr.base)
    client.auth = BearerToken(ehr.auth.admin_token())
    with client:
        fetched = fetch_patient(client, patient)
        assessed = assess_resources(
            fetched.resources, f"Patient/{patient}", date(2025, 6, 30), smart(smart_app)
        )
        outcome = write_back(client, assessed.assessment, SYNC_RUN)
    assert outcome.ok, outcome.error
    return outcome


def nightly_sync(smart_app: Flask, ehr: Ehr, patient: str) -> dict[str, Any]:
    """The patient's draft proposal written by the sync job; its CarePlan."""
    sync_run(smart_app, ehr, patient)
    [care_plan] = ehr.search(f"CarePlan?patient={patient}")
    assert care_plan["status"] == "draft"
    return care_plan


def provenances_of(ehr: Ehr, care_plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        p
        for p in ehr.search("Provenance")
        if any(t["reference"].startswith(f"CarePlan/{care_plan['id']}") for t in p["target"])
    ]


def agents(provenance: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["type"]["coding"][0]["code"]: a["who"] for a in provenance["agent"]}


def opened(browser: FlaskClient, ehr: Ehr, patient: str) -> dict[str, str]:
    assert sign_in(browser, ehr, patient).status_code == 303
    page = browser.get(home(browser))
    assert page.status_code == 200
    return form_fields(text(page))


def test_accepting_the_syncs_draft_puts_it_in_force_in_the_practitioners_name(
    smart_app: Flask, browser: FlaskClient, ehr: Ehr
) -> None:
    patient = ehr.load("05-tfr-candidate")
    drafted = nightly_sync(smart_app, ehr, patient)
    [by_sync] = provenances_of(ehr, drafted)
    assert set(agents(by_sync)) == {"assembler"}  # the sync names only the software
    fields = opened(browser, ehr, patient)
    assert browser.post(home(browser, "accept"), data=fields).status_code == 303
    shown = text(browser.get(home(browser)))
    assert f"Already in the EHR (written earlier): CarePlan/{drafted['id']}." in shown
    assert f"Put in force (status active): CarePlan/{drafted['id']}" in shown
    [care_plan] = ehr.search(f"CarePlan?patient={patient}")  # the same one, not a second
    assert care_plan["id"] == drafted["id"]
    assert care_plan["status"] == "active"
    assert care_plan["intent"] == "proposal"
    [decision] = [p for p in provenances_of(ehr, care_plan) if p["id"] != by_sync["id"]]
    assert agents(decision)["author"] == PRACTITIONER
    # The version put in force, not the draft the sync wrote.
    assert decision["target"][0]["reference"] == (
        f"CarePlan/{care_plan['id']}/_history/{care_plan['meta']['versionId']}"
    )
    assert care_plan["meta"]["versionId"] != drafted["meta"]["versionId"]
    assert decision["activity"]["coding"][0]["code"] == "UPDATE"
    assert "Accepted in fhir-cml by Dr Helena Hema" in decision["reason"][0]["text"]
    assert {"role": "source", "what": {"reference": f"Patient/{patient}"}} in decision["entity"]
    assert "This proposal was accepted" in shown
    assert "by Dr Helena Hema" in shown
    # The requests it proposes are accepted with it, still proposals, named in the record.
    proposed = proposals_of(care_plan)
    assert proposed
    for ref in proposed:
        [request] = ehr.search(ref.replace("/", "?_id="))
        assert (request["status"], request["intent"]) == ("active", "proposal")
        assert f"{ref}/_history/{request['meta']['versionId']}" in [
            t["reference"] for t in decision["target"]
        ]
        assert ref in shown


def test_dismissing_revokes_the_draft_with_the_reason_and_the_practitioner(
    smart_app: Flask, browser: FlaskClient, ehr: Ehr
) -> None:
    patient = ehr.load("07-dose-reduction-candidate")
    drafted = nightly_sync(smart_app, ehr, patient)
    fields = opened(browser, ehr, patient)
    done = browser.post(
        home(browser, "dismiss"),
        data=fields | {"reason": "patient-preference", "comment": "Prefers to stay at 400 mg."},
    )
    assert done.status_code == 303
    shown = text(browser.get(home(browser)))
    assert f"Withdrawn in the EHR: CarePlan/{drafted['id']} is revoked" in shown
    [care_plan] = ehr.search(f"CarePlan?patient={patient}")
    assert care_plan["status"] == "revoked"
    # The dose reduction it proposed is withdrawn with it (a MedicationRequest is cancelled).
    [reduction] = ehr.search(f"MedicationRequest?patient={patient}&intent=proposal")
    assert f"MedicationRequest/{reduction['id']}" in proposals_of(care_plan)
    assert reduction["status"] == "cancelled"
    assert f"with the requests it proposed (MedicationRequest/{reduction['id']}" in shown
    [revocation] = [p for p in provenances_of(ehr, care_plan) if "reason" in p]
    assert any(
        t["reference"].startswith(f"MedicationRequest/{reduction['id']}/_history/")
        for t in revocation["target"]
    )
    assert agents(revocation)["author"] == PRACTITIONER
    assert revocation["reason"] == [
        {
            "text": "Dismissed in fhir-cml by Dr Helena Hema: Patient's preference - "
            "Prefers to stay at 400 mg."
        }
    ]
    [decision] = smart(smart_app).state.decisions(ehr.base, f"Patient/{patient}")
    assert decision.kind == "dismissed"
    assert decision.user_label == f"Dr {USER_NAME}"
    # A later sync of the same reading does not propose it again: it was dismissed.
    assert not sync_run(smart_app, ehr, patient).created
    assert [p["status"] for p in ehr.search(f"CarePlan?patient={patient}")] == ["revoked"]


def test_dismissing_what_the_ehr_does_not_hold_says_so(
    smart_app: Flask, browser: FlaskClient, ehr: Ehr
) -> None:
    patient = ehr.load("07-dose-reduction-candidate")
    fields = opened(browser, ehr, patient)
    browser.post(home(browser, "dismiss"), data=fields | {"reason": "not-applicable"})
    shown = text(browser.get(home(browser)))
    assert "Dismissal recorded" in shown
    assert "The EHR holds no draft of this proposal, so nothing was withdrawn there." in shown
    assert ehr.search(f"CarePlan?patient={patient}") == []
    assert len(smart(smart_app).state.decisions(ehr.base, f"Patient/{patient}")) == 1
