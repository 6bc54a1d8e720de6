"""A small FHIR R4 REST client on requests: search with paging, read, write, transaction, batch.

What it guarantees to its callers (the sync job, the Flask service, the SMART app):

- **Timeouts on every call** (connect and read), so a stalled server cannot hang a nightly run;
  and optionally one ``deadline`` for every call of a client (an interactive request that must
  answer in time: each call waits at most until then, and no retry waits past it).
- **Retries only where repeating is safe.** A request is repeated after 429/502/503/504 or a
  connection failure only when doing it twice cannot change the outcome: GET and HEAD, a
  ``POST [type]/_search``, a batch made only of reads, and a transaction made only of conditional
  creates (see :meth:`FhirClient.transaction`). Any other request is repeated only when it
  provably never reached the server (the connection could not be opened). ``Retry-After`` is
  honoured (seconds or an HTTP date) up to ``RetryPolicy.max_retry_after``; without it the wait
  grows exponentially (urllib3's :class:`~urllib3.util.Retry` computes it, with jitter).
- **OperationOutcomes become exceptions** from :mod:`fhir_cml.errors` that carry them.
- **Paging follows ``next`` links only on the base's origin**: a server (or a proxy) that points
  elsewhere would otherwise receive our bearer token.
- **Thread safety:** one :class:`requests.Session` per thread, each with its own pool.
- Log lines name the interaction and the resource type, never URLs' query strings or ids (they
  carry patient identifiers).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError
from urllib3.util import Retry

from fhir_cml import __version__
from fhir_cml.errors import (
    FhirAuthError,
    FhirClientError,
    FhirConflictError,
    FhirHttpError,
    FhirNotFoundError,
    FhirRateLimitError,
    FhirResponseError,
    FhirServerError,
    FhirTimeoutError,
    FhirTransportError,
)

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
USER_AGENT = f"fhir-cml/{__version__}"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Statuses whose Retry-After is honoured (urllib3's choice: the ones RFC 9110/6585 give it to).
RETRY_AFTER_STATUSES = Retry.RETRY_AFTER_STATUS_CODES
MAX_PAGES = 100_000


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry a request that is safe to repeat.

    ``attempts`` counts retries (not the first try). A ``Retry-After`` above ``max_retry_after``
    seconds is not waited for: the error is raised with the hint, so a scheduler can decide.

    A server's quota (429, with ``Retry-After`` or the IETF ``RateLimit`` header's reset time)
    is waited for, as often as it takes, within ``quota_budget`` seconds in all for the
    client's life (a sync run); None: ``max_retry_after``. Quota waits do not count as
    attempts: a nightly run against a server with a per-minute quota must get through.
    """

    attempts: int = 5
    backoff_factor: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 120.0
    statuses: frozenset[int] = RETRY_STATUSES
    quota_budget: float | None = None

    @property
    def quota_seconds(self) -> float:
        return self.max_retry_after if self.quota_budget is None else self.quota_budget

    def start(self) -> Retry:
        return Retry(
            total=self.attempts,
            backoff_factor=self.backoff_factor,
            backoff_max=self.backoff_max,
            backoff_jitter=min(self.backoff_factor, 1.0),
            status_forcelist=self.statuses,
            allowed_methods=None,  # whether a request may be repeated is decided per request
            respect_retry_after_header=True,
            raise_on_status=False,
        )


@dataclass(frozen=True, slots=True)
class Exchange:
    """One HTTP exchange, as reported to ``on_exchange`` observers (benchmarks, tests).

    ``url`` is the URL as sent, query included: observers see patient ids, so they must not log
    it.
    """

    method: str
    url: str
    status: int | None
    interaction: str
    write: bool
    attempt: int
    seconds: float


class _Local(threading.local):
    """Per-thread state: the session, and the server's last Date header."""

    def __init__(self) -> None:
        self.session: requests.Session | None = None
        self.last_date: str | None = None


