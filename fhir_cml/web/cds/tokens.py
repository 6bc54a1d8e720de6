"""Verifying bearer JWTs: the EHR's on every CDS Hooks call (CDS Hooks 2.0, "Trusting CDS
Clients"), and the callers' SMART Backend Services access tokens on ``Patient/[id]/$cml-assess``.

One verifier, two policies (:class:`TokenPolicy`). A token is accepted only when all of this
holds, checked in this order (the first failure is the 401's reason):

1. ``Authorization: Bearer <JWS compact>``; header ``alg`` in the policy's algorithms
   (asymmetric only: ``none`` and HMAC can never be configured), ``kid`` present, ``typ``
   present and ``JWT`` (CDS Hooks: "REQUIRED ... Fixed value: JWT"; access tokens may also say
   ``at+jwt``, RFC 9068), no ``crit``.
2. ``iss`` on the policy's allow-list; a ``jku`` header is followed only when that issuer
   lists it (otherwise an attacker could point us at their own keys).
3. The key named by ``kid`` in the issuer's JWK Set (fetched and cached; fetched again,
   at most every ``FHIR_CML_CDS_JWKS_REFRESH_SECONDS``, when a ``kid`` is unknown, so that key
   rotation works), of a type that matches ``alg``, verifies the signature.
4. ``aud`` is the exact URL called (CDS: public base + path; API: the service's FHIR base);
   ``exp`` not passed, ``iat`` not in the future (the policy's leeway of clock skew either way),
   the token lives at most the policy's maximum lifetime; ``sub`` equal to the issuer's
   configured ``sub`` when one is configured; ``jti`` present and at most 256 characters
   (CDS: required; access tokens: when given).
5. CDS only: ``jti`` not seen before from this issuer: the replay cache in the state store,
   shared by every worker, keeps it until the token has expired. (An access token is meant to
   be used for many requests until it expires, so it is not single-use.)

joserfc (already pinned for SMART Backend Services) does the JOSE work: compact parsing,
signature verification for the one allowed algorithm, and the registered claims.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import requests
from joserfc import jws, jwt
from joserfc.errors import (
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import ECKey, Key, KeySet, RSAKey
from joserfc.jwt import JWTClaimsRegistry

from fhir_cml.errors import AuthenticationError
from fhir_cml.state.cds import MAX_JTI, CdsState
from fhir_cml.web.settings import Settings, TrustedIssuer

log = logging.getLogger(__name__)

MAX_TOKEN_BYTES: Final = 16 * 1024
JWKS_TIMEOUT: Final = 2.0  # seconds for a whole JWK Set fetch
JWKS_RETRY_SECONDS: Final = 5.0  # after a failed fetch; doubles with each failure in a row
JWKS_MAX_RETRY_SECONDS: Final = 300.0
MAX_JWKS_BYTES: Final = 256 * 1024
_CURVES: Final = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
MAX_TENANT: Final = 256
CDS_TYPES: Final = ("JWT",)
ACCESS_TOKEN_TYPES: Final = ("JWT", "at+jwt", "application/at+jwt")


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """Who called: the issuer (an EHR on the allow-list) and the token's identifiers."""

    iss: str
    jti: str
    sub: str | None
    tenant: str | None
    claims: dict[str, Any]


@dataclass(slots=True)
class _Entry:
    """What is known of one JWK Set URL: its keys (if ever fetched) and its failures."""

    keys: dict[str, Key] | None = None
    fetched: float = float("-inf")  # monotonic time of the last good fetch
    failures: int = 0  # fetches failed in a row
    retry_at: float = float("-inf")  # no fetch before this (after a failure)
    lock: threading.Lock = field(default_factory=threading.Lock)


