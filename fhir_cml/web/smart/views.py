"""The page, Accept and Dismiss: for a patient launched from the EHR (``/smart/l/<launch>...``,
one address per launch) and, in demo mode, for the bundled examples (``/demo/...``).

The page is assessed afresh from the EHR's data on every view and every form post, so Accept
writes what the clinician saw or nothing: each form carries the assessment fingerprint, and a
proposal that changed in between is not written (the page says so). Accept writes through the
application service (conditional creates on the fingerprint, superseding the previous proposal),
so a second Accept creates nothing; the page reports what the EHR did. Forms are POSTs with the
session's CSRF token; their answers redirect (303) to the page, which shows the result once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

import requests
from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from fhir_cml.app import Decider, WriteOutcome, revoke, write_back
from fhir_cml.app import accept as app_accept
from fhir_cml.domain import Assessment, PatientRecord
from fhir_cml.domain.model import Issue
from fhir_cml.ehr.client import FhirClient
from fhir_cml.ehr.fetch import fetch_patient
from fhir_cml.errors import FhirAuthError, FhirNotFoundError, RequestError
from fhir_cml.fhir.outbound.identifiers import fingerprint
from fhir_cml.state.smart import SessionRecord
from fhir_cml.web import assessment as assessing
from fhir_cml.web.runtime import INTERACTIVE_RETRY
from fhir_cml.web.smart.blueprint import bp
from fhir_cml.web.smart.demo import DEMO_ISS, Demo
from fhir_cml.web.smart.errors import (
    RELAUNCH,
    SmartError,
    other_patient,
    sentence,
    session_expired,
    session_missing,
)
from fhir_cml.web.smart.page import DISMISS_REASONS, MAX_COMMENT, Subject, build_page
from fhir_cml.web.smart.runtime import SmartRuntime, smart_runtime
from fhir_cml.web.smart.sessions import key_of

log = logging.getLogger("fhir_cml.web.smart")

REFRESH_MARGIN: Final = timedelta(seconds=30)
_REFRESHING = threading.RLock()  # one token renewal at a time in this process
_REASONS: Final = dict(DISMISS_REASONS)


@dataclass(frozen=True, slots=True)
class Assessed:
    """One patient's data as read, and its assessment."""

    assessment: Assessment
    record: PatientRecord
    resources: list[dict[str, Any]]
    issues: list[Issue]


def assess_resources(
    resources: list[dict[str, Any]], patient: str, as_of: date, rt: SmartRuntime
) -> Assessed:
    """Reads and assesses one patient's resources as every face does (web.assessment)."""
    loaded = assessing.load(resources, rt.settings, rt.clock())
    record = assessing.only_patient(loaded, patient)
    result = assessing.assess_record(record, as_of, rt.settings.guideline, rt.settings)
    return Assessed(result, record, resources, list(loaded.issues))


# --- the EHR, with the session's token -----------------------------------------------------------


class SessionAuth(requests.auth.AuthBase):
    """The session's access token as a bearer token, renewed with the refresh token when it is
    about to expire or the FHIR server answers 401 (once: FhirClient calls ``renew``).

    With ``online_access`` the EHR renews it for as long as the user is signed in there, so a
    clinician's review outlasts short-lived tokens. A refresh token is used once (the EHR may
    end the grant when one is replayed): renewals of one launch take turns, and a request that
    finds the token already renewed by another uses the new one.
    """

    def __init__(self, rt: SmartRuntime, record: SessionRecord) -> None:
        self.rt = rt
        self.record = record
        self._lock = threading.Lock()
        expires = record.token_expires_at
        if expires is not None and expires - rt.clock() <= REFRESH_MARGIN:
            self.token = self._refresh("the EHR's access token has expired")
        else:
            assert record.access_token is not None
            self.token = record.access_token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token}"
        return r

    def renew(self) -> None:
        with self._lock:
            self.token = self._refresh("the EHR no longer accepts the app's access token")

    def _refresh(self, why: str) -> str:
        rt, spent = self.rt, self.record
        with _REFRESHING:
            record = rt.state.get_session(spent.id) or spent
            if record.access_token and record.access_token != spent.access_token:
                self.record = record  # renewed by another request meanwhile
                return record.access_token
            if not record.refresh_token or rt.tokens is None or record.token_endpoint is None:
                rt.sessions.end(record)
                raise session_expired(f"{why} and it gave no refresh token", record.patient_name)
            try:
                tokens = rt.tokens.refresh(
                    record.token_endpoint, refresh_token=record.refresh_token, now=rt.clock()
                )
            except SmartError:
                again = rt.state.get_session(record.id)
                if again is not None and again.access_token != record.access_token:
                    self.record = again  # renewed by another worker process meanwhile
                    assert again.access_token is not None
                    return again.access_token
                rt.sessions.end(record)
                raise session_expired(
                    f"{why} and it refused to renew it (the sign-in at the EHR may have ended)",
                    record.patient_name,
                ) from None
            if tokens.patient is not None and tokens.patient != record.patient:
                rt.sessions.end(record)
                raise SmartError(
                    403,
                    "The EHR changed the patient",
                    "Renewing access returned another patient's context; the session was ended "
                    "and nothing was shown or written.",
                    RELAUNCH,
                )
            rt.state.update_session(
                record.id,
                access_token=tokens.access_token,
                refresh_token=tokens.refresh_token,
                token_expires_at=tokens.expires_at,
            )
            self.record = rt.state.get_session(record.id) or record
        log.info("access token renewed")
        return tokens.access_token


