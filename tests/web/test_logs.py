"""Structured logs: one JSON line per request, with request id, route, status and duration,
and nothing of the patient (no path, no query, no body, no error message)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from fhir_cml.web.logs import JsonFormatter

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "03-failure-t315i.json"


class Captured:
    """The JSON lines the ``fhir_cml`` loggers wrote during a test."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def __call__(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


@pytest.fixture
def captured() -> Iterator[Captured]:
    found = Captured()
    handler = logging.StreamHandler(found.stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("fhir_cml")
    logger.addHandler(handler)
    yield found
    logger.removeHandler(handler)


def test_one_json_line_per_request(client: FlaskClient, captured: Captured) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    [line] = [x for x in captured() if x["msg"] == "request"]
    assert line["request_id"] == "abc-123"
    assert line["route"] == "/healthz"
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "info"
    assert line["ts"].endswith("+00:00")


def test_an_unsafe_request_id_is_replaced(client: FlaskClient, captured: Captured) -> None:
    forged = 'a" "route": "/admin' + "x" * 80
    response = client.get("/healthz", headers={"X-Request-ID": forged})
    assert response.headers["X-Request-ID"] != forged
    assert len(response.headers["X-Request-ID"]) == 32


def test_no_patient_data_in_the_logs(client: FlaskClient, captured: Captured) -> None:
    bundle = json.loads(EXAMPLE.read_text())
    assert client.post("/fhir/$cml-assess?asOf=2025-06-30", json=bundle).status_code == 200
    client.get("/fhir/Patient/cml-t315i/$cml-assess?asOf=2025-06-30")  # 403: no callers here
    client.post(
        "/fhir/$cml-assess",
        data='{"resourceType": "Patient", "id": "cml-t315i"}',
        content_type="application/fhir+json",
    )
    text = json.dumps(captured())
    assert captured(), "nothing logged"
    for secret in ("cml-t315i", "Threefifteen", "BCR::ABL1", "asOf"):
        assert secret not in text
    routes = {x.get("route") for x in captured() if x["msg"] == "request"}
    assert "/fhir/Patient/<patient_id>/$cml-assess" in routes


def test_an_unexpected_error_is_logged_by_type_only(
    client: FlaskClient, captured: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fhir_cml.web import fhir_api

    def explode(*_: Any, **__: Any) -> None:
        raise KeyError("Patient/cml-t315i")

    monkeypatch.setattr(fhir_api, "capability_statement", explode)
    response = client.get("/fhir/metadata")
    assert response.status_code == 500
    assert response.get_json()["issue"][0]["code"] == "exception"
    [error] = [x for x in captured() if x["msg"] == "unexpected error"]
    assert error["error"] == "KeyError"
    assert "cml-t315i" not in json.dumps(captured())


def test_an_authenticated_caller_is_named_by_issuer_and_client(
    make_app: Any, captured: Captured
) -> None:
    from tests.support.cds import SigningEhr

    from .conftest import PUBLIC

    issuer = SigningEhr.make("https://auth.example.org")
    app = make_app(api_issuers=[{"iss": issuer.iss, "jwks": issuer.jwks}])
    token = issuer.token(f"{PUBLIC}/fhir", scope="system/*.rs", client_id="reporting-job")
    app.test_client().get(
        "/fhir/Patient/cml-t315i/$cml-assess", headers={"Authorization": f"Bearer {token}"}
    )  # 501: no EHR here, after the caller was authenticated
    [line] = [x for x in captured() if x["msg"] == "request"]
    assert line["caller"] == "https://auth.example.org reporting-job"
    assert token not in json.dumps(captured())
    assert "cml-t315i" not in json.dumps(captured())