class JwksCache:
    """The issuers' public keys by JWK Set URL: fetched on first use, kept ``cache_seconds``.

    - A ``kid`` not in the cached set triggers one refetch, at most every ``refresh_seconds``
      per URL (a stream of tokens with made-up ``kid`` values cannot make us hammer the EHR).
    - A fetch has ``timeout`` seconds in all (connecting and reading); a failed one is not
      tried again for a while that doubles with each failure in a row (``retry_seconds`` up to
      ``max_retry_seconds``): a token naming an issuer whose JWK Set URL hangs or fails costs
      one fetch per backoff, not one per request (and needs no valid signature to cause it).
      Meanwhile the keys already known keep working; without any, the token is refused at once.
    - One fetch per URL at a time; other URLs are not held up by it.
    """

    def __init__(
        self,
        cache_seconds: float,
        refresh_seconds: float,
        *,
        timeout: float = JWKS_TIMEOUT,
        retry_seconds: float = JWKS_RETRY_SECONDS,
        max_retry_seconds: float = JWKS_MAX_RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        get: Callable[..., requests.Response] = requests.get,
    ) -> None:
        self.cache_seconds = cache_seconds
        self.refresh_seconds = refresh_seconds
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self.max_retry_seconds = max_retry_seconds
        self.fetches = 0  # JWK Set fetches tried (tests and logs)
        self._clock = clock
        self._get = get
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def key(self, url: str, kid: str) -> Key:
        """The key ``kid`` of the set at ``url``; AuthenticationError when there is none."""
        with self._lock:
            entry = self._entries.setdefault(url, _Entry())
        with entry.lock:
            if self._wants_fetch(entry, kid):
                self._refresh(url, entry)
            keys = entry.keys
            if keys is None:
                wait = max(0.0, entry.retry_at - self._clock())
                raise AuthenticationError(
                    f"the issuer's JWK Set could not be fetched (next try in {wait:.0f} s)"
                )
            found = keys.get(kid)
        if found is None:
            raise AuthenticationError(f"no key {kid[:64]!r} in the issuer's JWK Set")
        return found

    def _wants_fetch(self, entry: _Entry, kid: str) -> bool:
        now = self._clock()
        if now < entry.retry_at:
            return False  # backing off after a failure
        age = now - entry.fetched
        if entry.keys is None or age >= self.cache_seconds:
            return True
        return kid not in entry.keys and age >= self.refresh_seconds

    def _refresh(self, url: str, entry: _Entry) -> None:
        self.fetches += 1
        try:
            keys = self._fetch(url)
        except (requests.RequestException, ValueError) as err:
            entry.failures += 1
            backoff = min(self.max_retry_seconds, self.retry_seconds * 2 ** (entry.failures - 1))
            entry.retry_at = self._clock() + backoff
            log.warning(
                "JWK Set fetch failed",
                extra={"error": type(err).__name__, "retry_in_s": round(backoff, 1)},
            )
            return
        entry.keys = keys
        entry.fetched = self._clock()
        entry.failures = 0
        entry.retry_at = float("-inf")

    def _fetch(self, url: str) -> dict[str, Key]:
        deadline = time.monotonic() + self.timeout
        response = self._get(
            url,
            timeout=(self.timeout, self.timeout),
            headers={"Accept": "application/json"},
            stream=True,
        )
        return public_keys(json.loads(bounded_body(response, MAX_JWKS_BYTES, deadline)))


def bounded_body(response: requests.Response, limit: int, deadline: float) -> bytes:
    """The body of a streamed 200 response, closed after: ValueError when the status is another,
    the body is over ``limit`` bytes, or it is still arriving at ``deadline`` (monotonic) - a
    server that trickles bytes cannot hold the request longer than that."""
    try:
        if response.status_code != 200:
            raise ValueError(f"HTTP {response.status_code}")
        chunks: list[bytes] = []
        size = 0
        while True:
            # read1: what has arrived (one read of the socket, bounded by its timeout), so the
            # deadline is checked however slowly the bytes come
            chunk = response.raw.read1(16 * 1024, decode_content=True)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise ValueError("answer too large")
            if time.monotonic() > deadline:
                raise ValueError("answer too slow")
            chunks.append(chunk)
    finally:
        response.close()


