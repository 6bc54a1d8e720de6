"""The launch and the EHR's answer: ``/launch`` (the path is ``FHIR_CML_SMART_LAUNCH_PATH``) and
``/smart/callback`` (the redirect URI).

- EHR launch: ``/launch?iss=<FHIR base>&launch=<opaque>``. Standalone launch: ``/launch?iss=...``
  without ``launch`` (the EHR asks the user to pick a patient, scope ``launch/patient``); with
  one allowed EHR, plain ``/launch`` starts a standalone launch at it.
- ``iss`` must be on ``FHIR_CML_SMART_ISSUERS`` before anything is requested from it: otherwise
  anyone could point the app, and the tokens it gets, at a server of their choosing.
- The callback accepts an answer only for a sign-in this browser started (``state``), once:
  the state is cleared in the same database update that checks it. Signing in replaces the
  pending session with a new one under a new launch id, and sends the browser to that launch's
  page, ``/smart/l/<launch id>``: a second launch in another tab gets its own page and leaves
  this one as it is.
- Opened inside a frame that may not show the app (framing is off, or the framing site is not
  on ``FHIR_CML_SMART_FRAME_ANCESTORS``), the launch answers a page any site may frame, with a
  link that opens the same launch in a new window; nothing is requested from the EHR until then.
- Who signed in: the id_token's ``fhirUser``, resolved against ``iss`` when relative, and the
  name read from that resource (Practitioner, PractitionerRole, Patient, RelatedPerson, Person)
  so the page says "Signed in as Dr ..."; when it cannot be read, the reference is shown.
"""

from __future__ import annotations

import logging
import secrets
from typing import Final
from urllib.parse import urlsplit

from authlib.common.security import generate_token
from flask import g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from fhir_cml.ehr.client import BearerToken, FhirClient
from fhir_cml.errors import FhirClientError
from fhir_cml.web.settings import env_name
from fhir_cml.web.smart.blueprint import FRAMEABLE, bp
from fhir_cml.web.smart.errors import RELAUNCH, SmartError, sentence
from fhir_cml.web.smart.oauth import RETRY, Tokens, authorization_url, discover, requested_scope
from fhir_cml.web.smart.page import human_name
from fhir_cml.web.smart.runtime import SmartRuntime, smart_runtime
from fhir_cml.web.smart.sessions import key_of

log = logging.getLogger("fhir_cml.web.smart")

