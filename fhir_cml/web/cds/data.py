"""The FHIR data of a CDS Hooks call: the prefetch, and what is missing fetched from the EHR.

CDS Hooks 2.0: a prefetch key that is absent was not satisfied (the service must get the data
itself); a key whose value is ``null`` means there is no such data. Missing keys are fetched
from ``fhirServer`` with ``fhirAuthorization`` by running their template (rendered with the
context), so the service reads the same data either way. Without a way to fetch, the answer is
412. Before the token is sent anywhere: the server must be allowed (``FHIR_CML_CDS_FHIR_SERVERS``,
or any https URL when that is empty), the token's scopes must grant reading the type, a
patient-bound token must be for the patient in context, and its ``subject`` must be this
service's client id when ``FHIR_CML_CDS_CLIENT_ID`` is set.
"""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import parse_qsl, quote

from fhir_cml.ehr.client import BearerToken, FhirClient
from fhir_cml.errors import FhirNotFoundError, PrefetchError
from fhir_cml.web.cds.hook_request import FhirAccess, HookCall
from fhir_cml.web.runtime import INTERACTIVE_RETRY
from fhir_cml.web.settings import Settings, env_name

_TOKEN = re.compile(r"\{\{\s*context\.([A-Za-z0-9_]+)\s*\}\}")
_SCOPE = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.([a-z*]+)(\?.*)?$")
_V2: Final = frozenset("cruds")


def gather(call: HookCall, settings: Settings) -> list[dict[str, Any]]:
    """The resources of every prefetch key: given, or fetched; PrefetchError (412) otherwise."""
    found: list[dict[str, Any]] = []
    missing: list[str] = []
    for key in call.service.prefetch:
        if key not in call.prefetch:
            missing.append(key)
            continue
        value = call.prefetch[key]
        if value is None:
            continue
        if value.get("resourceType") == "OperationOutcome":  # a failed prefetch, sent anyway
            missing.append(key)
            continue
        found.append(value)
    if missing:
        found += fetch(call, missing, settings)
    return found


def fetch(call: HookCall, keys: list[str], settings: Settings) -> list[dict[str, Any]]:
    """Runs the templates of ``keys`` against ``fhirServer`` with the call's access token."""
    names = ", ".join(keys)
    if call.fhir_server is None or call.access is None:
        raise PrefetchError(
            f"The prefetch lacks {names} and the request gives no fhirServer with "
            "fhirAuthorization to fetch them."
        )
    _check_access(call, call.fhir_server, call.access, settings)
    requests_: list[tuple[str, str]] = []
    for key in keys:
        rendered = render(call.service.prefetch[key], call.context)
        if rendered is None:
            raise PrefetchError(f"The prefetch template of {key} cannot be filled from context.")
        resource_type = rendered.split("?", 1)[0].split("/", 1)[0]
        need = "r" if "?" not in rendered else "s"
        if not grants(call.access.scope, resource_type, need):
            raise PrefetchError(
                f"The prefetch lacks {key} and fhirAuthorization's scope does not allow "
                f"reading {resource_type}."
            )
        requests_.append((key, rendered))
    client = FhirClient(
        call.fhir_server,
        auth=BearerToken(call.access.access_token),
        timeout=(settings.fhir_connect_timeout, settings.fhir_timeout),
        retry=INTERACTIVE_RETRY,
    )
    out: list[dict[str, Any]] = []
    try:
        for _, rendered in requests_:
            out += _run(client, rendered)
    finally:
        client.close()
    return out


def _run(client: FhirClient, rendered: str) -> list[dict[str, Any]]:
    path, _, query = rendered.partition("?")
    if not query and path.count("/") == 1:
        resource_type, resource_id = path.split("/")
        try:
            return [client.read(resource_type, resource_id)]
        except FhirNotFoundError:
            return []
    return list(client.search(path, parse_qsl(query, keep_blank_values=True)))


def render(template: str, context: dict[str, Any]) -> str | None:
    """The template with ``{{context.x}}`` filled (primitive values only); None if it cannot be."""
    failed = False

    def fill(match: re.Match[str]) -> str:
        nonlocal failed
        value = context.get(match.group(1))
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            failed = True
            return ""
        return quote(str(value), safe="")

    text = _TOKEN.sub(fill, template)
    return None if failed else text


def grants(scope: str, resource_type: str, need: str) -> bool:
    """Whether SMART scopes (v1 ``.read``/``.*``, v2 ``.rs``...) allow ``need`` (r or s)."""
    for item in scope.split():
        match = _SCOPE.match(item)
        if match is None or match.group(2) not in (resource_type, "*"):
            continue
        permission = match.group(3)
        if permission in ("read", "*"):
            return True
        if set(permission) <= _V2 and need in permission:
            return True
    return False


def _check_access(call: HookCall, server: str, access: FhirAccess, settings: Settings) -> None:
    allowed = settings.cds_fhir_servers
    if allowed:
        if not any(server == base or server.startswith(base + "/") for base in allowed):
            raise PrefetchError(
                f"fhirServer is not one this service may send tokens to "
                f"({env_name('cds_fhir_servers')})."
            )
    elif not server.startswith("https://"):
        raise PrefetchError("fhirServer must be https to receive an access token.")
    if access.patient is not None and access.patient != call.patient_id:
        raise PrefetchError("fhirAuthorization is bound to another patient than the context's.")
    if settings.cds_client_id is not None and access.subject != settings.cds_client_id:
        raise PrefetchError("fhirAuthorization.subject is not this service's client id.")