def public_keys(jwks: Any) -> dict[str, Key]:
    """The RSA and EC signature keys of a JWK Set by ``kid`` (others, and HMAC keys, ignored)."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ValueError("not a JWK Set")
    out: dict[str, Key] = {}
    for item in jwks["keys"]:
        if not isinstance(item, dict) or item.get("kty") not in ("RSA", "EC"):
            continue
        if item.get("use", "sig") != "sig" or not isinstance(item.get("kid"), str):
            continue
        public = {k: v for k, v in item.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
        try:
            key = KeySet.import_key_set({"keys": [public]}).keys[0]
        except (JoseError, ValueError, TypeError):
            continue
        out[item["kid"]] = key
    return out


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """What a bearer JWT must satisfy for one kind of caller (see the module docstring)."""

    issuers: tuple[TrustedIssuer, ...]
    algorithms: tuple[str, ...]
    leeway: int
    max_lifetime: int
    types: tuple[str, ...]  # accepted `typ` values (compared without case)
    single_use: bool  # jti required and remembered in the replay cache

    @classmethod
    def cds(cls, settings: Settings) -> TokenPolicy:
        """The EHR's JWT on CDS Hooks calls: single use, ``typ`` JWT."""
        return cls(
            settings.cds_issuers,
            settings.cds_algorithms,
            settings.cds_leeway,
            settings.cds_max_token_lifetime,
            CDS_TYPES,
            single_use=True,
        )

    @classmethod
    def api(cls, settings: Settings) -> TokenPolicy:
        """Callers' access tokens on the FHIR API: reusable until they expire."""
        return cls(
            settings.api_issuers,
            settings.api_algorithms,
            settings.api_leeway,
            settings.api_max_token_lifetime,
            ACCESS_TOKEN_TYPES,
            single_use=False,
        )

    def issuer(self, iss: str) -> TrustedIssuer | None:
        for issuer in self.issuers:
            if issuer.iss == iss:
                return issuer
        return None


