"""SMART App Launch 2.x as a confidential or public web client: discovery, the authorization code
flow with ``state`` and PKCE (S256), the token exchange and refresh.

authlib's :class:`~authlib.integrations.requests_client.OAuth2Session` builds the authorization
URL (with the S256 ``code_challenge``), posts the token requests and authenticates the client:
``none`` (a public client: the client id in the body), ``client_secret_basic`` with
``FHIR_CML_SMART_CLIENT_SECRET``, or ``private_key_jwt`` with ``FHIR_CML_SMART_PRIVATE_KEY``.
This module adds what SMART asks of an app: endpoints from ``{iss}/.well-known/smart-configuration``,
``aud`` = the FHIR base and the ``launch`` parameter on the authorization request, scopes v2, and
the launch context (``patient``) read from the token response.

The ``id_token`` comes straight from the token endpoint over the back channel, so its claims are
read without checking its signature (OpenID Connect Core 3.1.3.7 allows the TLS connection to
stand for it); its audience, expiry and issuer are checked. The app uses it only to say who
signed in (``fhirUser``), never to decide access: the EHR's FHIR server does that with the
access token.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from fhir_cml.ehr.auth import PrivateKeyAssertion, SigningKey, smart_configuration
from fhir_cml.ehr.client import USER_AGENT, FhirClient, RetryPolicy
from fhir_cml.errors import FhirClientError, FhirTimeoutError
from fhir_cml.web.settings import Settings
from fhir_cml.web.smart.errors import EHR_ADMINISTRATOR, SmartError, sentence

log = logging.getLogger(__name__)

# Read what the page shows, create and update what Accept writes. The write-back searches for
# the suggestions it supersedes, hence `s` on RiskAssessment and CarePlan.
DEFAULT_SCOPES: Final = (
    "openid",
    "fhirUser",
    "patient/Patient.rs",
    "patient/Observation.rs",
    "patient/MedicationStatement.rs",
    "patient/MedicationRequest.rs",
    "patient/Medication.rs",
    "patient/Condition.rs",
    "patient/AdverseEvent.rs",
    "patient/RiskAssessment.cus",
    "patient/CarePlan.cus",
    "patient/Provenance.cu",
)
ID_TOKEN_LEEWAY: Final = timedelta(seconds=60)
FHIR_ID: Final = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
RETRY: Final = RetryPolicy(attempts=1, backoff_factor=0.2, max_retry_after=5.0)
# Client authentication at the token endpoint (RFC 7591 names).
PUBLIC_CLIENT: Final = "none"
SHARED_KEY_CLIENT: Final = "client_secret_basic"


@dataclass(frozen=True, slots=True)
class SmartConfiguration:
    """The parts of ``.well-known/smart-configuration`` the app uses."""

    authorization_endpoint: str
    token_endpoint: str
    issuer: str | None = None
    capabilities: tuple[str, ...] = ()
    code_challenge_methods: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Tokens:
    """A token response, checked: the access token, its expiry, and the launch context."""

    access_token: str
    expires_at: datetime | None
    refresh_token: str | None
    scope: str | None
    patient: str | None
    fhir_user: str | None = None
    as_of: date | None = None


def requested_scope(settings: Settings, *, standalone: bool) -> str:
    """The scopes asked for: an EHR launch asks for ``launch``, a standalone launch for
    ``launch/patient`` (the EHR then lets the user pick the patient); and a refresh token:
    ``online_access`` (SMART v2: renewed while the user is signed in at the EHR, so short-lived
    access tokens outlast a review), or ``offline_access`` when configured instead."""
    scopes = settings.smart_scope.split() if settings.smart_scope else list(DEFAULT_SCOPES)
    scopes = [s for s in scopes if s not in ("launch", "launch/patient")]
    scopes.insert(0, "launch/patient" if standalone else "launch")
    refresh = (
        "offline_access"
        if settings.smart_offline_access
        else "online_access"
        if settings.smart_online_access
        else None
    )
    if refresh is not None and not {"offline_access", "online_access"} & set(scopes):
        scopes.append(refresh)
    return " ".join(scopes)


def discover(iss: str, settings: Settings) -> SmartConfiguration:
    """``{iss}/.well-known/smart-configuration``; SmartError 502/504 when it cannot be had.

    Call only with an ``iss`` from the allow-list.
    """
    client = FhirClient(
        iss, timeout=(settings.fhir_connect_timeout, settings.fhir_timeout), retry=RETRY
    )
    try:
        config = smart_configuration(client)
    except FhirClientError as err:
        raise SmartError(
            504 if isinstance(err, FhirTimeoutError) else 502,
            "The EHR's SMART configuration cannot be read",
            sentence(f"{iss}/.well-known/smart-configuration could not be read: {err.message}"),
            EHR_ADMINISTRATOR,
        ) from None
    finally:
        client.close()
    authorize = _endpoint(config, "authorization_endpoint", iss)
    token = _endpoint(config, "token_endpoint", iss)
    methods = _strings(config.get("code_challenge_methods_supported"))
    if methods and "S256" not in methods:
        raise SmartError(
            502,
            "The EHR does not support PKCE S256",
            f"{iss} supports the PKCE methods {', '.join(methods)} but not S256, which SMART "
            "App Launch 2 requires; the app does not sign in without it.",
            "Tell the EHR's administrator; opening the app again will not help.",
        )
    issuer = config.get("issuer")
    return SmartConfiguration(
        authorize,
        token,
        issuer if isinstance(issuer, str) and issuer else None,
        _strings(config.get("capabilities")),
        methods,
    )


def authorization_url(
    settings: Settings,
    config: SmartConfiguration,
    *,
    iss: str,
    launch: str | None,
    state: str,
    code_verifier: str,
    scope: str,
) -> str:
    """Where to send the browser: the EHR's authorization endpoint with every parameter."""
    assert settings.smart_client_id is not None
    extra = {"aud": iss}
    if launch:
        extra["launch"] = launch
    with OAuth2Session(
        settings.smart_client_id,
        redirect_uri=settings.smart_callback_url,
        scope=scope,
        code_challenge_method="S256",
    ) as session:
        url, _ = session.create_authorization_url(
            config.authorization_endpoint, state=state, code_verifier=code_verifier, **extra
        )
    return str(url)