def ehr_client(rt: SmartRuntime, record: SessionRecord) -> FhirClient:
    assert record.iss is not None
    s = rt.settings
    return FhirClient(
        record.iss,
        auth=SessionAuth(rt, record),
        timeout=(s.fhir_connect_timeout, s.fhir_timeout),
        retry=INTERACTIVE_RETRY,
    )


def from_ehr(rt: SmartRuntime, record: SessionRecord, client: FhirClient) -> Assessed:
    """The session's patient read from the EHR and assessed; refusals become clear pages."""
    assert record.patient is not None
    try:
        fetched = fetch_patient(client, record.patient)
    except FhirAuthError as err:
        if err.status == 401:
            rt.sessions.end(record)
            raise session_expired(
                "the EHR no longer accepts the app's access token", record.patient_name
            ) from None
        raise SmartError(
            403,
            "The EHR refused access to this patient",
            sentence(
                f"The EHR's FHIR server did not give the app Patient/{record.patient}'s data "
                f"(HTTP 403): {sentence(err.message)} The sign-in may be for another patient"
            ),
            RELAUNCH,
        ) from None
    except FhirNotFoundError:
        raise _unknown_patient(record.patient) from None
    if not any(r.get("resourceType") == "Patient" for r in fetched.resources):
        raise _unknown_patient(record.patient)
    return assess_resources(fetched.resources, f"Patient/{record.patient}", as_of(rt, record), rt)


def _unknown_patient(patient: str) -> SmartError:
    return SmartError(
        404,
        "Patient not found",
        f"Patient/{patient} is not known to the EHR's FHIR server.",
        "The EHR launched the app for a patient its FHIR server does not hold: tell the EHR's "
        "administrator.",
    )


def as_of(rt: SmartRuntime, record: SessionRecord) -> date:
    """The launch's ``appContext`` date, else ``FHIR_CML_SMART_AS_OF``, else today (UTC)."""
    return record.as_of or rt.settings.smart_as_of or rt.clock().date()


def decider(user: str | None) -> tuple[bool, str | None]:
    """Whether the signed-in user may accept or dismiss (a Practitioner or PractitionerRole,
    named by ``fhirUser``), and why not."""
    kind = _user_type(user)
    if kind in ("Practitioner", "PractitionerRole"):
        return True, None
    if kind is None:
        return False, (
            "The EHR did not say who signed in (no fhirUser), so a decision could not be "
            "recorded in anyone's name: the page is for viewing only."
        )
    return False, (
        f"You are signed in as a {kind}, not a practitioner: you may view the reading, and a "
        "clinician decides on the suggestions."
    )


def _user_type(user: str | None) -> str | None:
    if not user:
        return None
    parts = user.rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 else None


