"""/healthz and /readyz: liveness without dependencies, readiness of the state store and EHR."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import responses
from flask import Flask
from flask.cli import routes_command
from flask.testing import FlaskClient, FlaskCliRunner

from fhir_cml.web.runtime import runtime

EHR = "https://ehr.example.org/fhir"


def test_liveness_answers_without_touching_anything(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == {"status": "ok"}
    assert response.headers["X-Request-ID"]


def test_ready_without_an_ehr_configured(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {
        "state": {"ok": True},
        "fhir": {"ok": True, "configured": False},
    }


@responses.activate
def test_ready_when_the_ehr_answers_metadata(make_app: Callable[..., Flask]) -> None:
    responses.get(f"{EHR}/metadata", json={"resourceType": "CapabilityStatement"})
    client = make_app(fhir_base=EHR).test_client()
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"]["fhir"] == {"ok": True}


@responses.activate
@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"status": 500}, "FhirServerError"),
        ({"body": "<html>down</html>", "status": 200}, "FhirResponseError"),
    ],
)
def test_not_ready_when_the_ehr_fails(
    make_app: Callable[..., Flask], answer: dict[str, object], error: str
) -> None:
    responses.get(f"{EHR}/metadata", **answer)  # type: ignore[arg-type]
    client = make_app(fhir_base=EHR).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["fhir"]["ok"] is False
    assert body["checks"]["fhir"]["error"] == error


def test_not_ready_when_the_ehr_cannot_be_reached(make_app: Callable[..., Flask]) -> None:
    client = make_app(fhir_base="http://127.0.0.1:9/fhir", ready_timeout=0.5).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["fhir"]["error"] == "FhirTransportError"


def test_not_ready_when_the_state_store_fails(app: Flask, tmp_path: Path) -> None:
    with app.app_context():
        runtime().store.engine.dispose()
    (tmp_path / "state.sqlite3").unlink()
    (tmp_path / "state.sqlite3").mkdir()  # a directory where the database was
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["state"]["ok"] is False


def test_every_face_is_registered(runner: FlaskCliRunner) -> None:
    """``flask routes`` lists the endpoints of every blueprint (web/__init__.py:blueprints)."""
    result = runner.invoke(routes_command)
    assert result.exit_code == 0, result.output
    for rule in (
        "/healthz",
        "/readyz",
        "/fhir/metadata",
        "/fhir/$cml-assess",
        "/fhir/Patient/<patient_id>/$cml-assess",
        "/cds-services",
        "/cds-services/<service_id>",
        "/cds-services/<service_id>/feedback",
    ):
        assert rule in result.output
    assert "/static" not in result.output