class TokenEndpoint:
    """The EHR's token endpoint, with this app's client authentication."""

    def __init__(self, settings: Settings, key: SigningKey | None) -> None:
        assert settings.smart_client_id is not None
        self.settings = settings
        self.client_id = settings.smart_client_id
        self.key = key

    def exchange(
        self,
        token_endpoint: str,
        *,
        code: str,
        code_verifier: str | None,
        now: datetime,
        issuer: str | None = None,
    ) -> Tokens:
        """Trades the authorization code (and the PKCE verifier) for tokens; ``issuer`` is the
        OpenID issuer the id_token must name, when the EHR advertises one."""
        extra = {"code_verifier": code_verifier} if code_verifier else {}
        return self._call(
            token_endpoint,
            now,
            issuer,
            lambda session: session.fetch_token(
                token_endpoint,
                grant_type="authorization_code",
                code=code,
                redirect_uri=self.settings.smart_callback_url,
                timeout=self._timeout,
                **extra,
            ),
            identity=True,
        )

    def refresh(self, token_endpoint: str, *, refresh_token: str, now: datetime) -> Tokens:
        """A new access token from the refresh token; the old refresh token is kept when the
        EHR sends no new one. Who signed in was read at sign-in: an id_token here is ignored."""
        tokens = self._call(
            token_endpoint,
            now,
            None,
            lambda session: session.refresh_token(
                token_endpoint, refresh_token=refresh_token, timeout=self._timeout
            ),
        )
        if tokens.refresh_token is None:
            tokens = Tokens(
                tokens.access_token,
                tokens.expires_at,
                refresh_token,
                tokens.scope,
                tokens.patient,
                tokens.fhir_user,
                tokens.as_of,
            )
        return tokens

    @property
    def _timeout(self) -> tuple[float, float]:
        return (self.settings.fhir_connect_timeout, self.settings.fhir_timeout)

    def _session(self, token_endpoint: str) -> OAuth2Session:
        if self.key is not None:
            session = OAuth2Session(
                self.client_id, self.key.key, token_endpoint_auth_method=PrivateKeyAssertion.name
            )
            session.register_client_auth_method(PrivateKeyAssertion(token_endpoint, self.key))
        elif self.settings.smart_client_secret is not None:
            session = OAuth2Session(
                self.client_id,
                self.settings.smart_client_secret.get_secret_value(),
                token_endpoint_auth_method=SHARED_KEY_CLIENT,
            )
        else:
            session = OAuth2Session(self.client_id, token_endpoint_auth_method=PUBLIC_CLIENT)
        session.headers["User-Agent"] = USER_AGENT
        return session

    def _call(
        self,
        token_endpoint: str,
        now: datetime,
        issuer: str | None,
        request: Any,
        identity: bool = False,
    ) -> Tokens:
        session = self._session(token_endpoint)
        try:
            body = request(session)
        except OAuthError as err:
            detail = ": ".join(str(p) for p in (err.error, err.description) if p)
            log.warning("the token endpoint refused the request", extra={"oauth_error": err.error})
            raise SmartError(
                403,
                "The EHR refused the sign-in",
                f"The EHR's authorization server refused to issue a token "
                f"({detail or 'no reason given'}).",
                "Open the app again from the EHR; if it happens again, tell the EHR's "
                "administrator.",
            ) from None
        except requests.Timeout:
            raise SmartError(
                504,
                "The EHR did not answer",
                f"The EHR's token endpoint ({_origin(token_endpoint)}) did not answer in time.",
                EHR_ADMINISTRATOR,
            ) from None
        except (requests.RequestException, ValueError) as err:
            raise SmartError(
                502,
                "The EHR's answer could not be used",
                f"The token request to {_origin(token_endpoint)} failed ({type(err).__name__}).",
                EHR_ADMINISTRATOR,
            ) from None
        finally:
            session.close()
        return self._tokens(dict(body), now, issuer, identity)

    def _tokens(
        self, body: dict[str, Any], now: datetime, issuer: str | None, identity: bool
    ) -> Tokens:
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            raise _bad_answer("it holds no access_token")
        if str(body.get("token_type", "")).lower() != "bearer":
            raise _bad_answer(f"the token type is {body.get('token_type')!r}, not Bearer")
        expires_in = body.get("expires_in")
        expires_at = (
            now + timedelta(seconds=float(expires_in))
            if isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
            else None
        )
        patient = body.get("patient")
        if patient is not None and not (isinstance(patient, str) and FHIR_ID.match(patient)):
            raise _bad_answer("its patient is not a FHIR id")
        refresh = body.get("refresh_token")
        scope = body.get("scope")
        id_token = body.get("id_token")
        fhir_user = None
        if identity and isinstance(id_token, str) and id_token:
            claims = self.id_token_claims(id_token, now, issuer)
            user = claims.get("fhirUser")
            fhir_user = user if isinstance(user, str) and user else None
        return Tokens(
            access,
            expires_at,
            refresh if isinstance(refresh, str) and refresh else None,
            scope if isinstance(scope, str) else None,
            patient,
            fhir_user,
            _as_of(body.get("appContext")),
        )

    def id_token_claims(
        self, id_token: str, now: datetime, issuer: str | None = None
    ) -> dict[str, Any]:
        """The claims of an id_token from the token endpoint: audience, expiry and (when the
        EHR names its issuer) issuer checked."""
        parts = id_token.split(".")
        try:
            if len(parts) != 3:
                raise ValueError("not a compact JWS")
            padded = parts[1] + "=" * (-len(parts[1]) % 4)
            claims = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            if not isinstance(claims, dict):
                raise ValueError("claims are not an object")
        except (ValueError, UnicodeError):
            raise _bad_answer("its id_token cannot be read") from None
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        expiry = claims.get("exp")
        problems = []
        if self.client_id not in audiences:
            problems.append("it is meant for another client")
        if (
            not isinstance(expiry, int | float)
            or datetime.fromtimestamp(float(expiry), now.tzinfo) < now - ID_TOKEN_LEEWAY
        ):
            problems.append("it has expired")
        if issuer is not None and claims.get("iss") != issuer:
            problems.append("it was issued by another server")
        if problems:
            raise SmartError(
                403,
                "The EHR's identity token is not valid",
                f"The id_token from the EHR cannot be accepted: {' and '.join(problems)}.",
                "Open the app again from the EHR.",
            )
        return claims


def _endpoint(config: dict[str, Any], name: str, iss: str) -> str:
    value = config.get(name)
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise SmartError(
            502,
            "The EHR's SMART configuration is incomplete",
            f"{iss}/.well-known/smart-configuration gives no usable {name}.",
            "Tell the EHR's administrator; opening the app again will not help.",
        )
    assert isinstance(value, str)
    return value


def _as_of(app_context: Any) -> date | None:
    """``asOf`` from the launch's ``appContext`` (the CDS card that opened the app sets it)."""
    if not isinstance(app_context, str):
        return None
    try:
        context = json.loads(app_context)
        value = context.get("asOf") if isinstance(context, dict) else None
        return date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else None
    except ValueError:
        return None


def _bad_answer(why: str) -> SmartError:
    return SmartError(
        502,
        "The EHR's answer could not be used",
        f"The token response from the EHR cannot be used: {why}.",
        "Tell the EHR's administrator; the app cannot continue without it.",
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()
