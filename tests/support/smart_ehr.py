"""A test authorization server that behaves like an EHR's, for the SMART app's tests.

authlib's OAuth 2.0 server on Flask, on a loopback port in a thread:

- ``GET /authorize``: the authorization code flow. It signs in (auto-approves) a configured
  user, requires ``aud`` = the FHIR base, turns an EHR ``launch`` (made by :meth:`launch`) into
  its patient, or for a standalone launch (scope ``launch/patient``) "picks" a configured
  patient, and requires PKCE with S256 (no challenge, or another method, is refused).
- ``POST /token``: code (the PKCE verifier is checked: missing or wrong is refused) and
  refresh token grants; the response carries ``patient``, ``need_patient_banner`` and, with
  ``openid``, an ``id_token`` with ``fhirUser`` (absolute, or relative to the FHIR base with
  ``relative_fhir_user``). As real servers do, a refresh token comes only with
  ``online_access`` or ``offline_access``, and an ``online_access`` one is refused once the user
  has signed out of the EHR (``user_online = False``).
- ``GET /frame``: a page of the EHR that shows the app in an iframe (``?src=<launch URL>``), as
  EHRs that embed SMART apps do; served on any address the server listens on, so a test can
  open it on another origin (``localhost`` against the app's ``127.0.0.1``).
- ``POST /introspect``: RFC 7662 for the FHIR server (HTTP Basic as the client
  ``fhir-server``): ``active``, ``scope``, ``client_id``, ``sub``, ``patient``, ``exp``.

The test FHIR server advertises ``/authorize`` and ``/token`` in its
``.well-known/smart-configuration`` (``--smart-authorize-url``, ``--smart-token-url``) and checks
every bearer token here. Knobs let security tests make the EHR misbehave (``bind_tokens_to``: the
token's patient differs from the launch context).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    InvalidRequestError,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Flask, jsonify, request
from joserfc import jwt
from joserfc.jwk import RSAKey
from markupsafe import escape
from werkzeug.serving import BaseWSGIServer, make_server

RESOURCE_SERVER = "fhir-server"
RESOURCE_SECRET = "fhir-server-secret"
USER = "Practitioner/dr-hema"


@dataclass
class Client(ClientMixin):
    """A registered app: public (no secret: PKCE and the client id) or with a shared secret."""

    client_id: str
    redirect_uris: list[str]
    client_secret: str | None = None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return scope

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and hmac.compare_digest(
            client_secret, self.client_secret
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint == "token":
            return method == ("client_secret_basic" if self.client_secret else "none")
        return method == "client_secret_basic" and self.client_secret is not None

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class Code(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    patient: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Token(TokenMixin):
    access_token: str
    refresh_token: str | None
    client_id: str
    scope: str
    user: str | None
    patient: str | None
    issued_at: float
    expires_in: int
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> str | None:
        return self.user

    def get_client(self) -> None:
        return None


class S256Required(CodeChallenge):
    """PKCE as SMART App Launch 2 requires it: S256 only, for every client, on both legs."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 (authlib's attribute)

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge': PKCE with S256 is required.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256.")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier': PKCE with S256 is required.")
        super().validate_code_verifier(grant, result)


