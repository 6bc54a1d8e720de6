"""The launch and the EHR's answer: ``/launch`` (the path is ``FHIR_CML_SMART_LAUNCH_PATH``) and
``/smart/callback`` (the redirect URI).

- EHR launch: ``/launch?iss=<FHIR base>&launch=<opaque>``. Standalone launch: ``/launch?iss=...``
  without ``launch`` (the EHR asks the user to pick a patient, scope ``launch/patient``); with
  one allowed EHR, plain ``/launch`` starts a standalone launch at it.
- ``iss`` must be on ``FHIR_CML_SMART_ISSUERS`` before anything is requested from it: otherwise
  anyone could point the app, and the tokens it gets, at a server of their choosing.
- The callback accepts an answer only for the sign-in this browser started (``state``), once:
  the state is cleared in the same database update that checks it. Signing in replaces the
  pending session with a new one under a new id.
"""

from __future__ import annotations

import secrets
from typing import Final

from authlib.common.security import generate_token
from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from fhir_cml.web.settings import env_name
from fhir_cml.web.smart.blueprint import bp
from fhir_cml.web.smart.errors import RELAUNCH, SmartError
from fhir_cml.web.smart.oauth import authorization_url, discover, requested_scope
from fhir_cml.web.smart.runtime import smart_runtime

MAX_LAUNCH: Final = 4096
VERIFIER_LENGTH: Final = 64  # PKCE: 43 to 128 characters


def launch() -> Response:
    """Starts the sign-in at the EHR (registered at ``FHIR_CML_SMART_LAUNCH_PATH``)."""
    rt = smart_runtime()
    settings = rt.settings
    if rt.tokens is None or not settings.smart_issuers:
        raise SmartError(
            404,
            "The SMART app is not set up",
            f"No EHR may launch the app: {env_name('smart_issuers')} and "
            f"{env_name('smart_client_id')} are not set.",
            "Ask the administrator to register the app at the EHR and set them.",
        )
    given = request.args.get("iss")
    launch_context = request.args.get("launch")
    if given is None:
        if launch_context is not None:
            raise SmartError(
                400,
                "Launch without an EHR",
                "The launch carries a launch context but no iss (the EHR's FHIR base URL).",
                RELAUNCH,
            )
        if len(settings.smart_issuers) > 1:
            body = render_template("smart/choose.html", issuers=settings.smart_issuers)
            return Response(body, content_type="text/html; charset=utf-8")
        given = settings.smart_issuers[0]
    iss = given.rstrip("/")
    if iss not in settings.smart_issuers:
        raise SmartError(
            403,
            "This EHR may not launch the app",
            f"The launch names the FHIR server {given[:300]!r}, which is not on the app's list "
            f"of allowed EHRs ({env_name('smart_issuers')}). Nothing was requested from it.",
            "If this EHR should be allowed, ask the administrator to add its FHIR base URL.",
        )
    if launch_context is not None and not 0 < len(launch_context) <= MAX_LAUNCH:
        raise SmartError(400, "Launch not accepted", "The launch parameter is empty or too long.")
    standalone = launch_context is None
    config = discover(iss, settings)
    scope = requested_scope(settings, standalone=standalone)
    state = secrets.token_urlsafe(32)
    verifier = generate_token(VERIFIER_LENGTH)
    target = authorization_url(
        settings,
        config,
        iss=iss,
        launch=launch_context,
        state=state,
        code_verifier=verifier,
        scope=scope,
    )
    previous = rt.sessions.find(request)
    if previous is not None:  # a new launch ends whatever this browser had open
        rt.sessions.end(previous)
    session_id, _ = rt.sessions.start(
        "pending",
        iss=iss,
        launch=launch_context,
        standalone=standalone,
        state=state,
        code_verifier=verifier,
        authorize_endpoint=config.authorization_endpoint,
        token_endpoint=config.token_endpoint,
        issuer=config.issuer,
        scope=scope,
    )
    response = redirect(target, 302)
    rt.sessions.set_cookie(response, session_id)
    return response


@bp.get("/smart/callback")
def callback() -> Response:
    """The EHR's answer: checks ``state``, trades the code for tokens, opens the session."""
    rt = smart_runtime()
    record = rt.sessions.find(request)
    if record is None:
        raise SmartError(
            400,
            "No sign-in in progress",
            "This browser has no sign-in in progress with the app (the session cookie is missing "
            "or the sign-in was abandoned), so the EHR's answer cannot be matched to one.",
            RELAUNCH,
        )
    if record.kind != "pending" or record.state is None:
        raise SmartError(
            400,
            "Sign-in answer already used",
            "This answer from the EHR has already been used, or belongs to another sign-in; an "
            "answer is accepted once only.",
            RELAUNCH,
        )
    now = rt.clock()
    why = rt.sessions.expired(record, now)
    if why is not None:
        rt.sessions.end(record)
        raise SmartError(401, "Sign-in expired", f"The sign-in has expired: {why}.", RELAUNCH)
    state = request.args.get("state")
    if not state or not rt.state.consume_state(record.id, state):
        raise SmartError(
            400,
            "Sign-in answer not accepted",
            "The EHR's answer does not carry the state this browser's sign-in started with: it "
            "may be forged or belong to another sign-in, so it was not used.",
            RELAUNCH,
        )
    error = request.args.get("error")
    if error:
        rt.sessions.end(record)
        description = request.args.get("error_description")
        detail = f"{error[:100]}: {description[:300]}" if description else error[:100]
        raise SmartError(
            403, "The EHR did not authorize the app", f"The EHR answered {detail}.", RELAUNCH
        )
    code = request.args.get("code")
    if not code:
        rt.sessions.end(record)
        raise SmartError(
            400, "Sign-in answer not accepted", "The EHR's answer has no code.", RELAUNCH
        )
    assert rt.tokens is not None
    assert record.token_endpoint is not None
    try:
        tokens = rt.tokens.exchange(
            record.token_endpoint,
            code=code,
            code_verifier=record.code_verifier,
            now=now,
            issuer=record.issuer,
        )
        if tokens.patient is None:
            raise SmartError(
                502,
                "No patient in context",
                "The EHR signed you in but did not say which patient the app is for (the token "
                "response has no patient).",
                "Open the app from a patient's chart, or pick a patient when the EHR asks.",
            )
    finally:
        rt.sessions.end(record)
    session_id, _ = rt.sessions.start(
        "active",
        iss=record.iss,
        standalone=record.standalone,
        token_endpoint=record.token_endpoint,
        issuer=record.issuer,
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        token_expires_at=tokens.expires_at,
        scope=tokens.scope,
        patient=tokens.patient,
        fhir_user=tokens.fhir_user,
        as_of=tokens.as_of,
    )
    response = redirect(url_for("smart.app_page"), 303)
    rt.sessions.set_cookie(response, session_id)
    return response
