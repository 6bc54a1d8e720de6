"""The FHIR client against faults the test server cannot produce (``responses`` mocks)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses
from responses import matchers
from urllib3.exceptions import MaxRetryError, NewConnectionError

from fhir_cml import __version__
from fhir_cml.ehr.client import (
    BearerToken,
    FhirClient,
    RetryPolicy,
    only_conditional_creates,
    outcome_text,
)
from fhir_cml.errors import (
    FhirAuthError,
    FhirClientError,
    FhirConflictError,
    FhirHttpError,
    FhirRateLimitError,
    FhirResponseError,
    FhirServerError,
    FhirTimeoutError,
    FhirTransportError,
    OperationOutcomeError,
)

BASE = "https://ehr.example.org/fhir"


def bundle(resources: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    links = [{"relation": "self", "url": f"{BASE}/Observation"}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [{"resource": r} for r in resources],
    }


def obs(oid: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": oid}


def outcome(text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "invalid", "diagnostics": text}],
    }


def creates(n: int = 1) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:0000000{i}-0000-4000-8000-000000000000",
                "resource": {"resourceType": "RiskAssessment", "status": "final"},
                "request": {"method": "POST", "url": "RiskAssessment", "ifNoneExist": f"x={i}"},
            }
            for i in range(n)
        ],
    }


def transaction_response(n: int = 1, status: str = "201 Created") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [
            {"response": {"status": status, "location": f"RiskAssessment/{i}/_history/1"}}
            for i in range(n)
        ],
    }


class Sleeps(list[float]):
    """Records the waits the client asks for instead of waiting."""

    now = 0.0

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(sleeps: Sleeps) -> Iterator[FhirClient]:
    with FhirClient(
        BASE,
        timeout=(3.0, 7.0),
        retry=RetryPolicy(attempts=3, backoff_factor=0.5, max_retry_after=60),
        sleep=sleeps,
        clock=sleeps.clock,
    ) as c:
        yield c


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


# --- paging --------------------------------------------------------------------------------------


def test_search_follows_next_links_on_the_same_origin(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(
        f"{BASE}/Observation",
        json=bundle([obs("1"), obs("2")], f"{BASE}/Observation?page=2"),
        match=[matchers.query_param_matcher({"patient": "a,b", "_count": "2"})],
    )
    mocked.get(
        f"{BASE}/Observation",
        json=bundle([obs("3")]),
        match=[matchers.query_param_matcher({"page": "2"})],
    )
    found = list(client.search("Observation", {"patient": "a,b", "_count": "2"}))
    assert [r["id"] for r in found] == ["1", "2", "3"]


def test_a_next_link_to_another_origin_is_not_followed(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    client.auth = BearerToken("secret")
    mocked.get(
        f"{BASE}/Observation",
        json=bundle([obs("1")], "https://elsewhere.example.com/fhir/Observation?page=2"),
    )
    pages = client.pages("Observation", {"patient": "a"})
    assert next(pages).resources == [obs("1")]
    with pytest.raises(FhirResponseError, match="another origin") as caught:
        next(pages)
    assert "elsewhere.example.com" in caught.value.message
    assert len(mocked.calls) == 1  # the token never left for elsewhere.example.com


def test_a_next_link_on_another_port_counts_as_another_origin(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(
        f"{BASE}/Observation", json=bundle([], "https://ehr.example.org:8443/fhir/Observation?p=2")
    )
    with pytest.raises(FhirResponseError, match="another origin"):
        list(client.search("Observation", {}))


def test_a_relative_next_link_is_resolved_against_the_base(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(f"{BASE}/Observation", json=bundle([obs("1")], "Observation?page=2"))
    mocked.get(f"{BASE}/Observation?page=2", json=bundle([obs("2")]))
    assert [r["id"] for r in client.search("Observation", {})] == ["1", "2"]


def test_next_links_that_go_round_in_a_circle_stop(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(f"{BASE}/Observation", json=bundle([obs("1")], f"{BASE}/Observation?p=2"))
    with pytest.raises(FhirResponseError, match="circle"):
        list(client.search("Observation", {}))


def test_a_page_that_is_not_a_bundle_is_a_clear_error(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(f"{BASE}/Observation", json=bundle([obs("1")], f"{BASE}/Observation?page=2"))
    mocked.get(f"{BASE}/Observation?page=2", json={"resourceType": "Observation", "id": "x"})
    with pytest.raises(FhirResponseError, match="a result page is a Observation, not a Bundle"):
        list(client.search("Observation", {}))


def test_a_page_that_is_not_json_is_a_clear_error(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(f"{BASE}/Observation", body="<html>proxy error</html>", content_type="text/html")
    with pytest.raises(FhirResponseError, match=r"not JSON \(text/html\)"):
        list(client.search("Observation", {}))


def test_an_operation_outcome_instead_of_results_carries_it(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(f"{BASE}/Observation", json=outcome("search too broad"))
    with pytest.raises(FhirResponseError, match="search too broad") as caught:
        list(client.search("Observation", {}))
    assert caught.value.outcome == outcome("search too broad")


def test_post_search_sends_a_form_and_is_retried(
    client: FhirClient, mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    form = matchers.urlencoded_params_matcher({"patient": "a,b,c", "_count": "100"})
    mocked.post(f"{BASE}/Observation/_search", status=503, match=[form])
    mocked.post(f"{BASE}/Observation/_search", json=bundle([obs("1")]), match=[form])
    found = list(client.search("Observation", {"patient": "a,b,c", "_count": "100"}, post=True))
    assert [r["id"] for r in found] == ["1"]
    assert len(sleeps) == 1


# --- retries -------------------------------------------------------------------------------------


def test_429_is_retried_after_the_time_the_server_asks_for(
    client: FhirClient, mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    mocked.get(f"{BASE}/Patient/1", status=429, headers={"Retry-After": "7"})
    mocked.get(f"{BASE}/Patient/1", json={"resourceType": "Patient", "id": "1"})
    assert client.read("Patient", "1")["id"] == "1"
    assert sleeps == [7.0]


def test_retry_after_as_an_http_date_is_understood(
    client: FhirClient, mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    mocked.get(
        f"{BASE}/Patient/1", status=503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}
    )
    mocked.get(f"{BASE}/Patient/1", json={"resourceType": "Patient", "id": "1"})
    client.read("Patient", "1")
    assert sleeps == [0.0]  # a date in the past: go again at once


def test_a_retry_after_longer_than_allowed_is_not_waited_for(
    client: FhirClient, mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    mocked.get(f"{BASE}/Patient/1", status=429, headers={"Retry-After": "3600"})
    with pytest.raises(FhirRateLimitError, match="asks to wait 3600s") as caught:
        client.read("Patient", "1")
    assert caught.value.retry_after == 3600.0
    assert caught.value.status == 429
    assert sleeps == []


def test_a_bundle_answered_with_nothing_is_not_an_error_and_minimal_is_not_asked_again(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": {"resourceType": "Patient"},
                "request": {"method": "POST", "url": "Patient"},
            }
        ],
    }
    mocked.post(BASE, body=b"", status=200)
    mocked.post(
        BASE,
        json={
            "resourceType": "Bundle",
            "type": "batch-response",
            "entry": [{"response": {"status": "201"}}],
        },
    )
    assert client.send_bundle(batch) is None  # written or not: the caller reads the server
    assert mocked.calls[0].request.headers["Prefer"] == "return=minimal"
    assert client.send_bundle(batch) is not None
    assert mocked.calls[1].request.headers["Prefer"] == "return=representation"


QUOTA = '"requests";r=5980;t=60, "fhirInteractions";r=0;t=37'


def test_a_spent_quota_without_retry_after_is_waited_out_from_the_ratelimit_header(
    client: FhirClient, mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    mocked.get(f"{BASE}/Patient/1", status=429, headers={"RateLimit": QUOTA})
    mocked.get(f"{BASE}/Patient/1", json={"resourceType": "Patient", "id": "1"})
    assert client.read("Patient", "1")["id"] == "1"
    assert sleeps == [37.0]
    assert client.quota_waited == 37.0


def test_a_write_refused_for_quota_is_sent_again(
    client: FhirClient, mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    mocked.put(f"{BASE}/CarePlan/1", status=429, headers={"RateLimit": QUOTA})
    mocked.put(f"{BASE}/CarePlan/1", json={"resourceType": "CarePlan", "id": "1"})
    client.update({"resourceType": "CarePlan", "id": "1"}, if_match='W/"1"')
    assert len(mocked.calls) == 2  # a 429 was not processed: sending it again is harmless


def test_a_quota_spent_by_the_last_answer_holds_the_next_request(
    client: FhirClient, mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    mocked.get(
        f"{BASE}/Patient/1",
        json={"resourceType": "Patient", "id": "1"},
        headers={"RateLimit": '"fhirInteractions";r=0;t=12'},
    )
    mocked.get(f"{BASE}/Patient/2", json={"resourceType": "Patient", "id": "2"})
    client.read("Patient", "1")
    assert sleeps == []
    client.read("Patient", "2")  # no 429 sent for: it waited first
    assert sleeps == [12.0]


def test_waiting_for_quota_stops_at_the_budget_and_says_so(
    mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    client = FhirClient(BASE, retry=RetryPolicy(quota_budget=100), sleep=sleeps, clock=sleeps.clock)
    for _ in range(3):
        mocked.get(f"{BASE}/Patient/1", status=429, headers={"RateLimit": QUOTA})
    with pytest.raises(FhirRateLimitError, match=r"74s already waited for its quota, 100s allowed"):
        client.read("Patient", "1")
    assert sleeps == [37.0] * 2
    assert client.quota_waited == 74.0


def test_503_is_retried_with_growing_waits_then_given_up(
    client: FhirClient, mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    for _ in range(4):
        mocked.get(f"{BASE}/Patient/1", status=503, json=outcome("maintenance"))
    with pytest.raises(FhirServerError, match=r"HTTP 503 .* maintenance") as caught:
        client.read("Patient", "1")
    assert caught.value.status == 503
    assert caught.value.outcome == outcome("maintenance")
    assert len(mocked.calls) == 4  # the first try and three retries
    assert len(sleeps) == 3
    assert sleeps[2] > sleeps[0]


@pytest.mark.parametrize("status", [502, 504])
def test_gateway_errors_are_retried_for_reads(
    client: FhirClient, mocked: responses.RequestsMock, status: int
) -> None:
    mocked.get(f"{BASE}/Patient/1", status=status)
    mocked.get(f"{BASE}/Patient/1", json={"resourceType": "Patient", "id": "1"})
    assert client.read("Patient", "1")["id"] == "1"


def test_500_is_not_retried(client: FhirClient, mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/Patient/1", status=500, json=outcome("bug"))
    with pytest.raises(FhirServerError, match="bug"):
        client.read("Patient", "1")
    assert len(mocked.calls) == 1


def test_a_timeout_on_a_read_is_retried(client: FhirClient, mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/Patient/1", body=requests.exceptions.ReadTimeout("slow"))
    mocked.get(f"{BASE}/Patient/1", json={"resourceType": "Patient", "id": "1"})
    assert client.read("Patient", "1")["id"] == "1"


def test_timeouts_are_sent_with_every_request(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(f"{BASE}/Patient/1", json={"resourceType": "Patient", "id": "1"})
    mocked.post(BASE, json=transaction_response())
    client.read("Patient", "1")
    client.transaction(creates())
    assert [c.request.req_kwargs["timeout"] for c in mocked.calls] == [(3.0, 7.0)] * 2


def test_a_timeout_on_a_create_is_not_retried(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(f"{BASE}/Observation", body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(FhirTimeoutError, match="no answer from the FHIR server in time") as caught:
        client.create({"resourceType": "Observation"})
    assert caught.value.status == 504
    assert len(mocked.calls) == 1


def test_a_connection_that_never_opened_is_retried_even_for_a_create(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    refused = requests.exceptions.ConnectionError(
        MaxRetryError(None, BASE, NewConnectionError(None, "refused"))  # type: ignore[arg-type]
    )
    mocked.post(f"{BASE}/Observation", body=refused)
    mocked.post(f"{BASE}/Observation", status=201, json={"resourceType": "Observation", "id": "9"})
    created = client.create({"resourceType": "Observation"})
    assert created is not None
    assert created["id"] == "9"


def test_a_connection_dropped_mid_page_is_retried(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(f"{BASE}/Observation", json=bundle([obs("1")], f"{BASE}/Observation?page=2"))
    mocked.get(
        f"{BASE}/Observation?page=2",
        body=requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead"),
    )
    mocked.get(f"{BASE}/Observation?page=2", json=bundle([obs("2")]))
    assert [r["id"] for r in client.search("Observation", {})] == ["1", "2"]


def test_a_connection_dropped_on_every_try_ends_in_a_transport_error(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    for _ in range(4):
        mocked.get(f"{BASE}/Observation", body=requests.exceptions.ConnectionError("reset"))
    with pytest.raises(FhirTransportError, match="connection to the FHIR server was lost") as err:
        list(client.search("Observation", {"patient": "secret-id"}))
    assert err.value.status == 502
    assert "secret-id" not in err.value.message  # no query strings in messages


# --- transactions and batches --------------------------------------------------------------------


def test_a_transaction_of_conditional_creates_is_retried(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(BASE, body=requests.exceptions.ReadTimeout("lost answer"))
    mocked.post(BASE, json=transaction_response(2, "200 OK"))
    result = client.transaction(creates(2))
    assert [e["response"]["status"] for e in result["entry"]] == ["200 OK", "200 OK"]


def test_a_transaction_with_updates_is_not_retried(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    bundle_ = creates(1)
    bundle_["entry"].append(
        {
            "resource": {"resourceType": "CarePlan", "id": "7"},
            "request": {"method": "PUT", "url": "CarePlan/7", "ifMatch": 'W/"1"'},
        }
    )
    assert not only_conditional_creates(bundle_)
    mocked.post(BASE, status=503)
    with pytest.raises(FhirServerError):
        client.transaction(bundle_)
    assert len(mocked.calls) == 1


def test_an_operation_outcome_for_a_transaction_is_raised_with_it(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(BASE, status=400, json=outcome("CarePlan.status: unknown code"))
    with pytest.raises(FhirHttpError, match=r"CarePlan\.status: unknown code") as caught:
        client.transaction(creates())
    assert caught.value.status == 400
    assert caught.value.outcome["issue"][0]["diagnostics"] == "CarePlan.status: unknown code"
    assert isinstance(caught.value, OperationOutcomeError)


def test_an_operation_outcome_with_200_for_a_transaction_is_an_error(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(BASE, status=200, json=outcome("not processed"))
    with pytest.raises(FhirHttpError, match="not processed"):
        client.transaction(creates())


def test_a_transaction_response_with_missing_entries_is_an_error(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(BASE, json=transaction_response(1))
    with pytest.raises(FhirResponseError, match="1 entries for 2 sent"):
        client.transaction(creates(2))


def test_a_batch_reports_entries_one_by_one(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": "Patient/1"}}] * 2,
    }
    mocked.post(
        BASE,
        json={
            "resourceType": "Bundle",
            "type": "batch-response",
            "entry": [
                {"response": {"status": "200"}, "resource": {"resourceType": "Patient"}},
                {"response": {"status": "404", "outcome": outcome("gone")}},
            ],
        },
    )
    result = client.batch(batch)
    assert [e["response"]["status"] for e in result["entry"]] == ["200", "404"]


def test_the_kind_of_bundle_is_checked_before_sending(client: FhirClient) -> None:
    with pytest.raises(ValueError, match="transaction"):
        client.transaction({"resourceType": "Bundle", "type": "batch"})


# --- errors by status ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, FhirAuthError),
        (403, FhirAuthError),
        (409, FhirConflictError),
        (412, FhirConflictError),
    ],
)
def test_statuses_map_to_the_error_tree(
    client: FhirClient, mocked: responses.RequestsMock, status: int, error: type[FhirClientError]
) -> None:
    mocked.get(f"{BASE}/Patient/1", status=status, json=outcome("no"))
    with pytest.raises(error) as caught:
        client.read("Patient", "1")
    assert caught.value.status == status
    assert caught.value.outcome == outcome("no")


def test_an_error_without_operation_outcome_gets_one(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(f"{BASE}/Patient/1", status=404, body="Not Found")
    with pytest.raises(FhirClientError) as caught:
        client.read("Patient", "1")
    assert caught.value.outcome["resourceType"] == "OperationOutcome"
    assert "HTTP 404" in caught.value.outcome["issue"][0]["diagnostics"]


def test_outcome_text_joins_issues() -> None:
    text = outcome_text(
        {
            "resourceType": "OperationOutcome",
            "issue": [
                {"severity": "error", "code": "invalid", "details": {"text": "bad status"}},
                {"severity": "error", "code": "required", "expression": ["CarePlan.intent"]},
            ],
        }
    )
    assert text == "bad status; required (CarePlan.intent)"


# --- headers and auth ----------------------------------------------------------------------------


def test_user_agent_accept_and_bearer_token_are_sent(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    client.auth = BearerToken("t0k3n")
    mocked.get(f"{BASE}/Patient/1", json={"resourceType": "Patient", "id": "1"})
    client.read("Patient", "1")
    headers = mocked.calls[0].request.headers
    assert headers["User-Agent"] == f"fhir-cml/{__version__}"
    assert headers["Accept"] == "application/fhir+json"
    assert headers["Authorization"] == "Bearer t0k3n"


def test_a_401_lets_a_renewable_token_renew_once(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    class Renewable(requests.auth.AuthBase):
        def __init__(self) -> None:
            self.tokens = iter(["old", "new", "newer"])
            self.current = next(self.tokens)

        def renew(self) -> None:
            self.current = next(self.tokens)

        def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
            request.headers["Authorization"] = f"Bearer {self.current}"
            return request

    client.auth = Renewable()
    mocked.get(
        f"{BASE}/Patient/1",
        status=401,
        match=[matchers.header_matcher({"Authorization": "Bearer old"})],
    )
    mocked.get(
        f"{BASE}/Patient/1",
        json={"resourceType": "Patient", "id": "1"},
        match=[matchers.header_matcher({"Authorization": "Bearer new"})],
    )
    assert client.read("Patient", "1")["id"] == "1"


def test_a_second_401_is_an_auth_error(client: FhirClient, mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/Patient/1", status=401, json=outcome("token expired"))
    with pytest.raises(FhirAuthError, match="token expired"):
        client.read("Patient", "1")


def test_exchanges_are_reported_to_observers(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    seen: list[tuple[str, bool, int | None]] = []
    client.on_exchange.append(lambda e: seen.append((e.interaction, e.write, e.status)))
    mocked.get(f"{BASE}/Patient/1", json={"resourceType": "Patient", "id": "1"})
    mocked.post(BASE, json=transaction_response())
    client.read("Patient", "1")
    client.transaction(creates())
    assert seen == [("read Patient", False, 200), ("transaction/batch", True, 200)]


def test_server_time_comes_from_the_date_header(
    client: FhirClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(
        f"{BASE}/Patient/1",
        json={"resourceType": "Patient", "id": "1"},
        headers={"Date": "Tue, 01 Jul 2025 10:00:00 GMT"},
    )
    client.read("Patient", "1")
    moment = client.server_time()
    assert moment is not None
    assert moment.isoformat() == "2025-07-01T10:00:00+00:00"


def test_a_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="not an http"):
        FhirClient("ftp://example.org/fhir")


def test_the_json_sent_is_fhir_json(client: FhirClient, mocked: responses.RequestsMock) -> None:
    mocked.post(BASE, json=transaction_response())
    client.transaction(creates())
    request = mocked.calls[0].request
    assert request.headers["Content-Type"] == "application/fhir+json"
    assert json.loads(request.body or b"{}")["type"] == "transaction"
