"""A simulated EHR for CDS Hooks tests and benchmarks: signing keys, JWTs, hook requests.

    ehr = SigningEhr.make("https://ehr.example.org")        # RS384 key made here
    token = ehr.token("https://cml.example.org/cds-services/cml-monitoring")
    body = patient_view(resources, "patient-id")              # prefetch filled per template

Tokens carry a fresh ``jti`` each, as a real EHR's do; ``overrides`` change any claim or header
to build the broken tokens the verifier must refuse.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import requests
from joserfc import jws
from joserfc.jwk import ECKey, Key, RSAKey

from fhir_cml.web.cds.services import SERVICES

_CURVE = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


@dataclass
class SigningEhr:
    """An EHR with one signing key; ``jwks`` is what it publishes."""

    iss: str
    key: Key
    alg: str
    kid: str

    @classmethod
    def make(cls, iss: str, alg: str = "RS384", kid: str | None = None) -> SigningEhr:
        kid = kid or uuid.uuid4().hex[:12]
        key: Key
        if alg.startswith("ES"):
            key = ECKey.generate_key(_CURVE[alg], parameters={"kid": kid, "use": "sig"})
        else:
            key = RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig"})
        return cls(iss, key, alg, kid)

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}

    def token(
        self,
        aud: str | list[str],
        *,
        header: Mapping[str, Any] | None = None,
        now: float | None = None,
        lifetime: int = 300,
        drop: Iterable[str] = (),
        **claims: Any,
    ) -> str:
        moment = int(time.time() if now is None else now)
        payload: dict[str, Any] = {
            "iss": self.iss,
            "sub": "ehr-client",
            "aud": aud,
            "exp": moment + lifetime,
            "iat": moment,
            "jti": str(uuid.uuid4()),
        }
        payload.update(claims)
        for name in drop:
            payload.pop(name, None)
        protected: dict[str, Any] = {"alg": self.alg, "typ": "JWT", "kid": self.kid}
        protected.update(header or {})
        if protected.get("typ", "") is None:  # None: left out
            del protected["typ"]
        # JSON with \u escapes, so that even a lone surrogate can be sent
        data = json.dumps(payload, separators=(",", ":")).encode()
        return jws.serialize_compact(protected, data, self.key, algorithms=[protected["alg"]])


def unsigned(header: Mapping[str, Any], payload: Mapping[str, Any], signature: bytes = b"") -> str:
    """A JWS compact string made by hand (for ``alg: none`` and forged tokens)."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

    return ".".join(
        [
            part(json.dumps(dict(header)).encode()),
            part(json.dumps(dict(payload)).encode()),
            part(signature),
        ]
    )


def searchset(resources: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }


def prefetch_for(
    service_id: str,
    resources: Sequence[dict[str, Any]],
    patient_id: str,
    templates: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The prefetch an EHR would send for ``service_id``: each template (``templates``, or the
    service's own) run over ``resources`` (a read answers the resource or null, a search a
    searchset Bundle)."""
    out: dict[str, Any] = {}
    for key, template in (templates or SERVICES[service_id].prefetch).items():
        rendered = template.replace("{{context.patientId}}", patient_id)
        path, _, query = rendered.partition("?")
        if not query:
            kind, rid = path.split("/")
            found = [r for r in resources if r["resourceType"] == kind and r.get("id") == rid]
            out[key] = found[0] if found else None
            continue
        params = dict(parse_qsl(query))
        codes = set(params["code"].split(",")) if "code" in params else None
        matches = [
            r
            for r in resources
            if r["resourceType"] == path and (codes is None or _coded(r, codes))
        ]
        out[key] = searchset(matches)
    return out


def fhir_authorization(
    token: str, scope: str = "patient/*.read", *, patient: str | None = None
) -> dict[str, Any]:
    """A ``fhirAuthorization`` for a hook request: ``token`` for the EHR's FHIR server, the
    scopes it grants, issued to the client ``fhir-cml`` (and bound to ``patient`` if given)."""
    found: dict[str, Any] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": scope,
        "subject": "fhir-cml",
    }
    if patient is not None:
        found["patient"] = patient
    return found


def server_prefetch(
    base_url: str,
    service_id: str,
    patient_id: str,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The prefetch an EHR makes by running each template against its FHIR server at
    ``base_url`` and sending the first answer as it came (a read's resource or null; a search's
    first page, ``next`` link and ``total`` included). ``params`` replace template parameters
    where a template has them (e.g. ``{"_sort": "date"}`` for an EHR that sorts its own way)."""
    out: dict[str, Any] = {}
    for key, template in SERVICES[service_id].prefetch.items():
        rendered = template.replace("{{context.patientId}}", patient_id)
        path, _, query = rendered.partition("?")
        given = dict(parse_qsl(query))
        given.update({k: v for k, v in (params or {}).items() if k in given})
        response = requests.get(
            f"{base_url}/{path}",
            params=given,
            headers={"Accept": "application/fhir+json", **(headers or {})},
            timeout=30,
        )
        if response.status_code == 404 and not query:
            out[key] = None
            continue
        response.raise_for_status()
        out[key] = response.json()
    return out


def _coded(resource: dict[str, Any], codes: set[str]) -> bool:
    return any(
        f"{c.get('system')}|{c.get('code')}" in codes
        for c in (resource.get("code") or {}).get("coding", [])
    )


def example_resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The resources of an example Bundle, references between them as ``Type/id``."""
    return [entry["resource"] for entry in bundle["entry"]]


def hook_request(
    hook: str, patient_id: str, prefetch: Mapping[str, Any] | None = None, **context: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/example", "patientId": patient_id, **context},
    }
    if prefetch is not None:
        body["prefetch"] = dict(prefetch)
    return body


def patient_view(resources: Sequence[dict[str, Any]], patient_id: str) -> dict[str, Any]:
    """A patient-view call to cml-monitoring with its full prefetch."""
    return hook_request(
        "patient-view", patient_id, prefetch_for("cml-monitoring", resources, patient_id)
    )
