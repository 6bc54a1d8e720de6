"""Who may call ``Patient/[id]/$cml-assess``, and for which patients.

The operation reads a patient's record from the EHR with the service's own credentials (and
with ``writeBack=true`` writes to it), so the caller must prove who they are and what the EHR
lets them do. Two ways, either or both:

- **JWT access tokens** (SMART Backend Services, RFC 9068) from an authorization server on
  ``FHIR_CML_API_ISSUERS``: verified here with the CDS Hooks verifier
  (:mod:`fhir_cml.web.cds.tokens`), ``aud`` = this service's FHIR base (``{public base}/fhir``).
- **Token introspection** (RFC 7662) at ``FHIR_CML_API_INTROSPECTION_URL``: for opaque tokens,
  or JWTs from another issuer. The answer must say ``active``; an ``exp`` must not have passed;
  an ``aud``, when given, must name this service's FHIR base. Answers are cached for
  ``FHIR_CML_API_INTROSPECTION_CACHE_SECONDS`` (never past the token's ``exp``), keyed by the
  token's SHA-256.

The scopes (``scope``, or ``scp``) decide, before anything is read from the EHR (so a refusal
says nothing about whether the patient exists):

- **reading** a patient: ``r`` on Patient and ``rs`` on each type the operation reads
  (Condition, Observation, MedicationStatement, Medication, AdverseEvent, ...: the types
  :data:`fhir_cml.ehr.fetch.INPUT_TYPES` names, plus Medication), as ``system/`` scopes, or as
  ``patient/`` scopes when the token's ``patient`` is that patient. v1 ``.read`` counts as
  ``rs`` and ``*`` as any type;
- **writeBack**: besides reading, ``cus`` on RiskAssessment and CarePlan (the suggestions are
  created, and a superseded one is found and updated) and ``c`` on Provenance.

``user/`` scopes are not enough: they mean "what this user may see", which only the EHR can
check, and the service reads with its own credentials. Scopes narrowed by a query
(``system/Observation.rs?category=laboratory``) are not enough either: the operation reads the
whole CML record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import requests

from fhir_cml.ehr.fetch import INPUT_TYPES
from fhir_cml.errors import AuthenticationError, ForbiddenError, RequestError
from fhir_cml.state.cds import CdsState
from fhir_cml.web import scopes
from fhir_cml.web.cds.tokens import (
    JwksCache,
    TokenPolicy,
    TokenVerifier,
    VerifiedToken,
    bounded_body,
)
from fhir_cml.web.settings import Settings, env_name

log = logging.getLogger(__name__)

__all__ = ["READ_NEEDS", "WRITE_NEEDS", "Caller", "Callers"]

# What a caller must be allowed to do on each type (letters of SMART v2 "cruds").
READ_NEEDS: Final = {
    "Patient": "r",
    **{t: "rs" for t in INPUT_TYPES if t != "Patient"},
    "Medication": "rs",
}
WRITE_NEEDS: Final = {"RiskAssessment": "cus", "CarePlan": "cus", "Provenance": "c"}
MAX_INTROSPECTION_BYTES: Final = 64 * 1024
CACHE_SIZE: Final = 4096
NEGATIVE_SECONDS: Final = 5.0  # an inactive token is not asked about again this soon
REALM: Final = 'Bearer realm="fhir-cml"'


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: who issued the token, to whom, and what it allows."""

    issuer: str | None
    client: str | None
    scopes: tuple[scopes.Scope, ...]
    patient: str | None = None
    expires_at: float | None = None  # epoch seconds

    def missing(self, patient_id: str, *, write: bool) -> list[str]:
        """The scopes this caller lacks for reading (and writing) ``patient_id``."""
        needs = {**READ_NEEDS, **(WRITE_NEEDS if write else {})}
        if self.patient is not None and self.patient == patient_id:
            return scopes.missing(self.scopes, needs, "patient", also=("system",))
        return scopes.missing(self.scopes, needs, "system")