MAX_LAUNCH: Final = 4096
VERIFIER_LENGTH: Final = 64  # PKCE: 43 to 128 characters
USER_TYPES: Final = ("Practitioner", "PractitionerRole", "Patient", "RelatedPerson", "Person")


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
            "Ask the administrator to register the app at the EHR and set them; opening the "
            "app again will not help.",
        )
    if _framed_where_refused(settings.smart_frame_ancestors):
        g.setdefault(FRAMEABLE, True)
        body = render_template("smart/new_window.html", url=request.full_path)
        return Response(body, content_type="text/html; charset=utf-8")
    given = request.args.get("iss")
    launch_context = request.args.get("launch")
    if given is None:
        if launch_context is not None:
            raise SmartError(
                400,
                "Launch without an EHR",
                "The launch carries a launch context but no iss (the EHR's FHIR base URL).",
                "The EHR's launch link is incomplete: tell the EHR's administrator.",
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
        raise SmartError(
            400,
            "Launch not accepted",
            "The launch parameter is empty or too long.",
            "The EHR's launch link is malformed: tell the EHR's administrator.",
        )
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
    browser, _ = rt.sessions.browser_or_new(request)
    rt.sessions.start(
        "pending",
        browser,
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
    rt.sessions.set_cookie(response, browser)  # (again: its lifetime starts anew)
    return response


def _framed_where_refused(allowed: tuple[str, ...]) -> bool:
    """Whether this launch is opened in a frame the app's pages may not be shown in: framing is
    off, or the framing page's origin (its Referer) is not allowed. Without a Referer the
    browser's own frame-ancestors check decides."""
    if request.headers.get("Sec-Fetch-Dest") not in ("iframe", "frame"):
        return False
    if not allowed:
        return True
    referer = urlsplit(request.headers.get("Referer") or "")
    if not referer.scheme or not referer.netloc:
        return False
    return f"{referer.scheme}://{referer.netloc.lower()}" not in allowed


@bp.get("/smart/callback")
def callback() -> Response:
    """The EHR's answer: finds the sign-in by ``state``, trades the code for tokens, opens the
    launch's session and sends the browser to its page."""
    rt = smart_runtime()
    browser = rt.sessions.browser(request)
    if browser is None:
        raise SmartError(
            400,
            "No sign-in in progress",
            "This browser has no sign-in in progress with the app (the session cookie is missing "
            "or the sign-in was abandoned), so the EHR's answer cannot be matched to one.",
            RELAUNCH,
        )
    state = request.args.get("state")
    record = rt.state.take_pending(key_of(browser), state) if state else None
    if record is None:
        raise SmartError(
            400,
            "Sign-in answer not accepted",
            "The EHR's answer does not belong to a sign-in in progress in this browser: it has "
            "already been used, belongs to another sign-in, or does not carry the state this "
            "browser's sign-in started with. It was not used.",
            RELAUNCH,
        )
    now = rt.clock()
    why = rt.sessions.expired(record, now)
    if why is not None:
        rt.sessions.end(record)
        raise SmartError(
            401, "Sign-in expired", sentence(f"The sign-in has expired: {why}"), RELAUNCH
        )
    error = request.args.get("error")
    if error:
        rt.sessions.end(record)
        description = request.args.get("error_description")
        detail = f"{error[:100]}: {description[:300]}" if description else error[:100]
        raise SmartError(
            403,
            "The EHR did not authorize the app",
            sentence(f"The EHR answered {detail}"),
            RELAUNCH,
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
    assert record.iss is not None
    user = resolve_user(record.iss, tokens.fhir_user)
    launch_id, _ = rt.sessions.start(
        "active",
        browser,
        iss=record.iss,
        standalone=record.standalone,
        token_endpoint=record.token_endpoint,
        issuer=record.issuer,
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        token_expires_at=tokens.expires_at,
        scope=tokens.scope,
        patient=tokens.patient,
        fhir_user=user,
        user_name=user_name(rt, record.iss, user, tokens),
        as_of=tokens.as_of,
    )
    return redirect(url_for("smart.app_page", launch=launch_id), 303)


def resolve_user(iss: str, fhir_user: str | None) -> str | None:
    """``fhirUser`` as an absolute URL (SMART allows one relative to ``iss``)."""
    if not fhir_user:
        return None
    if urlsplit(fhir_user).scheme:
        return fhir_user
    return f"{iss}/{fhir_user.lstrip('/')}"


def user_reference(iss: str, user: str | None) -> tuple[str, str] | None:
    """(type, id) of a ``fhirUser`` on the EHR's own FHIR server, or None."""
    if not user or not user.startswith(f"{iss}/"):
        return None
    parts = user[len(iss) + 1 :].split("/")
    if len(parts) < 2 or parts[0] not in USER_TYPES:
        return None
    return parts[0], parts[1]


def user_name(rt: SmartRuntime, iss: str, user: str | None, tokens: Tokens) -> str | None:
    """The signed-in user's name from their FHIR resource on the EHR (one read, with the new
    access token); None when there is none to read or the EHR does not give it."""
    found = user_reference(iss, user)
    if found is None:
        return None
    kind, rid = found
    client = FhirClient(
        iss,
        auth=BearerToken(tokens.access_token),
        timeout=(rt.settings.fhir_connect_timeout, rt.settings.fhir_timeout),
        retry=RETRY,
    )
    try:
        resource = client.read(kind, rid)
    except FhirClientError as err:
        log.info("the signed-in user's name could not be read", extra={"error": type(err).__name__})
        return None
    finally:
        client.close()
    name = human_name(resource.get("name"), prefix=True)
    if name is None and kind == "PractitionerRole":
        display = (resource.get("practitioner") or {}).get("display")
        name = display if isinstance(display, str) and display.strip() else None
    return name[:256] if name else None
