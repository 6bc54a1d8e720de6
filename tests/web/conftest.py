"""Flask fixtures for the web face: ``app``, ``client``, ``runner``.

Each test gets its own app over its own SQLite state store; ``FHIR_CML_*`` variables of the
surrounding environment are removed so that only what a test sets is in effect. Tests that need
other settings override the ``settings`` fixture or call ``make_app``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from fhir_cml import create_app
from fhir_cml.web.runtime import runtime

PUBLIC = "https://cml.example.org"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FHIR_CML_"):
            monkeypatch.delenv(name)


@pytest.fixture
def settings(tmp_path: Path) -> dict[str, Any]:
    """The settings of the ``app`` fixture (override in a module to change them)."""
    return {"public_base_url": PUBLIC, "state": str(tmp_path / "state.sqlite3")}


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """Makes apps from settings; each is closed at the end of the test."""
    made: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        config = {"public_base_url": PUBLIC, "state": str(tmp_path / "state.sqlite3")}
        config.update(overrides)
        app = create_app(config)
        app.config["TESTING"] = True
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            runtime().close()


@pytest.fixture
def app(settings: dict[str, Any], make_app: Callable[..., Flask]) -> Flask:
    return make_app(**settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()
