"""The FHIR data of a CDS Hooks call: the prefetch, checked for completeness, and what is missing
or cut short read from the EHR, all reads at once, within the call's deadline.

- **Prefetch** (CDS Hooks 2.0): a key that is absent was not satisfied (the service must get the
  data itself); a key whose value is ``null`` means there is no such data. Missing keys are
  read from ``fhirServer`` with ``fhirAuthorization`` by running their template (rendered with
  the context), so the service reads the same data either way. Without a way to read them the
  answer is 412, as the specification says.
- **Completeness.** Prefetch must be "rendered in a single page", but a client may cut it short.
  A search Bundle is taken as whole only without a ``next`` link, with a ``total`` (when given)
  no larger than the matches it holds, and with no outcome entry reporting an error or a cut.
  A Bundle cut short is completed from ``fhirServer`` when ``fhirAuthorization`` allows the
  search: from its ``next`` link (only on ``fhirServer``'s origin), or by running the template
  again when it has none. Otherwise the key is reported incomplete, never used as if whole.
- **Deadline.** Every read runs on its own thread, at the same time as the others, and must be
  done by the deadline the hook face gives (``FHIR_CML_CDS_DEADLINE`` after the call arrived,
  less a reserve for assessing); each request's timeouts are cut to what is left. A key not
  read by then is reported incomplete, with the reason.
- **Access.** Before the token is sent anywhere: the server must be allowed
  (``FHIR_CML_CDS_FHIR_SERVERS``, compared after normalising the URL: case, default port,
  percent-encoding, ``.`` and ``..`` segments; or any https URL when that is empty), the token's
  scopes must grant searching (or reading) the type, a patient-bound token must be for the
  patient in context, and its ``subject`` must be this service's client id when
  ``FHIR_CML_CDS_CLIENT_ID`` is set.

:func:`gather` answers a :class:`Gathered`: the resources, and the keys that are incomplete with
why. The hook face presents no reading made from incomplete data.
"""

from __future__ import annotations

import posixpath
import re
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

from fhir_cml.ehr.client import BearerToken, FhirClient, Page
from fhir_cml.errors import (
    FhirClientError,
    FhirNotFoundError,
    FhirResponseError,
    FhirTimeoutError,
    PrefetchError,
)
from fhir_cml.web import scopes
from fhir_cml.web.cds.hook_request import FhirAccess, HookCall
from fhir_cml.web.cds.services import key_label
from fhir_cml.web.runtime import INTERACTIVE_RETRY
from fhir_cml.web.settings import Settings, env_name

_TOKEN = re.compile(r"\{\{\s*context\.([A-Za-z0-9_]+)\s*\}\}")
# Outcome issues that say a search answer is not the whole result.
_CUT_CODES: Final = frozenset({"too-costly", "incomplete", "throttled", "timeout"})
_NOT_MATCHES: Final = frozenset({"include", "outcome"})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# Of the call's deadline, kept back for assessing and writing the cards.
MAX_RESERVE: Final = 0.5


@dataclass(slots=True)
class Gathered:
    """The resources of a call's prefetch keys, and the keys that are incomplete, with why."""

    resources: list[dict[str, Any]] = field(default_factory=list)
    incomplete: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.incomplete

    def missing_text(self) -> list[str]:
        """One line per incomplete key, in words: ``BCR::ABL1 results: ...``."""
        return [f"{key_label(key)}: {why}" for key, why in self.incomplete.items()]