def ehr_subject(rt: SmartRuntime, record: SessionRecord, launch: str) -> Subject:
    assert record.iss is not None
    assert record.patient is not None
    may_decide, why_not = decider(record.fhir_user)
    return Subject(
        iss=record.iss,
        patient=f"Patient/{record.patient}",
        as_of=as_of(rt, record),
        demo=False,
        accept_url=url_for("smart.accept", launch=launch),
        dismiss_url=url_for("smart.dismiss", launch=launch),
        user=record.fhir_user,
        user_name=record.user_name,
        logout_url=url_for("smart.logout", launch=launch),
        may_decide=may_decide,
        why_not=why_not,
    )


def launch_session(launch: str) -> tuple[SmartRuntime, SessionRecord]:
    """The live session of the launch at this address, with its form checked on a POST (the
    CSRF token, and that the form was for this launch's patient)."""
    rt = smart_runtime()
    record = rt.sessions.current(request, launch)
    if request.method == "POST":
        rt.sessions.check_csrf(record, request.form.get("csrf_token"))
        given = request.form.get("patient")
        if given is not None and given != f"Patient/{record.patient}":
            raise other_patient(given[:100], record.patient_name or f"Patient/{record.patient}")
    return rt, record


def may_decide(subject: Subject) -> None:
    """SmartError 403 unless the signed-in user may accept or dismiss."""
    if not subject.may_decide:
        raise SmartError(
            403,
            "Not a clinician's session",
            sentence(f"{subject.why_not} Nothing was written"),
            "A practitioner signed in at the EHR can accept or dismiss the suggestions.",
        )


@bp.get("/smart/l/<launch>")
def app_page(launch: str) -> Response:
    rt, record = launch_session(launch)
    with ehr_client(rt, record) as client:
        assessed = from_ehr(rt, record, client)
    return render(rt, record, ehr_subject(rt, record, launch), assessed)


@bp.post("/smart/l/<launch>/accept")
def accept(launch: str) -> Response:
    """Writes the suggestions (if not there yet) with the clinician as verifier, then puts
    them in force (draft -> active) with a Provenance naming the clinician as its author."""
    rt, record = launch_session(launch)
    subject = ehr_subject(rt, record, launch)
    may_decide(subject)
    assert record.patient is not None
    with ehr_client(rt, record) as client:
        assessed = from_ehr(rt, record, client)

        def write(a: Assessment, recorded: datetime) -> dict[str, Any]:
            written = write_back(
                client,
                a,
                recorded,
                settings=rt.settings.writing,
                decider=decider_of(subject, "verifier"),
            )
            result = outcome_dict(written)
            if not written.ok:
                return result
            try:
                accepted = app_accept(
                    client,
                    str(record.patient),
                    fingerprint(a),
                    recorded,
                    decider=decider_of(subject, "author"),
                    reason=f"Accepted in fhir-cml by {subject.signed_in_as}",
                )
            except RequestError as err:
                return result | {"ok": False, "error": err.message}
            result["accepted"] = outcome_dict(accepted)
            if not accepted.ok:
                result |= {"ok": False, "error": accepted.error}
            return result

        page = url_for("smart.app_page", launch=launch)
        return accept_proposal(rt, record, subject, assessed, write, page)


@bp.post("/smart/l/<launch>/dismiss")
def dismiss(launch: str) -> Response:
    """Withdraws the draft suggestion in the EHR (revoked, with the reason and the clinician
    in its Provenance) and records the dismissal."""
    rt, record = launch_session(launch)
    subject = ehr_subject(rt, record, launch)
    may_decide(subject)
    reason, comment = dismissal(request.form)
    assert record.patient is not None
    with ehr_client(rt, record) as client:
        assessed = from_ehr(rt, record, client)

        def withdraw(fp: str, recorded: datetime, why: str) -> dict[str, Any]:
            try:
                done = revoke(
                    client,
                    str(record.patient),
                    fp,
                    recorded,
                    reason=why,
                    decider=decider_of(subject, "author"),
                )
            except RequestError:
                return {"ok": True, "action": "none"}  # no draft of it in the EHR
            return outcome_dict(done)

        page = url_for("smart.app_page", launch=launch)
        return dismiss_proposal(rt, record, subject, assessed, reason, comment, page, withdraw)