class _Quota:
    """The server's quota as its answers tell it, shared by the client's threads.

    ``RateLimit: "fhirInteractions";r=0;t=37`` (IETF draft, as Medplum sends it: remaining
    units ``r``, seconds to the reset ``t``) with ``r=0``, or a 429, hold every thread until the
    window resets. Waiting is counted once however many threads wait, and all waits of the
    client's life together stay within the budget: beyond it the request fails with the
    server's hint (:class:`~fhir_cml.errors.FhirRateLimitError`).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.until = 0.0  # clock() at which the window resets
        self.reset: float | None = None  # seconds to the reset, last told
        self.waited = 0.0
        self._counted_until = 0.0
        self._lock = threading.Lock()

    def note(self, headers: Mapping[str, str], refused: bool) -> None:
        """Reads the RateLimit header of an answer: a spent quota holds the next requests."""
        spent, reset = _rate_limit(headers)
        with self._lock:
            self.reset = reset
            if (spent or refused) and reset is not None:
                self.until = max(self.until, self.clock() + reset)

    def hold(self, seconds: float, refused: FhirRateLimitError, budget: float) -> None:
        """After a 429: no request before ``seconds`` from now, unless that breaks the budget."""
        with self._lock:
            now = self.clock()
            end = max(self.until, now + max(seconds, 0.0))
            ahead = max(0.0, end - max(now, self._counted_until))
            if self.waited + ahead > budget:
                refused.message += (
                    f" (the server asks to wait {seconds:.0f}s; {self.waited:.0f}s already "
                    f"waited for its quota, {budget:.0f}s allowed)"
                )
                refused.args = (refused.message,)
                raise refused
            self.until = end

    def wait(
        self, sleep: Callable[[float], None], budget: float, interaction: str, method: str, url: str
    ) -> None:
        """Sleeps until the quota's window has reset (counting the wait once)."""
        with self._lock:
            now = self.clock()
            if self.until <= now:
                return
            ahead = max(0.0, self.until - max(now, self._counted_until))
            if self.waited + ahead > budget:
                raise FhirRateLimitError(
                    f"{interaction}: the server's quota is spent and waiting for it would exceed "
                    f"the {budget:.0f}s allowed ({self.waited:.0f}s waited already)",
                    status=429,
                    code="throttled",
                    method=method,
                    url=_strip_query(url),
                )
            self.waited += ahead
            self._counted_until = max(self._counted_until, self.until)
            until = self.until
        sleep(until - now)
        with self._lock:
            if self.until == until:  # not held longer meanwhile: the window has reset
                self.until = 0.0


def _rate_limit(headers: Mapping[str, str]) -> tuple[bool, float | None]:
    """(whether a quota is spent, seconds to its reset) from ``RateLimit`` (the IETF draft's
    list of ``"name";r=..;t=..`` items; the smallest reset among spent ones, else among all) or
    the older ``RateLimit-Remaining`` / ``RateLimit-Reset`` pair."""
    items: list[tuple[float | None, float | None]] = []
    for item in (headers.get("RateLimit") or "").split(","):
        params = dict(part.strip().split("=", 1) for part in item.split(";")[1:] if "=" in part)
        items.append((_number(params.get("r")), _number(params.get("t"))))
    if headers.get("RateLimit-Reset") is not None:
        items.append(
            (_number(headers.get("RateLimit-Remaining")), _number(headers.get("RateLimit-Reset")))
        )
    spent = [t for r, t in items if r is not None and r <= 0 and t is not None]
    if spent:
        return True, min(spent)
    resets = [t for _, t in items if t is not None]
    return False, (min(resets) if resets else None)


def _number(value: str | None) -> float | None:
    try:
        return max(0.0, float(value.strip().strip('"'))) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of search results: the Bundle, and its entries' resources."""

    bundle: dict[str, Any]
    url: str

    @property
    def resources(self) -> list[dict[str, Any]]:
        """The entries' resources; an entry that is not a resource makes the page unusable."""
        found = []
        for entry in self.bundle.get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if resource is None:
                continue
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                raise FhirResponseError(
                    "a search result page holds an entry that is not a FHIR resource",
                    url=_strip_query(self.url),
                )
            found.append(resource)
        return found

    @property
    def next_url(self) -> str | None:
        for link in self.bundle.get("link") or []:
            if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
                return str(link["url"])
        return None


