"""SMART Backend Services: access tokens for unattended runs (the nightly sync, bulk export).

The client authenticates to the EHR's token endpoint with ``client_credentials`` and a
``private_key_jwt`` assertion signed by its own key (RS384 or ES384; the EHR holds the public
half, registered out of band or from a JWKS URL). authlib builds and signs the assertion
(``iss`` = ``sub`` = client id, ``aud`` = the token URL, a fresh ``jti``, ``exp`` five minutes
ahead, as the SMART specification allows at most) and posts the request; this module adds the
parts a long run needs:

- the token is cached and shared by every thread, and fetched again ``leeway`` seconds before it
  expires (and once more when the FHIR server answers 401 anyway: a token can be revoked early);
- the token endpoint is found from ``{base}/.well-known/smart-configuration`` (or the
  ``oauth-uris`` extension of ``/metadata``), and the server's advertised authentication
  methods and signing algorithms are checked before the first request, so a mismatch is a clear
  start-up error rather than a 401 in the middle of the night.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc7523.assertion import private_key_jwt_sign
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, Key, KeySet, RSAKey

from fhir_cml.ehr.client import USER_AGENT, BearerToken, FhirClient
from fhir_cml.errors import ConfigurationError, FhirClientError, TokenError

log = logging.getLogger(__name__)

ASSERTION_LIFETIME = 300  # seconds; SMART Backend Services: "no more than five minutes"
SUPPORTED_ALGS = ("RS384", "ES384", "RS256", "ES256", "RS512", "ES512")
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
# Read what fhir-cml reads, create and update what it writes (SMART v2 scopes).
DEFAULT_SCOPE = " ".join(
    [
        "system/Patient.rs",
        "system/Group.rs",
        "system/Condition.rs",
        "system/Observation.rs",
        "system/MedicationStatement.rs",
        "system/MedicationRequest.rs",
        "system/Medication.rs",
        "system/AdverseEvent.rs",
        "system/RiskAssessment.crus",
        "system/CarePlan.crus",
        "system/Provenance.crs",
    ]
)


@dataclass(frozen=True, slots=True)
class SigningKey:
    """The client's private key, the algorithm it signs with and the ``kid`` the EHR knows."""

    key: Key
    alg: str
    kid: str


@dataclass(frozen=True, slots=True)
class SmartConfiguration:
    """What the authorization server says about itself (the parts a backend client uses)."""

    token_endpoint: str
    auth_methods: tuple[str, ...] = ()
    signing_algs: tuple[str, ...] = ()
    scopes_supported: tuple[str, ...] = ()

    def check(self, alg: str) -> None:
        """Raises ConfigurationError when the server says it cannot take our assertion."""
        if self.auth_methods and "private_key_jwt" not in self.auth_methods:
            raise ConfigurationError(
                "the authorization server does not accept private_key_jwt client "
                f"authentication (it offers: {', '.join(self.auth_methods)})"
            )
        if self.signing_algs and alg not in self.signing_algs:
            raise ConfigurationError(
                f"the authorization server does not accept {alg} assertions (it accepts: "
                f"{', '.join(self.signing_algs)}); use a key of one of those types"
            )