def decider_of(subject: Subject, role: str) -> Decider:
    """The signed-in clinician as a Provenance agent: their fhirUser, relative when it is on
    the EHR's own FHIR server, with their name."""
    assert subject.user is not None
    user = subject.user
    ref = user[len(subject.iss) + 1 :] if user.startswith(f"{subject.iss}/") else user
    who: dict[str, Any] = {"reference": ref}
    if subject.user_name:
        who["display"] = subject.user_name
    return Decider(who, role)


@bp.post("/smart/l/<launch>/logout")
def logout(launch: str) -> Response:
    """Ends this launch's session (other tabs' launches go on)."""
    rt = smart_runtime()
    record = rt.sessions.find(request, launch)
    if record is not None:
        rt.sessions.check_csrf(record, request.form.get("csrf_token"))
        rt.sessions.end(record)
    return Response(
        render_template("smart/signed_out.html", patient_name=record and record.patient_name),
        content_type="text/html; charset=utf-8",
    )


# --- shared by the EHR and the demo --------------------------------------------------------------


def render(
    rt: SmartRuntime,
    record: SessionRecord,
    subject: Subject,
    assessed: Assessed,
    *,
    flash: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    page = build_page(
        assessment=assessed.assessment,
        record=assessed.record,
        resources=assessed.resources,
        subject=subject,
        csrf_token=record.csrf_token,
        public_base_url=rt.settings.public_base_url,
        load_issues=assessed.issues,
        decisions=rt.state.decisions(subject.iss, subject.patient),
        flash=flash if flash is not None else rt.state.take_flash(record.id),
    )
    if page.patient_name != record.patient_name and record.kind == "active":
        rt.state.update_session(record.id, patient_name=page.patient_name[:256])
    body = render_template("smart/page.html", page=page)
    return Response(body, status=status, content_type="text/html; charset=utf-8")


def accept_proposal(
    rt: SmartRuntime,
    record: SessionRecord,
    subject: Subject,
    assessed: Assessed,
    write: Callable[[Assessment, datetime], dict[str, Any]],
    page_url: str,
) -> Response:
    """Writes the proposal (if it is the one the clinician saw) and reports what happened."""
    shown = request.form.get("fingerprint")
    current = fingerprint(assessed.assessment)
    if shown != current:
        return _changed(rt, record, page_url)
    now = rt.clock().replace(microsecond=0)
    result = write(assessed.assessment, now)
    prefix = "DEMO: " if subject.demo else ""
    if not result.get("ok", True):
        flash = {
            "kind": "error",
            "title": f"{prefix}Not written",
            "lines": [sentence(f"The EHR did not take the proposal: {result.get('error')}")],
        }
        return render(rt, record, subject, assessed, flash=flash, status=502)
    rt.state.record_decision(
        iss=subject.iss,
        patient=subject.patient,
        fingerprint=current,
        kind="accepted",
        recommendations=[s.code.value for s in assessed.assessment.recommendations],
        result=result,
        user=subject.user,
        user_name=subject.user_name,
        at=now,
    )
    rt.state.update_session(record.id, flash=_accept_flash(result, subject.demo))
    return redirect(page_url, 303)


def _accept_flash(result: Mapping[str, Any], demo: bool) -> dict[str, Any]:
    where = "the demo's in-memory store (no EHR)" if demo else "the EHR"
    prefix = "DEMO: " if demo else ""
    accepted = result.get("accepted") or {}
    wrote = result.get("created") or result.get("updated") or accepted.get("updated")
    if not wrote:
        held = (
            accepted.get("care_plan")
            or result.get("care_plan")
            or ", ".join(result.get("existing") or [])
            or "it"
        )
        return {
            "kind": "unchanged",
            "title": f"{prefix}Nothing new written",
            "lines": [
                f"{where[0].upper()}{where[1:]} already holds this proposal ({held})"
                + (", accepted" if accepted else "")
                + "; accepting it again creates nothing."
            ],
        }
    lines = [f"Created {x}." for x in result.get("created") or []]
    lines += [f"Already there, not created again: {x}." for x in result.get("existing") or []]
    if result.get("action") == "unchanged" and result.get("care_plan"):
        lines.append(f"Already in the EHR (written earlier): {result['care_plan']}.")
    lines += [f"Superseded (updated): {x}." for x in result.get("updated") or []]
    if accepted.get("updated"):
        withdrawn = accepted.get("withdrawn") or []
        in_force = [x for x in accepted["updated"] if x not in withdrawn]
        lines.append(
            f"Put in force (status active): {', '.join(in_force)}; "
            + (f"{accepted['created'][0]} " if accepted.get("created") else "a Provenance ")
            + "records your decision."
        )
        lines += [f"Superseded (withdrawn): {x}." for x in withdrawn]
    return {"kind": "accepted", "title": f"{prefix}Written to {where}", "lines": lines}


def _changed(rt: SmartRuntime, record: SessionRecord, page_url: str) -> Response:
    rt.state.update_session(
        record.id,
        flash={
            "kind": "error",
            "title": "Nothing written: the reading changed",
            "lines": [
                "The patient's data or the reading changed since the page was shown. Review the "
                "updated page and decide again."
            ],
        },
    )
    return redirect(page_url, 303)


def dismissal(form: Mapping[str, str]) -> tuple[str, str | None]:
    """The reason code and comment of a Dismiss form; SmartError 400 when they do not do."""
    reason = form.get("reason", "")
    comment = (form.get("comment") or "").strip() or None
    if reason not in _REASONS:
        raise SmartError(
            400,
            "Dismissal not recorded",
            "Choose one of the listed reasons for dismissing the suggestions.",
            "Go back, choose a reason and submit again.",
        )
    if reason == "other" and comment is None:
        raise SmartError(
            400,
            "Dismissal not recorded",
            "With the reason 'Other', say why in the text box.",
            "Go back, add a few words and submit again.",
        )
    if comment is not None and len(comment) > MAX_COMMENT:
        raise SmartError(
            400,
            "Dismissal not recorded",
            f"The comment is longer than {MAX_COMMENT} characters.",
            "Go back, shorten it and submit again.",
        )
    return reason, comment


def dismiss_proposal(
    rt: SmartRuntime,
    record: SessionRecord,
    subject: Subject,
    assessed: Assessed,
    reason: str,
    comment: str | None,
    page_url: str,
    withdraw: Callable[[str, datetime, str], dict[str, Any]] | None = None,
) -> Response:
    """Withdraws the proposal where it was written (``withdraw``, if any) and records why."""
    current = fingerprint(assessed.assessment)
    if request.form.get("fingerprint") != current:
        return _changed(rt, record, page_url)
    now = rt.clock().replace(microsecond=0)
    why = f"Dismissed in fhir-cml by {subject.signed_in_as or 'the user'}: {_REASONS[reason]}"
    why = sentence(why + (f" - {comment}" if comment else ""))
    result = withdraw(current, now, why) if withdraw is not None else None
    prefix = "DEMO: " if subject.demo else ""
    if result is not None and not result.get("ok", True):
        flash = {
            "kind": "error",
            "title": f"{prefix}Not withdrawn",
            "lines": [sentence(f"The EHR did not take the withdrawal: {result.get('error')}")],
        }
        return render(rt, record, subject, assessed, flash=flash, status=502)
    rt.state.record_decision(
        iss=subject.iss,
        patient=subject.patient,
        fingerprint=current,
        kind="dismissed",
        recommendations=[s.code.value for s in assessed.assessment.recommendations],
        reason=reason,
        comment=comment,
        result=result,
        user=subject.user,
        user_name=subject.user_name,
        at=now,
    )
    lines = [sentence(f"Reason: {_REASONS[reason]}") + (f" {comment}" if comment else "")]
    if subject.demo:
        lines.append("Nothing was written.")
    elif result and result.get("updated"):
        care_plan, *proposals = result["updated"]
        lines.append(
            f"Withdrawn in the EHR: {care_plan} is revoked"
            + (f", with the requests it proposed ({', '.join(proposals)})" if proposals else "")
            + "; its Provenance records the reason and your name."
        )
    else:
        lines.append("The EHR holds no draft of this proposal, so nothing was withdrawn there.")
    rt.state.update_session(
        record.id,
        flash={"kind": "dismissed", "title": f"{prefix}Dismissal recorded", "lines": lines},
    )
    return redirect(page_url, 303)


def outcome_dict(o: WriteOutcome) -> dict[str, Any]:
    return {
        "ok": o.ok,
        "action": o.action,
        "created": list(o.created),
        "existing": list(o.existing),
        "updated": list(o.updated),
        "withdrawn": list(o.withdrawn),
        "care_plan": o.care_plan,
        "risk_assessment": o.risk_assessment,
        "error": o.error,
    }


# --- demo mode -----------------------------------------------------------------------------------


def _demo(rt: SmartRuntime) -> Demo:
    if rt.demo is None:
        raise SmartError(
            404,
            "Demo mode is off",
            "The demo pages are served only in demo mode.",
            "Start the app with `fhir-cml serve --demo` (or FHIR_CML_DEMO=true).",
        )
    return rt.demo


def demo_session(rt: SmartRuntime) -> tuple[SessionRecord, str | None]:
    """The browser's demo session, or a new one (then with the cookie value to set)."""
    browser, new = rt.sessions.browser_or_new(request)
    if not new:
        found = rt.state.browser_sessions(key_of(browser), "demo")
        if found:
            try:
                return rt.sessions.touch(found[-1]), None
            except SmartError:
                pass
    _, record = rt.sessions.start("demo", browser, iss=DEMO_ISS)
    return record, browser


def demo_current(rt: SmartRuntime) -> SessionRecord:
    """The browser's live demo session, its form's CSRF token checked; SmartError otherwise."""
    browser = rt.sessions.browser(request)
    found = rt.state.browser_sessions(key_of(browser), "demo") if browser else []
    if not found:
        raise session_missing()
    record = rt.sessions.touch(found[-1])
    rt.sessions.check_csrf(record, request.form.get("csrf_token"))
    return record


def demo_assessed(rt: SmartRuntime, name: str) -> tuple[Subject, Assessed]:
    demo = _demo(rt)
    example = demo.examples.get(name)
    if example is None:
        raise SmartError(
            404, "No such example", f"There is no example patient {name[:80]!r}.", None
        )
    assessed = assess_resources(example.resources(), example.patient, demo.as_of, rt)
    subject = Subject(
        iss=DEMO_ISS,
        patient=example.patient,
        as_of=demo.as_of,
        demo=True,
        accept_url=url_for("smart.demo_accept", name=name),
        dismiss_url=url_for("smart.demo_dismiss", name=name),
        back_url=url_for("smart.demo_list"),
    )
    return subject, assessed


@bp.get("/demo")
def demo_list() -> Response:
    rt = smart_runtime()
    demo = _demo(rt)
    _, new_id = demo_session(rt)
    rows = []
    for name, example in demo.examples.items():
        _, assessed = demo_assessed(rt, name)
        a = assessed.assessment
        milestone = f" ({a.eln.milestone.value})" if a.eln.milestone else ""
        rows.append(
            {
                "name": name,
                "title": example.title,
                "url": url_for("smart.demo_page", name=name),
                "summary": f"{a.molecular_response.depth.value}; {a.guideline.label} "
                f"{a.eln.status.value}{milestone}; {len(a.recommendations)} suggestion"
                f"{'s' if len(a.recommendations) != 1 else ''}",
            }
        )
    body = render_template("smart/demo_list.html", rows=rows, as_of=demo.as_of)
    response = Response(body, content_type="text/html; charset=utf-8")
    if new_id is not None:
        rt.sessions.set_cookie(response, new_id)
    return response


@bp.get("/demo/<name>")
def demo_page(name: str) -> Response:
    rt = smart_runtime()
    record, new_id = demo_session(rt)
    subject, assessed = demo_assessed(rt, name)
    response = render(rt, record, subject, assessed)
    if new_id is not None:
        rt.sessions.set_cookie(response, new_id)
    return response


@bp.post("/demo/<name>/accept")
def demo_accept(name: str) -> Response:
    rt = smart_runtime()
    record = demo_current(rt)
    subject, assessed = demo_assessed(rt, name)
    demo = _demo(rt)
    return accept_proposal(
        rt, record, subject, assessed, demo.write, url_for("smart.demo_page", name=name)
    )


@bp.post("/demo/<name>/dismiss")
def demo_dismiss(name: str) -> Response:
    rt = smart_runtime()
    record = demo_current(rt)
    reason, comment = dismissal(request.form)
    subject, assessed = demo_assessed(rt, name)
    return dismiss_proposal(
        rt, record, subject, assessed, reason, comment, url_for("smart.demo_page", name=name)
    )