class _Cut(Exception):
    """A read that got only part of a search's results."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def reads_deadline(started: float, settings: Settings) -> float:
    """When the reads of a call that arrived at ``started`` (monotonic) must be done."""
    budget = settings.cds_deadline
    return started + budget - min(MAX_RESERVE, budget / 4)


def gather(call: HookCall, settings: Settings, deadline: float) -> Gathered:
    """The data of every prefetch key: given and whole, or read; PrefetchError (412) when keys
    are absent and cannot be read."""
    out = Gathered()
    reads: dict[str, Callable[[FhirClient], list[dict[str, Any]]]] = {}
    missing: list[str] = []
    cut: dict[str, str] = {}
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
        short = shortfall(value)
        if short is None:
            out.resources.append(value)
        else:
            cut[key] = short
    server = _allowed_server(call, settings, missing)
    for key in missing:
        reads[key] = _template_read(_rendered(call, key))
    for key, short in cut.items():
        bundle = call.prefetch[key]
        rendered = render(call.service.prefetch[key], call.context)
        problem = _search_problem(call, rendered, server)
        if problem is not None:
            out.resources.append(bundle)  # kept for what it is worth, never read as whole
            out.incomplete[key] = f"{short}; {problem}"
            continue
        assert rendered is not None
        next_url = _next_link(bundle)
        if next_url is not None:
            out.resources.append(bundle)
            reads[key] = _rest_read(bundle, next_url, _resource_type(rendered))
        else:
            reads[key] = _template_read(rendered)
    if reads:
        assert server is not None
        assert call.access is not None
        found, failed = _read_all(server, call.access, reads, settings, deadline)
        for key in reads:
            out.resources += found.get(key, [])
        out.incomplete.update(failed)
    return out


def shortfall(resource: dict[str, Any]) -> str | None:
    """Why a prefetched search Bundle is not the whole result (None when it is, or when the
    value is not a search Bundle)."""
    if resource.get("resourceType") != "Bundle":
        return None
    matches = _matches(resource)
    if _next_link(resource) is not None:
        total = resource.get("total")
        of = f" of {total}" if _count(total) is not None else ""
        return f"the EHR sent the first page only ({matches}{of} results)"
    total = _count(resource.get("total"))
    if total is not None and total > matches:
        return f"the EHR sent {matches} of {total} results"
    said = _cut_outcome(resource)
    if said is not None:
        return f"the EHR said the search was cut short ({said})"
    return None


# --- reading -------------------------------------------------------------------------------------


def _read_all(
    server: str,
    access: FhirAccess,
    reads: dict[str, Callable[[FhirClient], list[dict[str, Any]]]],
    settings: Settings,
    deadline: float,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """Runs every read at once; what each found, and why the others are incomplete. An EHR
    that refuses or fails (other than by timing out) is raised: a 502 for the call."""
    client = FhirClient(
        server,
        auth=BearerToken(access.access_token),
        timeout=(settings.fhir_connect_timeout, settings.fhir_timeout),
        retry=INTERACTIVE_RETRY,
        deadline=deadline,
    )
    pool = ThreadPoolExecutor(max_workers=len(reads), thread_name_prefix="cds-read")
    futures: dict[Future[list[dict[str, Any]]], str] = {
        pool.submit(read, client): key for key, read in reads.items()
    }
    try:
        done, _ = wait(futures, timeout=max(0.0, deadline - time.monotonic()))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    found: dict[str, list[dict[str, Any]]] = {}
    failed: dict[str, str] = {}
    errors: list[FhirClientError] = []
    late = f"not read within the {settings.cds_deadline:g} s the service has"
    for future, key in futures.items():
        if future not in done:
            failed[key] = late
            continue
        try:
            found[key] = future.result()
        except FhirTimeoutError:
            failed[key] = late
        except _Cut as short:
            failed[key] = short.reason
        except FhirResponseError as err:
            failed[key] = f"the EHR's answer could not be used ({err.message})"
        except FhirClientError as err:
            errors.append(err)
    client.close()  # a read still running past the deadline fails on its own thread
    if errors:
        raise errors[0]
    return found, failed


def _template_read(rendered: str) -> Callable[[FhirClient], list[dict[str, Any]]]:
    """A read of a template: the resource, or every page of the search (checked against its
    ``total``)."""

    def read(client: FhirClient) -> list[dict[str, Any]]:
        path, _, query = rendered.partition("?")
        if not query and path.count("/") == 1:
            resource_type, resource_id = path.split("/")
            try:
                return [client.read(resource_type, resource_id)]
            except FhirNotFoundError:
                return []
        pages = client.pages(path, parse_qsl(query, keep_blank_values=True))
        return _whole(pages, already=0, total=None)

    return read


def _rest_read(
    bundle: dict[str, Any], next_url: str, resource_type: str
) -> Callable[[FhirClient], list[dict[str, Any]]]:
    """A read of the pages after a prefetched first page, from its ``next`` link."""

    def read(client: FhirClient) -> list[dict[str, Any]]:
        return _whole(
            client.follow(next_url, resource_type),
            already=_matches(bundle),
            total=_count(bundle.get("total")),
        )

    return read


def _whole(pages: Iterator[Page], *, already: int, total: int | None) -> list[dict[str, Any]]:
    """The resources of every page; _Cut when they are fewer than the search's ``total``."""
    found: list[dict[str, Any]] = []
    matches = already
    for page in pages:
        if total is None:
            total = _count(page.bundle.get("total"))
        said = _cut_outcome(page.bundle)
        if said is not None:
            raise _Cut(f"the EHR said the search was cut short ({said})")
        matches += _matches(page.bundle)
        found += page.resources
    if total is not None and total > matches:
        raise _Cut(f"the EHR gave {matches} of {total} results")
    return found


# --- checks before a token leaves ----------------------------------------------------------------


def _allowed_server(call: HookCall, settings: Settings, missing: list[str]) -> str | None:
    """The normalised ``fhirServer`` when the call's token may be sent there; PrefetchError
    when keys are missing and cannot be read, None when nothing may be read."""
    names = ", ".join(missing)
    if call.fhir_server is None or call.access is None:
        if missing:
            raise PrefetchError(
                f"The prefetch lacks {names} and the request gives no fhirServer with "
                "fhirAuthorization to fetch them."
            )
        return None
    try:
        server = check_access(call, call.fhir_server, call.access, settings)
    except PrefetchError:
        if missing:
            raise
        return None
    for key in missing:
        rendered = _rendered(call, key)
        resource_type = _resource_type(rendered)
        if not grants(call.access.scope, resource_type, _need(rendered)):
            raise PrefetchError(
                f"The prefetch lacks {key} and fhirAuthorization's scope does not allow "
                f"reading {resource_type}."
            )
    return server