def load_signing_key(path: Path, *, kid: str | None = None, alg: str | None = None) -> SigningKey:
    """Reads a private key: PEM (RSA or EC), a private JWK, or a JWKS (the entry ``kid`` names).

    The algorithm follows the key unless given: RSA signs RS384, EC P-384 ES384 (what SMART
    requires servers to support). Without a ``kid`` the JWK's own ``kid`` or its RFC 7638
    thumbprint is used.
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigurationError(f"cannot read the private key {path}: {err.strerror}") from None
    try:
        key = _import_key(data, kid)
    except (JoseError, ValueError, TypeError) as err:
        raise ConfigurationError(
            f"{path} is not a private key in PEM or JWK form ({type(err).__name__})"
        ) from None
    if not key.is_private:
        raise ConfigurationError(f"{path} holds a public key; the private key is needed to sign")
    chosen = alg or _default_alg(key)
    if chosen not in SUPPORTED_ALGS:
        raise ConfigurationError(f"unsupported signing algorithm {chosen}")
    if chosen.startswith("RS") != isinstance(key, RSAKey):
        raise ConfigurationError(f"a {key.key_type} key cannot sign {chosen}")
    return SigningKey(key, chosen, kid or key.kid or key.thumbprint())


def smart_configuration(client: FhirClient) -> dict[str, Any]:
    """The JSON object at ``{base}/.well-known/smart-configuration``; FhirClientError if none."""
    response = client.request(
        "GET",
        ".well-known/smart-configuration",
        headers={"Accept": "application/json"},
        auth=False,
    )
    return client.json(response, "SMART configuration")


def discover(client: FhirClient) -> SmartConfiguration:
    """The token endpoint and capabilities from ``.well-known/smart-configuration``.

    Falls back to the ``oauth-uris`` extension of the CapabilityStatement for older servers.
    """
    try:
        config = smart_configuration(client)
    except FhirClientError as err:
        log.info("no .well-known/smart-configuration (%s); trying /metadata", err.status)
        return _from_metadata(client)
    endpoint = config.get("token_endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise ConfigurationError(
            f"{client.base_url}/.well-known/smart-configuration names no token_endpoint"
        )
    return SmartConfiguration(
        endpoint,
        _strings(config.get("token_endpoint_auth_methods_supported")),
        _strings(config.get("token_endpoint_auth_signing_alg_values_supported")),
        _strings(config.get("scopes_supported")),
    )


class SmartBackendAuth(requests.auth.AuthBase):
    """``requests`` auth that adds a SMART Backend Services bearer token, renewed as needed.

    Thread-safe: one token for all threads, fetched under a lock.
    """

    def __init__(
        self,
        client_id: str,
        key: SigningKey,
        token_url: str,
        *,
        scope: str = DEFAULT_SCOPE,
        leeway: float = 60.0,
        timeout: tuple[float, float] = (10.0, 30.0),
        attempts: int = 3,
    ) -> None:
        self.client_id = client_id
        self.key = key
        self.token_url = token_url
        self.scope = scope
        self.leeway = leeway
        self.timeout = timeout
        self.attempts = attempts
        self.fetched = 0  # how many tokens were fetched (for tests and logs)
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request

    def token(self) -> str:
        """A valid access token: the cached one, or a new one when it is about to expire."""
        with self._lock:
            if self._token is None or time.time() >= self._expires_at - self.leeway:
                self._fetch()
            assert self._token is not None
            return self._token

    def renew(self) -> None:
        """Forgets the cached token (the server refused it); the next request fetches one."""
        with self._lock:
            self._token = None

    def _fetch(self) -> None:
        last: Exception | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                token = self._request_token()
            except TokenError as err:
                if not err.status or err.status < 500:
                    raise
                last = err
            except requests.RequestException as err:
                last = err
            else:
                self._store(token)
                return
            if attempt < self.attempts:
                time.sleep(min(2.0**attempt, 10.0))
        message = str(last) if isinstance(last, TokenError) else type(last).__name__
        raise TokenError(
            f"no access token from {self.token_url} after {self.attempts} attempts ({message})",
            status=502,
            code="login",
            url=self.token_url,
        )

    def _request_token(self) -> dict[str, Any]:
        with OAuth2Session(
            self.client_id,
            self.key.key,
            token_endpoint_auth_method=PrivateKeyAssertion.name,
            scope=self.scope,
        ) as session:
            session.headers["User-Agent"] = USER_AGENT
            session.register_client_auth_method(PrivateKeyAssertion(self.token_url, self.key))
            try:
                token: dict[str, Any] = session.fetch_token(
                    self.token_url, grant_type="client_credentials", timeout=self.timeout
                )
            except requests.RequestException:
                raise
            except Exception as err:  # authlib's OAuthError, or a body that is not JSON
                error = getattr(err, "error", None)
                description = getattr(err, "description", None)
                detail = ": ".join(str(p) for p in (error, description) if p) or str(err)
                raise TokenError(
                    f"the token endpoint refused the request: {detail}",
                    status=401 if error else 502,
                    code="login",
                    url=self.token_url,
                ) from None
        return token

    def _store(self, token: dict[str, Any]) -> None:
        access = token.get("access_token")
        if not isinstance(access, str) or not access:
            raise TokenError("the token response has no access_token", url=self.token_url)
        if str(token.get("token_type", "bearer")).lower() != "bearer":
            raise TokenError(
                f"unsupported token_type {token.get('token_type')!r}", url=self.token_url
            )
        expires_at = token.get("expires_at")
        if not isinstance(expires_at, int | float):
            expires_in = token.get("expires_in")
            expires_at = time.time() + (
                float(expires_in) if isinstance(expires_in, int | float) else 300.0
            )
        self._token = access
        self._expires_at = float(expires_at)
        self.fetched += 1
        log.info("access token obtained (valid %.0fs)", self._expires_at - time.time())


class PrivateKeyAssertion(PrivateKeyJWT):  # type: ignore[misc]
    """authlib's private_key_jwt with SMART's header (``kid``, ``typ``) and a 5-minute ``exp``."""

    name = "private_key_jwt"

    def __init__(self, token_endpoint: str, key: SigningKey) -> None:
        super().__init__(token_endpoint, headers={"kid": key.kid, "typ": "JWT"}, alg=key.alg)

    def sign(self, auth: Any, token_endpoint: str) -> str:
        signed: str = private_key_jwt_sign(
            auth.client_secret,
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            header=dict(self.headers),
            alg=self.alg,
            expires_in=ASSERTION_LIFETIME,
        )
        return signed


def _import_key(data: bytes, kid: str | None) -> Key:
    text = data.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        value = json.loads(text)
        if isinstance(value, dict) and isinstance(value.get("keys"), list):
            keys = KeySet.import_key_set(value)  # type: ignore[arg-type]
            private = [k for k in keys if k.is_private and (kid is None or k.kid == kid)]
            if not private:
                raise ValueError("no private key (with that kid) in the JWKS")
            return private[0]
        return JWKRegistry.import_key(value)
    try:
        return RSAKey.import_key(data)
    except (JoseError, ValueError, TypeError):
        return ECKey.import_key(data)


def _default_alg(key: Key) -> str:
    if isinstance(key, RSAKey):
        return "RS384"
    if isinstance(key, ECKey):
        curve = key.curve_name
        return {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}.get(curve, "ES384")
    raise ValueError(f"a {key.key_type} key cannot sign SMART assertions")


def _from_metadata(client: FhirClient) -> SmartConfiguration:
    try:
        response = client.request("GET", "metadata", auth=False)
        capability = client.json(response, "CapabilityStatement")
    except FhirClientError as err:
        raise ConfigurationError(
            f"cannot discover the token endpoint of {client.base_url}: {err.message}; "
            "give it with --token-url"
        ) from None
    for rest in capability.get("rest") or []:
        for ext in (rest.get("security") or {}).get("extension") or []:
            if ext.get("url") != OAUTH_URIS:
                continue
            for item in ext.get("extension") or []:
                if item.get("url") == "token" and item.get("valueUri"):
                    return SmartConfiguration(str(item["valueUri"]))
    raise ConfigurationError(
        f"{client.base_url} advertises no token endpoint (neither "
        ".well-known/smart-configuration nor the oauth-uris extension); give it with --token-url"
    )


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def server_credentials(
    client: FhirClient,
    *,
    token: str | None,
    client_id: str | None,
    key: SigningKey | None,
    token_url: str | None,
    scope: str,
) -> requests.auth.AuthBase | None:
    """How fhir-cml authenticates to an EHR: a fixed bearer token, SMART Backend Services, or none.

    The batch job and the service both call this, so the two faces cannot differ in how a token
    endpoint is found or which algorithms are accepted. Without ``token_url`` the endpoint comes
    from SMART discovery, and the server must accept the key's algorithm.
    """
    if token:
        return BearerToken(token)
    if key is None or not client_id:
        return None
    if token_url is None:
        config = discover(client)
        config.check(key.alg)
        token_url = config.token_endpoint
    return SmartBackendAuth(client_id, key, token_url, scope=scope)