class TokenVerifier:
    """Checks bearer JWTs against a :class:`TokenPolicy`; see the module docstring."""

    def __init__(
        self,
        policy: TokenPolicy,
        state: CdsState,
        jwks: JwksCache,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.state = state
        self.jwks = jwks
        self._now = now
        self._inline = {
            issuer.iss: public_keys(issuer.jwks)
            for issuer in policy.issuers
            if issuer.jwks is not None
        }

    def issues(self, authorization: str | None) -> bool:
        """Whether the bearer token claims to come from one of this policy's issuers (unverified:
        only to choose between verifying it here and asking the authorization server)."""
        try:
            _, unverified = _peek(_bearer(authorization))
        except AuthenticationError:
            return False
        iss = unverified.get("iss")
        return isinstance(iss, str) and self.policy.issuer(iss) is not None

    def verify(self, authorization: str | None, audiences: Sequence[str]) -> VerifiedToken:
        """The verified token, or AuthenticationError saying what is wrong with it."""
        token = _bearer(authorization)
        header, unverified = _peek(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.policy.algorithms:
            raise AuthenticationError(
                f"algorithm {str(alg)[:16]!r} is not accepted (accepted: "
                f"{', '.join(self.policy.algorithms)})"
            )
        typ = header.get("typ")
        named = " or ".join(self.policy.types)
        if typ is None:
            raise AuthenticationError(f"the token header has no typ (it must be {named})")
        if not isinstance(typ, str) or typ.lower() not in {t.lower() for t in self.policy.types}:
            raise AuthenticationError(f"typ must be {named}")
        if "crit" in header:
            raise AuthenticationError("critical header extensions are not supported")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthenticationError("the token header has no kid")
        iss = unverified.get("iss")
        issuer = self.policy.issuer(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise AuthenticationError("the issuer is not on the allow-list")
        key = self._key(issuer, header, kid)
        _check_key(key, alg)
        try:
            claims = jwt.decode(token, key, algorithms=[alg]).claims
        except JoseError:
            raise AuthenticationError("the signature does not verify") from None
        return self._claims(issuer, claims, audiences)

    def _key(self, issuer: TrustedIssuer, header: dict[str, Any], kid: str) -> Key:
        jku = header.get("jku")
        if jku is not None:
            if not isinstance(jku, str) or not issuer.allowed_jku(jku):
                raise AuthenticationError("the jku header names a JWK Set not on the allow-list")
            return self.jwks.key(jku, kid)
        if issuer.jwks_url is not None:
            return self.jwks.key(issuer.jwks_url, kid)
        inline = self._inline.get(issuer.iss, {})
        if kid in inline:
            return inline[kid]
        if issuer.jwks is not None:
            raise AuthenticationError(f"no key {kid[:64]!r} in the issuer's JWK Set")
        raise AuthenticationError("the token has no jku and the issuer has no jwks_url")

    def _claims(
        self, issuer: TrustedIssuer, claims: dict[str, Any], audiences: Sequence[str]
    ) -> VerifiedToken:
        now = int(self._now())
        policy = self.policy
        leeway = policy.leeway
        options: dict[str, Any] = {
            "iss": {"essential": True, "value": issuer.iss},
            "aud": {"essential": True, "values": list(audiences)},
            "exp": {"essential": True},
            "iat": {"essential": True},
            "jti": {"essential": policy.single_use},
        }
        if issuer.sub is not None:
            options["sub"] = {"essential": True, "value": issuer.sub}
        registry = JWTClaimsRegistry(now=now, leeway=leeway, **options)
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise AuthenticationError("the token has expired") from None
        except MissingClaimError as err:
            raise AuthenticationError(f"the token lacks the claim(s) {err.claim}") from None
        except InvalidClaimError as err:
            raise AuthenticationError(_claim_problem(err.claim, audiences)) from None
        exp, iat = claims["exp"], claims["iat"]
        if exp - iat > policy.max_lifetime:
            raise AuthenticationError(
                f"the token lives {int(exp - iat)} s; at most {policy.max_lifetime} s are accepted"
            )
        jti = _jti(claims.get("jti"))
        if policy.single_use:
            expires = datetime.fromtimestamp(float(exp) + leeway, UTC)
            moment = datetime.fromtimestamp(now, UTC)
            if not self.state.remember_jti(issuer.iss, jti, expires, moment):
                raise AuthenticationError("the token has been used before (jti replayed)")
        sub = claims.get("sub")
        tenant = claims.get("tenant")
        if tenant is not None and not (
            isinstance(tenant, str) and len(tenant) <= MAX_TENANT and tenant.isprintable()
        ):
            raise AuthenticationError(
                f"the tenant claim must be text of at most {MAX_TENANT} characters"
            )
        return VerifiedToken(
            issuer.iss,
            jti,
            sub if isinstance(sub, str) else None,
            tenant if isinstance(tenant, str) else None,
            claims,
        )


def _jti(value: Any) -> str:
    """The token id as a string of at most MAX_JTI characters ("" when the token has none)."""
    if value is None:
        return ""
    if not isinstance(value, str) or not value:
        raise AuthenticationError("the jti claim must be a non-empty string")
    if len(value) > MAX_JTI:
        raise AuthenticationError(f"the jti claim is longer than {MAX_JTI} characters")
    if not value.isprintable():  # control characters, lone surrogates
        raise AuthenticationError("the jti claim holds characters that are not text")
    return value


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationError("no Authorization header; a bearer JWT is required")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("the Authorization header is not a Bearer token")
    token = token.strip()
    if len(token) > MAX_TOKEN_BYTES:
        raise AuthenticationError("the bearer token is too large")
    return token


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims before verification (to pick the issuer and key), or 401."""
    try:
        compact = jws.extract_compact(token.encode("ascii"))
        header = dict(compact.protected)
        claims = json.loads(compact.payload)
    except (JoseError, ValueError, TypeError, UnicodeError, RecursionError):
        raise AuthenticationError("the bearer token is not a signed JWT (JWS compact)") from None
    if not isinstance(claims, dict):
        raise AuthenticationError("the token's payload is not a JSON object")
    return header, claims


def _check_key(key: Key, alg: str) -> None:
    """The key must be of the family ``alg`` names (never an HMAC secret made of a public key)."""
    declared = key.get("alg")
    if declared is not None and declared != alg:
        raise AuthenticationError("the key is registered for another algorithm")
    if alg[:2] in ("RS", "PS") and not isinstance(key, RSAKey):
        raise AuthenticationError("the key does not match the algorithm")
    if alg.startswith("ES") and not (isinstance(key, ECKey) and key.get("crv") == _CURVES.get(alg)):
        raise AuthenticationError("the key does not match the algorithm")


def _claim_problem(claim: str, audiences: Sequence[str]) -> str:
    if claim == "aud":
        return f"aud must be the endpoint called ({audiences[0]})"
    if claim == "iat":
        return "iat is in the future"
    if claim == "jti":
        return "the jti claim must be a non-empty string"
    return f"the {claim} claim is not acceptable"