def _search_problem(call: HookCall, rendered: str | None, server: str | None) -> str | None:
    """Why the rest of a cut-short key cannot be read (None when it can)."""
    if call.fhir_server is None or call.access is None:
        return "the request gives no fhirServer with fhirAuthorization to read the rest"
    if server is None:
        return "fhirServer may not receive the access token"
    if rendered is None:
        return "its template cannot be filled from context"
    resource_type = _resource_type(rendered)
    if not grants(call.access.scope, resource_type, "s"):
        return f"fhirAuthorization's scope does not allow searching {resource_type}"
    return None


def check_access(call: HookCall, server: str, access: FhirAccess, settings: Settings) -> str:
    """The normalised server URL, or PrefetchError when the token may not be sent there."""
    normal = normalise_url(server)
    if normal is None:
        raise PrefetchError("fhirServer is not a usable http(s) URL.")
    allowed = [b for b in (normalise_url(base) for base in settings.cds_fhir_servers) if b]
    if allowed:
        if not any(normal == base or normal.startswith(base + "/") for base in allowed):
            raise PrefetchError(
                f"fhirServer is not one this service may send tokens to "
                f"({env_name('cds_fhir_servers')})."
            )
    elif not normal.startswith("https://"):
        raise PrefetchError("fhirServer must be https to receive an access token.")
    if access.patient is not None and access.patient != call.patient_id:
        raise PrefetchError("fhirAuthorization is bound to another patient than the context's.")
    if settings.cds_client_id is not None and access.subject != settings.cds_client_id:
        raise PrefetchError("fhirAuthorization.subject is not this service's client id.")
    return normal


def normalise_url(url: str) -> str | None:
    """An http(s) base URL in one spelling: scheme and host in lower case, no default port,
    path percent-decoded (then encoded again where needed), ``.`` and ``..`` segments resolved,
    no trailing slash. None for what cannot be a FHIR base: user info, a query or fragment, an
    encoded ``/`` or ``\\``, control characters, percent-encoding that is not UTF-8."""
    try:
        parts = urlsplit(url)
        port = parts.port
        path = unquote(parts.path, errors="strict")
    except (ValueError, UnicodeDecodeError):
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host or parts.username or parts.password:
        return None
    if parts.query or parts.fragment or "?" in url or "#" in url:
        return None
    if re.search(r"%2f|%5c", parts.path, re.IGNORECASE) or "\\" in path:
        return None
    if any(ord(c) < 0x21 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in path):
        return None
    resolved = posixpath.normpath("/" + path).lstrip("/")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = "/" + quote(resolved, safe="/:@!$&'()*+,;=~") if resolved not in ("", ".") else ""
    return urlunsplit((scheme, netloc, path, "", ""))


# --- templates -----------------------------------------------------------------------------------


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
    return scopes.grants(scopes.parse(scope), resource_type, need)


def _rendered(call: HookCall, key: str) -> str:
    rendered = render(call.service.prefetch[key], call.context)
    if rendered is None:
        raise PrefetchError(f"The prefetch template of {key} cannot be filled from context.")
    return rendered


def _resource_type(rendered: str) -> str:
    return rendered.split("?", 1)[0].split("/", 1)[0]


def _need(rendered: str) -> str:
    return "r" if "?" not in rendered else "s"


# --- Bundles -------------------------------------------------------------------------------------


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in _dicts(bundle.get("link")):
        url = link.get("url")
        if link.get("relation") == "next" and isinstance(url, str) and url:
            return url
    return None


def _matches(bundle: dict[str, Any]) -> int:
    """The entries that are matches of the search (not ``_include``s, not outcomes)."""
    count = 0
    for entry in _dicts(bundle.get("entry")):
        search = entry.get("search")
        mode = search.get("mode") if isinstance(search, dict) else None
        if mode not in _NOT_MATCHES and isinstance(entry.get("resource"), dict):
            count += 1
    return count


def _cut_outcome(bundle: dict[str, Any]) -> str | None:
    """The text of an outcome entry that reports an error or a cut, if there is one."""
    for entry in _dicts(bundle.get("entry")):
        resource = entry.get("resource")
        if not isinstance(resource, dict) or resource.get("resourceType") != "OperationOutcome":
            continue
        for issue in _dicts(resource.get("issue")):
            if issue.get("severity") in ("error", "fatal") or issue.get("code") in _CUT_CODES:
                text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
                return str(text or issue.get("code") or "an error")[:200]
    return None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _dicts(value: Any) -> Iterable[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