@dataclass
class TestEhr:
    """The authorization server's state and its knobs; ``url`` once it is serving."""

    fhir_base: str = ""
    url: str = ""
    standalone_patient: str | None = None
    bind_tokens_to: str | None = None  # introspection says this patient, whatever the context
    access_lifetime: int = 3600
    issue_refresh_tokens: bool = True
    app_context: str | None = None  # sent as the token response's appContext
    user: str = USER
    relative_fhir_user: bool = False  # fhirUser as "Practitioner/x" rather than an absolute URL
    user_online: bool = True  # signed in at the EHR: online_access refresh tokens work
    clients: dict[str, Client] = field(default_factory=dict)
    launches: dict[str, str] = field(default_factory=dict)
    codes: dict[str, Code] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048))

    def register(
        self, client_id: str, redirect_uri: str, client_secret: str | None = None
    ) -> Client:
        client = self.clients.get(client_id)
        if client is None:
            client = Client(client_id, [], client_secret)
            self.clients[client_id] = client
        if redirect_uri not in client.redirect_uris:
            client.redirect_uris.append(redirect_uri)
        return client

    def launch(self, patient_id: str) -> str:
        """An EHR launch context for a patient: the ``launch`` value the EHR sends the app."""
        value = secrets.token_urlsafe(16)
        self.launches[value] = patient_id
        return value

    def admin_token(self) -> str:
        """A token without patient binding, for tests to read the FHIR server."""
        value = "admin-" + secrets.token_urlsafe(8)
        self.tokens[value] = Token(
            value, None, "test", "system/*.rs", None, None, time.time(), 3600
        )
        return value

    def reset(self) -> None:
        self.launches.clear()
        self.codes.clear()
        self.tokens.clear()
        self.token_requests.clear()
        self.bind_tokens_to = None
        self.standalone_patient = None
        self.access_lifetime = 3600
        self.issue_refresh_tokens = True
        self.app_context = None
        self.user = USER
        self.relative_fhir_user = False
        self.user_online = True

    # --- the Flask app -----------------------------------------------------------------------

    def app(self) -> Flask:
        app = Flask("test-ehr-authorization")
        app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True
        server = AuthorizationServer(app, query_client=self.clients.get, save_token=self._save)
        ehr = self

        class CodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic"]  # noqa: RUF012

            def save_authorization_code(self, code: str, req: Any) -> Code:
                data = req.payload.data
                item = Code(
                    code,
                    req.client.client_id,
                    req.payload.redirect_uri,
                    req.scope,
                    ehr.user,
                    getattr(req, "smart_patient", None),
                    data.get("code_challenge"),
                    data.get("code_challenge_method"),
                    time.time() + 300,
                )
                ehr.codes[code] = item
                return item

            def query_authorization_code(self, code: str, client: Client) -> Code | None:
                item = ehr.codes.get(code)
                if item and item.client_id == client.client_id and item.expires_at > time.time():
                    return item
                return None

            def delete_authorization_code(self, authorization_code: Code) -> None:
                ehr.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: Code) -> str:
                return authorization_code.user

        class RefreshGrant(grants.RefreshTokenGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic"]  # noqa: RUF012
            INCLUDE_NEW_REFRESH_TOKEN = True

            def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
                for token in ehr.tokens.values():
                    if token.refresh_token == refresh_token and not token.revoked:
                        scopes = token.scope.split()
                        if "offline_access" not in scopes and not ehr.user_online:
                            return None  # online access ends with the user's EHR session
                        return token
                return None

            def authenticate_user(self, credential: Token) -> str | None:
                return credential.user

            def revoke_old_credential(self, refresh_token: Token) -> None:
                refresh_token.revoked = True

        class Introspection(IntrospectionEndpoint):
            CLIENT_AUTH_METHODS = ["client_secret_basic"]  # noqa: RUF012

            def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
                return ehr.tokens.get(token_string)

            def introspect_token(self, token: Token) -> dict[str, Any]:
                body: dict[str, Any] = {
                    "active": True,
                    "client_id": token.client_id,
                    "scope": token.scope,
                    "token_type": "Bearer",
                    "exp": int(token.issued_at + token.expires_in),
                    "iat": int(token.issued_at),
                }
                if token.user:
                    body["sub"] = token.user
                if token.patient:
                    body["patient"] = token.patient
                return body

            def check_permission(self, token: Token, client: Client, req: Any) -> bool:
                return client.client_id == RESOURCE_SERVER

        self.clients.setdefault(RESOURCE_SERVER, Client(RESOURCE_SERVER, [], RESOURCE_SECRET))
        server.register_grant(CodeGrant, [S256Required(required=True), self._smart_context])
        server.register_grant(RefreshGrant)
        server.register_endpoint(Introspection)

        @app.get("/authorize")
        def authorize() -> Any:
            req = server.create_oauth2_request(None)
            try:
                grant = server.get_authorization_grant(req)
            except Exception as err:  # an unsupported response type: the EHR's error page
                return jsonify(error="unsupported_response_type", error_description=str(err)), 400
            return server.create_authorization_response(req, grant_user=ehr.user, grant=grant)

        @app.post("/token")
        def token() -> Any:
            ehr.token_requests.append(dict(request.form))
            return server.create_token_response()

        @app.post("/introspect")
        def introspect() -> Any:
            return server.create_endpoint_response(Introspection.ENDPOINT_NAME)

        @app.get("/frame")
        def frame() -> Any:
            src = escape(request.args.get("src", ""))
            return (
                "<!doctype html><html><head><title>Test EHR</title></head><body>"
                "<h1>Test EHR: patient chart</h1>"
                f'<iframe id="app" src="{src}" width="1200" height="900"></iframe>'
                "</body></html>"
            )

        return app

    def _smart_context(self, grant: Any) -> None:
        """SMART's part of the authorization request: ``aud`` and the launch context."""

        def check(grant: Any, redirect_uri: str) -> None:
            data = grant.request.payload.data
            if data.get("aud") != self.fhir_base:
                raise InvalidRequestError(f"'aud' must be the FHIR base {self.fhir_base}.")
            scopes = (grant.request.payload.scope or "").split()
            if "launch" in scopes:
                patient = self.launches.get(data.get("launch") or "")
                if patient is None:
                    raise InvalidRequestError("Unknown or missing 'launch' context.")
            elif "launch/patient" in scopes:
                patient = self.standalone_patient
                if patient is None:
                    raise InvalidRequestError("No patient was picked.")
            else:
                patient = None
            grant.request.smart_patient = patient

        grant.register_hook("after_validate_authorization_request_payload", check)

    def _save(self, token: dict[str, Any], req: Any) -> None:
        """Records a token and adds SMART's launch context to the response (same dict)."""
        source = req.authorization_code or req.refresh_token
        patient = source.patient if source is not None else None
        scope = str(token.get("scope") or "")
        wants_refresh = {"online_access", "offline_access"} & set(scope.split())
        if not self.issue_refresh_tokens or not wants_refresh:
            token.pop("refresh_token", None)
        token["expires_in"] = self.access_lifetime
        self.tokens[token["access_token"]] = Token(
            token["access_token"],
            token.get("refresh_token"),
            req.client.client_id,
            scope,
            self.user,
            self.bind_tokens_to or patient,
            time.time(),
            self.access_lifetime,
        )
        if patient:
            token["patient"] = patient
        token["need_patient_banner"] = True
        if self.app_context is not None:
            token["appContext"] = self.app_context
        if "openid" in scope.split():
            now = int(time.time())
            claims = {
                "iss": self.url,
                "sub": self.user,
                "aud": req.client.client_id,
                "iat": now,
                "exp": now + 300,
                "fhirUser": self.user
                if self.relative_fhir_user
                else f"{self.fhir_base}/{self.user}",
            }
            token["id_token"] = jwt.encode({"alg": "RS256"}, claims, self.key)


@contextmanager
def running(ehr: TestEhr) -> Iterator[TestEhr]:
    """Serves the authorization server on a loopback port in a thread while in the block."""
    server: BaseWSGIServer = make_server("127.0.0.1", 0, ehr.app(), threaded=True)
    ehr.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ehr
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