class Callers:
    """Authenticates callers of the FHIR API and checks their scopes (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        state: CdsState,
        jwks: JwksCache,
        *,
        post: Callable[..., requests.Response] = requests.post,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.verifier = TokenVerifier(TokenPolicy.api(settings), state, jwks, now=clock)
        self._post = post
        self._clock = clock
        self._cache: OrderedDict[str, tuple[Caller | None, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.settings.api_callers_configured

    def off(self) -> RequestError:
        """The answer while no way to authenticate callers is configured."""
        return RequestError(
            "Patient/[id]/$cml-assess is off: it reads the EHR with this service's credentials, "
            "so it needs authenticated callers. Enable it with "
            f"{env_name('api_issuers')} (authorization servers whose JWT access tokens are "
            f"accepted, audience {self.settings.fhir_api_base}) or "
            f"{env_name('api_introspection_url')} (the EHR's token introspection endpoint). "
            "POST /fhir/$cml-assess with the patient's data in the body needs neither.",
            status=403,
            code="forbidden",
        )

    def authenticate(self, authorization: str | None) -> Caller:
        """The caller, or AuthenticationError (401) saying what is wrong with the token."""
        if not authorization:
            raise _unauthenticated("no Authorization header; send a bearer access token")
        if self.verifier.issues(authorization) or self.settings.api_introspection_url is None:
            try:
                verified = self.verifier.verify(authorization, [self.settings.fhir_api_base])
            except AuthenticationError as err:
                raise _unauthenticated(err.message, invalid=True) from None
            return _from_jwt(verified)
        return self._introspected(authorization)

    def authorize(self, caller: Caller, patient_id: str, *, write: bool) -> None:
        """ForbiddenError (403) naming the scopes missing for this patient (and writing)."""
        needed = caller.missing(patient_id, write=write)
        if not needed:
            return
        if caller.patient is not None and caller.patient != patient_id:
            why = "the token is for another patient"
        else:
            why = "the token's scopes do not allow " + (
                "reading and writing back this patient's CML record"
                if write
                else "reading this patient's CML record"
            )
        raise ForbiddenError(
            f"Forbidden: {why}; needed: {' '.join(needed)}.",
            challenge=f'{REALM}, error="insufficient_scope", scope="{" ".join(needed)}"',
        )

    # --- introspection ------------------------------------------------------------------------

    def _introspected(self, authorization: str) -> Caller:
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthenticated("the Authorization header is not a Bearer token", invalid=True)
        if len(token) > 16 * 1024:
            raise _unauthenticated("the bearer token is too large", invalid=True)
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached[1] > now:
            caller = cached[0]
        else:
            caller = self._introspect(token)
            self._remember(key, caller, now)
        if caller is None:
            raise _unauthenticated("the token is not active", invalid=True)
        if caller.expires_at is not None and caller.expires_at + self.settings.api_leeway < now:
            raise _unauthenticated("the token has expired", invalid=True)
        return caller

    def _remember(self, key: str, caller: Caller | None, now: float) -> None:
        if caller is None:
            until = now + NEGATIVE_SECONDS
        else:
            until = now + self.settings.api_introspection_cache_seconds
            if caller.expires_at is not None:
                until = min(until, caller.expires_at)
        with self._lock:
            self._cache[key] = (caller, until)
            self._cache.move_to_end(key)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)

    def _introspect(self, token: str) -> Caller | None:
        """Asks the authorization server (RFC 7662); None for an inactive token."""
        s = self.settings
        assert s.api_introspection_url is not None
        auth = None
        if s.api_introspection_client_id and s.api_introspection_client_secret is not None:
            secret = s.api_introspection_client_secret.get_secret_value()
            auth = (s.api_introspection_client_id, secret)
        try:
            deadline = time.monotonic() + s.api_introspection_timeout
            response = self._post(
                s.api_introspection_url,
                data={"token": token, "token_type_hint": "access_token"},
                headers={"Accept": "application/json"},
                auth=auth,
                timeout=(s.api_introspection_timeout, s.api_introspection_timeout),
                stream=True,
            )
            info = _json_object(bounded_body(response, MAX_INTROSPECTION_BYTES, deadline))
        except (requests.RequestException, ValueError) as err:
            log.warning("token introspection failed", extra={"error": type(err).__name__})
            raise RequestError(
                "The access token could not be checked: the authorization server's "
                "introspection endpoint did not answer usably. Try again later.",
                status=503,
                code="transient",
            ) from None
        if info.get("active") is not True:
            return None
        audience = info.get("aud")
        if audience is not None:
            named = [audience] if isinstance(audience, str) else audience
            if not isinstance(named, list) or s.fhir_api_base not in named:
                raise _unauthenticated(
                    f"the token is not for this service (aud must name {s.fhir_api_base})",
                    invalid=True,
                )
        return _caller(info, info.get("iss"))


def _from_jwt(verified: VerifiedToken) -> Caller:
    return _caller(verified.claims, verified.iss)


def _caller(claims: Mapping[str, Any], issuer: Any) -> Caller:
    scope = claims.get("scope", claims.get("scp", ""))
    if isinstance(scope, list):
        scope = " ".join(s for s in scope if isinstance(s, str))
    client = claims.get("client_id", claims.get("sub"))
    patient = claims.get("patient")
    exp = claims.get("exp")
    return Caller(
        issuer if isinstance(issuer, str) else None,
        client if isinstance(client, str) else None,
        scopes.parse(scope if isinstance(scope, str) else ""),
        patient if isinstance(patient, str) and patient else None,
        float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None,
    )


def _json_object(body: bytes) -> dict[str, Any]:
    value = json.loads(body)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _unauthenticated(message: str, *, invalid: bool = False) -> AuthenticationError:
    """401; RFC 6750: no error code when the request carried no credentials at all."""
    challenge = (
        f'{REALM}, error="invalid_token", error_description="{_quoted(message)}"'
        if invalid
        else REALM
    )
    return AuthenticationError(message, challenge=challenge)


def _quoted(text: str) -> str:
    """A header-safe quoted-string body (RFC 6750 limits error_description to printable ASCII)."""
    return "".join(c for c in text if 0x20 <= ord(c) < 0x7F and c not in '"\\')[:200]