@dataclass(slots=True)
class FhirClient:
    """A FHIR R4 server at ``base_url``; safe to share between threads.

    ``auth`` is any :class:`requests.auth.AuthBase` (a :class:`BearerToken`, or
    :class:`fhir_cml.ehr.auth.SmartBackendAuth`); an auth object with a ``renew()`` method gets
    one chance to renew its token when the server answers 401. ``timeout`` is (connect, read)
    seconds. ``deadline`` (a :func:`time.monotonic` value) bounds every call: timeouts are cut
    to what is left, a retry that would wait past it is not made, and a call after it raises
    :class:`~fhir_cml.errors.FhirTimeoutError` at once. ``sleep`` is what waits between retries
    and for the server's quota, ``clock`` what tells the time for the latter (tests pass a
    recorder and a clock it moves).
    """

    base_url: str
    auth: requests.auth.AuthBase | None = None
    timeout: tuple[float, float] = (10.0, 120.0)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    user_agent: str = USER_AGENT
    pool_size: int = 10
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    on_exchange: list[Callable[[Exchange], None]] = field(default_factory=list)
    deadline: float | None = None
    # What send_bundle asks for (``Prefer``): minimal answers, until a server answers them with
    # nothing readable.
    bundle_prefer: str = "return=minimal"
    _local: _Local = field(default_factory=_Local, init=False, repr=False)
    _sessions: list[requests.Session] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _quota: _Quota = field(init=False, repr=False)

    @property
    def quota_waited(self) -> float:
        """Seconds spent waiting for the server's quota so far (overlapping waits of several
        threads counted once)."""
        return self._quota.waited

    def __post_init__(self) -> None:
        self._quota = _Quota(self.clock)
        self.base_url = self.base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) FHIR base URL: {self.base_url!r}")

    # --- plumbing ----------------------------------------------------------------------------

    @property
    def origin(self) -> tuple[str, str]:
        return _origin(self.base_url)

    def session(self) -> requests.Session:
        """This thread's session (created on first use)."""
        session = self._local.session
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=2, pool_maxsize=self.pool_size, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update({"User-Agent": self.user_agent, "Accept": FHIR_JSON})
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        with self._lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, path: str) -> str:
        """An absolute URL for a path relative to the base (``Patient/1``) or an absolute URL."""
        if path.startswith(("http://", "https://")):
            return path
        return urljoin(self.base_url + "/", path.lstrip("/"))

    def server_time(self) -> datetime | None:
        """The server's clock (its last ``Date`` header seen on this thread), if it sent one."""
        value = self._local.last_date
        if not value:
            return None
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        repeatable: bool | None = None,
        stream: bool = False,
        auth: bool = True,
    ) -> requests.Response:
        """Sends a request with timeouts and safe retries; raises for error statuses.

        ``repeatable`` says whether repeating the request after an unknown outcome is harmless;
        None means: only GET and HEAD are. ``auth=False`` sends no credentials (used for files
        the server says need none).
        """
        method = method.upper()
        url = self.url(path)
        if repeatable is None:
            repeatable = method in ("GET", "HEAD")
        send_headers = dict(headers or {})
        if json is not None:
            send_headers.setdefault("Content-Type", FHIR_JSON)
        interaction = _interaction(method, url, self.base_url)
        write = method not in ("GET", "HEAD") and not interaction.startswith(("search", "batch"))
        retry = self.retry.start()
        renewed = False
        attempt = 0
        session = self.session()
        while True:
            attempt += 1
            self._quota.wait(self.sleep, self.retry.quota_seconds, interaction, method, url)
            started = time.perf_counter()
            try:
                response = session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    data=data,
                    headers=send_headers,
                    timeout=self._timeout(method, url, interaction),
                    stream=stream,
                    auth=self.auth if auth else _NO_AUTH,
                )
            except _TRANSPORT_ERRORS as err:
                self._observe(method, url, None, interaction, write, attempt, started)
                error = _transport_error(err, method, url, interaction)
                if not (repeatable or _never_sent(err)):
                    raise error from err
                retry, wait = self._next(retry, method, url, error, None)
                self._before_deadline(wait, error)
                log.warning(
                    "retrying %s after %s (attempt %d, waiting %.1fs)",
                    interaction,
                    _kind(err),
                    attempt,
                    wait,
                )
                self.sleep(wait)
                continue
            self._observe(
                method, response.url, response.status_code, interaction, write, attempt, started
            )
            date = response.headers.get("Date")
            if date:
                self._local.last_date = date
            status = response.status_code
            self._quota.note(response.headers, status == 429)
            if status == 429:
                # Refused before being processed: safe to send again whatever it is, once the
                # quota's window has reset (Retry-After, or the RateLimit header's reset time).
                refused = _http_error(response, method, url, interaction)
                assert isinstance(refused, FhirRateLimitError)
                hint = _retry_after(retry, response) if "Retry-After" in response.headers else None
                wait = hint if hint is not None else self._quota.reset or retry.get_backoff_time()
                refused.retry_after = wait
                response.close()
                self._quota.hold(wait, refused, self.retry.quota_seconds)
                log.info("%s: the server's quota is spent; waiting %.0fs", interaction, wait)
                continue
            renew = getattr(self.auth, "renew", None)
            if status == 401 and not renewed and auth and callable(renew):
                renewed = True
                log.info("%s: 401, renewing the access token once", interaction)
                renew()
                continue
            if status in self.retry.statuses and repeatable:
                refused = _http_error(response, method, url, interaction)
                retry, wait = self._next(retry, method, url, refused, response)
                self._before_deadline(wait, refused)
                log.warning(
                    "retrying %s after HTTP %d (attempt %d, waiting %.1fs)",
                    interaction,
                    status,
                    attempt,
                    wait,
                )
                response.close()
                self.sleep(wait)
                continue
            if status >= 400:
                raise _http_error(response, method, url, interaction)
            return response

    def _timeout(self, method: str, url: str, interaction: str) -> tuple[float, float]:
        """(connect, read) timeouts, cut to what is left before the deadline."""
        if self.deadline is None:
            return self.timeout
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise FhirTimeoutError(
                f"{interaction}: not sent, the deadline had passed ({_strip_query(url)})",
                status=504,
                code="timeout",
                method=method,
                url=_strip_query(url),
            )
        return (min(self.timeout[0], left), min(self.timeout[1], left))

    def _before_deadline(self, wait: float, error: FhirClientError) -> None:
        """Raises ``error`` when waiting ``wait`` seconds for a retry would pass the deadline."""
        if self.deadline is not None and time.monotonic() + wait >= self.deadline:
            raise error

    def _next(
        self,
        retry: Retry,
        method: str,
        url: str,
        error: FhirClientError,
        response: requests.Response | None,
    ) -> tuple[Retry, float]:
        """The next Retry state and how long to wait; raises ``error`` when retries are spent."""
        try:
            retry = retry.increment(method, _strip_query(url))
        except MaxRetryError:
            raise error from None
        hint = _retry_after(retry, response)
        if hint is not None:
            if isinstance(error, FhirRateLimitError):
                error.retry_after = hint
            if hint > self.retry.max_retry_after:
                error.message += (
                    f" (the server asks to wait {hint:.0f}s, more than the "
                    f"{self.retry.max_retry_after:.0f}s allowed)"
                )
                error.args = (error.message,)
                raise error
            return retry, hint
        return retry, retry.get_backoff_time()

    def _observe(
        self,
        method: str,
        url: str,
        status: int | None,
        interaction: str,
        write: bool,
        attempt: int,
        started: float,
    ) -> None:
        if self.on_exchange:
            exchange = Exchange(
                method, url, status, interaction, write, attempt, time.perf_counter() - started
            )
            for observer in self.on_exchange:
                observer(exchange)

    def json(self, response: requests.Response, what: str) -> dict[str, Any]:
        """The response body as a JSON object, or FhirResponseError saying what was expected."""
        try:
            body = response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type")
            raise FhirResponseError(
                f"{what}: the server answered HTTP {response.status_code} with a body that is "
                f"not JSON ({kind})",
                method=response.request.method,
                url=_strip_query(response.url),
            ) from None
        if not isinstance(body, dict):
            raise FhirResponseError(
                f"{what}: the server answered with JSON that is not an object",
                method=response.request.method,
                url=_strip_query(response.url),
            )
        return body

    # --- FHIR interactions -------------------------------------------------------------------

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        response = self.request("GET", f"{resource_type}/{resource_id}")
        resource = self.json(response, f"read {resource_type}")
        if resource.get("resourceType") != resource_type:
            raise FhirResponseError(
                f"read {resource_type}: the server answered with a "
                f"{resource.get('resourceType') or 'document without resourceType'}",
                url=self.url(resource_type),
            )
        return resource

    def create(
        self, resource: dict[str, Any], *, if_none_exist: str | None = None
    ) -> dict[str, Any] | None:
        """POSTs a resource (conditionally with ``If-None-Exist``); returns the server's copy."""
        headers = {"Prefer": "return=representation"}
        if if_none_exist:
            headers["If-None-Exist"] = if_none_exist
        response = self.request(
            "POST", str(resource["resourceType"]), json=resource, headers=headers
        )
        return self.json(response, "create") if response.content else None

    def update(self, resource: dict[str, Any], *, if_match: str | None = None) -> dict[str, Any]:
        headers = {"Prefer": "return=representation"}
        if if_match:
            headers["If-Match"] = if_match
        path = f"{resource['resourceType']}/{resource['id']}"
        response = self.request("PUT", path, json=resource, headers=headers)
        return self.json(response, "update")

    def pages(
        self,
        resource_type: str,
        params: Mapping[str, str] | Sequence[tuple[str, str]],
        *,
        post: bool = False,
    ) -> Iterator[Page]:
        """Search result pages, following ``next`` links on the base's origin only.

        ``post=True`` searches with ``POST [type]/_search`` (form-encoded), for parameter lists
        too long for a URL; it is as safe to repeat as a GET.
        """
        what = f"search {resource_type}"
        if post:
            response = self.request(
                "POST",
                f"{resource_type}/_search",
                data=list(params.items()) if isinstance(params, Mapping) else list(params),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                repeatable=True,
            )
        else:
            response = self.request("GET", resource_type, params=params)
        yield from self._follow(response, what)

    def follow(self, next_url: str, resource_type: str) -> Iterator[Page]:
        """The pages of a search from one of its ``next`` links on (a search another client
        started, e.g. a CDS prefetch cut to its first page), on the base's origin only."""
        what = f"search {resource_type}"
        next_url = self.url(next_url) if not urlsplit(next_url).scheme else next_url
        self._same_origin(next_url, what)
        yield from self._follow(self.request("GET", next_url), what)

    def _follow(self, response: requests.Response, what: str) -> Iterator[Page]:
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            page = Page(self._bundle(response, what), response.url)
            yield page
            next_url = page.next_url
            if next_url is None:
                return
            next_url = self.url(next_url) if not urlsplit(next_url).scheme else next_url
            self._same_origin(next_url, what)
            if next_url in seen:
                raise FhirResponseError(f"{what}: the server's next links go round in a circle")
            seen.add(next_url)
            response = self.request("GET", next_url)
        raise FhirResponseError(f"{what}: more than {MAX_PAGES} pages")

    def _same_origin(self, next_url: str, what: str) -> None:
        if _origin(next_url) != self.origin:
            raise FhirResponseError(
                f"{what}: the server's next link points to another origin "
                f"({_origin_text(next_url)}, base {_origin_text(self.base_url)}); "
                "not followed, so that credentials stay with the FHIR server",
                url=_strip_query(next_url),
            )

    def search(
        self,
        resource_type: str,
        params: Mapping[str, str] | Sequence[tuple[str, str]],
        *,
        post: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """The resources of every page (matches and ``_include``d ones alike)."""
        for page in self.pages(resource_type, params, post=post):
            yield from page.resources

    def transaction(
        self, bundle: dict[str, Any], *, repeatable: bool | None = None
    ) -> dict[str, Any]:
        """POSTs a transaction Bundle; returns the transaction-response.

        Whether it is retried after a timeout, a dropped connection or 429/502/503/504 depends
        on what it contains. A transaction made only of conditional creates (``POST`` with
        ``ifNoneExist``) and reads is safe to repeat: if the first attempt was carried out and
        only its answer was lost, the second finds each resource by its identifier and creates
        nothing, so the outcome is the same as doing it once. That is the shape of fhir-cml's
        write-back (identifiers derived from the assessment fingerprint), and such transactions
        *are* retried. A transaction that also updates resources (superseding with
        ``If-Match``) is not: repeated after a success it would fail with 412 instead of
        reporting the success, so it is attempted once and the caller re-reads the server.
        (The guarantee needs the server to run If-None-Exist inside the transaction, as FHIR
        requires; two different clients racing on the same identifiers are not covered.)
        ``repeatable`` overrides the decision.
        """
        if repeatable is None:
            repeatable = only_conditional_creates(bundle)
        return self._bundle_post(bundle, "transaction", repeatable)

    def batch(self, bundle: dict[str, Any]) -> dict[str, Any]:
        """POSTs a batch Bundle; retried only when it holds reads alone (or conditional creates).

        Entries fail one by one in a batch: read each ``entry.response.status``.
        """
        return self._bundle_post(bundle, "batch", only_conditional_creates(bundle))

    def send_bundle(self, bundle: dict[str, Any]) -> dict[str, Any] | None:
        """POSTs a batch or transaction of writes; returns the response Bundle, or None when the
        server answered 2xx with nothing readable.

        Some servers answer ``Prefer: return=minimal`` with an empty body, or a proxy puts a
        page of its own in front: the writes may all have been made, so such an answer is not
        an error here; the caller reads the server to learn what happened (fhir_cml.ehr.writeback
        does). Error statuses raise as usual; retried as :meth:`transaction` and :meth:`batch`
        say.
        """
        kind = str(bundle.get("type"))
        if bundle.get("resourceType") != "Bundle" or kind not in ("batch", "transaction"):
            raise ValueError("expected a Bundle of type batch or transaction")
        prefer = self.bundle_prefer
        response = self.request(
            "POST",
            self.base_url,
            json=bundle,
            headers={"Prefer": prefer},
            repeatable=only_conditional_creates(bundle),
        )
        try:
            return self._bundle_answer(response, bundle, kind)
        except (FhirResponseError, FhirHttpError) as err:
            log.warning("%s: no readable answer (%s); what was written is read back", kind, err)
            if prefer == "return=minimal":
                # A server that answers return=minimal with nothing may answer a plain request:
                # from now on ask for the resources rather than read them back every time.
                self.bundle_prefer = "return=representation"
            return None

    def _bundle_post(self, bundle: dict[str, Any], kind: str, repeatable: bool) -> dict[str, Any]:
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != kind:
            raise ValueError(f"expected a Bundle of type {kind}")
        response = self.request(
            "POST",
            self.base_url,
            json=bundle,
            headers={"Prefer": "return=minimal"},
            repeatable=repeatable,
        )
        return self._bundle_answer(response, bundle, kind)

    def _bundle_answer(
        self, response: requests.Response, bundle: dict[str, Any], kind: str
    ) -> dict[str, Any]:
        """The ``{kind}-response`` Bundle of a POSTed bundle, checked against what was sent."""
        if not response.content:
            raise FhirResponseError(
                f"{kind}: the server answered HTTP {response.status_code} with an empty body",
                method="POST",
                url=self.base_url,
            )
        result = self.json(response, kind)
        if result.get("resourceType") == "OperationOutcome":
            raise FhirHttpError(
                f"{kind}: the server answered HTTP {response.status_code} with an "
                f"OperationOutcome: {outcome_text(result)}",
                status=422,
                outcome=result,
                method="POST",
                url=self.base_url,
            )
        if result.get("resourceType") != "Bundle" or result.get("type") != f"{kind}-response":
            raise FhirResponseError(
                f"{kind}: the server answered with a "
                f"{result.get('type') or result.get('resourceType') or 'document'}, "
                f"not a {kind}-response Bundle",
                method="POST",
                url=self.base_url,
            )
        entries = result.get("entry") or []
        if len(entries) != len(bundle.get("entry") or []):
            raise FhirResponseError(
                f"{kind}: the response has {len(entries)} entries for "
                f"{len(bundle.get('entry') or [])} sent",
                method="POST",
                url=self.base_url,
            )
        return result

    def _bundle(self, response: requests.Response, what: str) -> dict[str, Any]:
        bundle = self.json(response, what)
        kind = bundle.get("resourceType")
        if kind == "OperationOutcome":
            raise FhirResponseError(
                f"{what}: the server answered with an OperationOutcome instead of results: "
                f"{outcome_text(bundle)}",
                outcome=bundle,
                method=response.request.method,
                url=_strip_query(response.url),
            )
        if kind != "Bundle":
            raise FhirResponseError(
                f"{what}: a result page is a {kind or 'JSON object without resourceType'}, "
                "not a Bundle",
                method=response.request.method,
                url=_strip_query(response.url),
            )
        return bundle


class BearerToken(requests.auth.AuthBase):
    """A fixed bearer token (``--token``), e.g. one issued by the EHR for this job."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


class _NoAuth(requests.auth.AuthBase):
    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        return request


_NO_AUTH = _NoAuth()
# No usable answer: refused, reset, timed out, or the body cut short.
_TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


def only_conditional_creates(bundle: dict[str, Any]) -> bool:
    """True when every entry is a read or a conditional create: repeating it changes nothing."""
    for entry in bundle.get("entry") or []:
        request = entry.get("request") or {} if isinstance(entry, dict) else {}
        method = str(request.get("method", "")).upper()
        if method in ("GET", "HEAD"):
            continue
        if method == "POST" and request.get("ifNoneExist"):
            continue
        return False
    return True


def outcome_text(outcome: dict[str, Any], limit: int = 300) -> str:
    """The issues of an OperationOutcome in one line: diagnostics, or details.text, or codes."""
    parts = []
    for issue in outcome.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
        text = text or issue.get("code") or "error"
        where = issue.get("expression") or issue.get("location")
        parts.append(f"{text} ({', '.join(where)})" if where else str(text))
    line = "; ".join(parts) or "no issue given"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def same_origin(url: str, base_url: str) -> bool:
    return _origin(url) == _origin(base_url)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, f"{host}:{port}"


def _origin_text(url: str) -> str:
    scheme, netloc = _origin(url)
    return f"{scheme}://{netloc}"


def _strip_query(url: str) -> str:
    return url.split("?", 1)[0]


def _interaction(method: str, url: str, base_url: str) -> str:
    """``search Observation``, ``read Patient``, ``transaction``... for logs, without ids."""
    path = _strip_query(url)
    rest = path[len(base_url) :].strip("/") if path.startswith(base_url) else None
    if rest is None:
        return f"{method} (outside the FHIR base)"
    segments = [s for s in rest.split("/") if s]
    if not segments:
        return "transaction/batch" if method == "POST" else f"{method} base"
    kind = segments[0]
    if kind.startswith("$"):
        return kind.lstrip("$")
    if len(segments) == 1:
        return {"GET": "search", "POST": "create"}.get(method, method.lower()) + f" {kind}"
    if segments[1] == "_search":
        return f"search {kind}"
    if segments[-1].startswith("$"):
        return f"{segments[-1].lstrip('$')} {kind}"
    return {"GET": "read", "PUT": "update", "DELETE": "delete", "PATCH": "patch"}.get(
        method, method.lower()
    ) + f" {kind}"


def _never_sent(err: Exception) -> bool:
    """Whether the request provably did not reach the server (so any method may be repeated)."""
    if isinstance(err, requests.exceptions.ConnectTimeout):
        return True
    reason = err.args[0] if err.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, NewConnectionError | NameResolutionError)


def _kind(err: Exception) -> str:
    if isinstance(err, requests.Timeout):
        return "a timeout"
    if _never_sent(err):
        return "a connection failure"
    return "a dropped connection"


def _transport_error(err: Exception, method: str, url: str, interaction: str) -> FhirTransportError:
    where = _strip_query(url)
    if isinstance(err, requests.Timeout):
        return FhirTimeoutError(
            f"{interaction}: no answer from the FHIR server in time ({where})",
            status=504,
            code="timeout",
            method=method,
            url=where,
        )
    if _never_sent(err):
        text = f"{interaction}: cannot connect to the FHIR server ({where})"
    else:
        text = f"{interaction}: the connection to the FHIR server was lost ({where})"
    return FhirTransportError(text, status=502, code="transient", method=method, url=where)


def _http_error(
    response: requests.Response, method: str, url: str, interaction: str
) -> FhirHttpError:
    status = response.status_code
    outcome: dict[str, Any] | None = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        outcome = body
        detail = outcome_text(body)
    elif isinstance(body, dict) and isinstance(body.get("error"), str):
        detail = str(body.get("error_description") or body["error"])
    else:
        detail = response.reason or "no explanation given"
    cls: type[FhirHttpError]
    code = "processing"
    if status in (401, 403):
        cls, code = FhirAuthError, ("login" if status == 401 else "forbidden")
    elif status in (404, 410):
        cls, code = FhirNotFoundError, "not-found"
    elif status in (409, 412):
        cls, code = FhirConflictError, "conflict"
    elif status == 429:
        cls, code = FhirRateLimitError, "throttled"
    elif status >= 500:
        cls, code = FhirServerError, "exception"
    else:
        cls = FhirHttpError
    where = _strip_query(url)
    return cls(
        f"{interaction}: HTTP {status} from the FHIR server: {detail}",
        status=status,
        outcome=outcome,
        code=code,
        method=method,
        url=where,
    )


def _retry_after(retry: Retry, response: requests.Response | None) -> float | None:
    if response is None or response.status_code not in RETRY_AFTER_STATUSES:
        return None
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, retry.parse_retry_after(value))
    except Exception:  # an unreadable hint is no hint
        return None
