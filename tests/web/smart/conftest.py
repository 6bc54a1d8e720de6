"""Fixtures for the SMART app: an EHR (the test authorization server and a FHIR server that
checks every token with it), example patients on that FHIR server, and apps registered there.

The EHR is started once per session; each test gets an empty FHIR store and fresh launch
contexts. ``sign_in`` runs the EHR launch with Flask's test client: the app's redirect to the
authorization server is followed with ``requests`` (it is a real server), and the server's
redirect back is handed to the app.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from fhir_cml.web.smart.runtime import EXTENSION, SmartRuntime
from tests.support.fhir_server import FhirTestServer
from tests.support.smart_ehr import RESOURCE_SECRET, RESOURCE_SERVER, USER, TestEhr, running
from tests.web.conftest import PUBLIC

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
CLIENT_ID = "fhir-cml-app"
AS_OF = "2025-06-30"


@dataclass
class Ehr:
    """The EHR as the tests see it: authorization server and FHIR server."""

    auth: TestEhr
    fhir: FhirTestServer

    @property
    def base(self) -> str:
        return self.fhir.base_url

    def load(self, example: str) -> str:
        """Puts an example patient on the FHIR server; returns its Patient id."""
        bundle = json.loads((EXAMPLES / f"{example}.json").read_text(encoding="utf-8"))
        self.fhir.load(bundle)
        [patient] = [
            e["resource"]["id"]
            for e in bundle["entry"]
            if e["resource"]["resourceType"] == "Patient"
        ]
        return str(patient)

    def search(self, query: str) -> list[dict[str, Any]]:
        """Reads the FHIR server with a token of the test's own (no patient binding)."""
        response = requests.get(
            f"{self.base}/{query}",
            headers={
                "Authorization": f"Bearer {self.auth.admin_token()}",
                "Accept": "application/fhir+json",
            },
            timeout=30,
        )
        response.raise_for_status()
        return [e["resource"] for e in response.json().get("entry", [])]


@pytest.fixture(scope="session")
def running_ehr() -> Iterator[TestEhr]:
    with running(TestEhr()) as auth:
        yield auth


@pytest.fixture(scope="session")
def ehr_fhir(
    running_ehr: TestEhr, fhir_server_factory: Callable[..., FhirTestServer]
) -> FhirTestServer:
    server = fhir_server_factory(
        introspection_url=f"{running_ehr.url}/introspect",
        args=[
            "--introspection-client-id",
            RESOURCE_SERVER,
            "--introspection-client-secret",
            RESOURCE_SECRET,
            "--smart-authorize-url",
            f"{running_ehr.url}/authorize",
            "--smart-token-url",
            f"{running_ehr.url}/token",
        ],
    )
    running_ehr.fhir_base = server.base_url
    return server


USER_NAME = "Helena Hema"
PRACTITIONER = {
    "resourceType": "Practitioner",
    "id": USER.split("/")[1],
    "name": [{"prefix": ["Dr"], "given": ["Helena"], "family": "Hema"}],
}


@pytest.fixture
def ehr(running_ehr: TestEhr, ehr_fhir: FhirTestServer) -> Ehr:
    """The EHR, emptied, with the signed-in user's Practitioner resource."""
    running_ehr.reset()
    ehr_fhir.reset()
    ehr_fhir.load(PRACTITIONER)
    return Ehr(running_ehr, ehr_fhir)


def registered_app(ehr: Ehr, make_app: Callable[..., Flask], **settings: Any) -> Flask:
    """The app at ``PUBLIC`` with ``settings``, registered at the EHR as a public client."""
    ehr.auth.register(CLIENT_ID, f"{PUBLIC}/smart/callback")
    app = make_app(
        **{"smart_issuers": ehr.base, "smart_client_id": CLIENT_ID, "smart_as_of": AS_OF} | settings
    )
    app.config["PREFERRED_URL_SCHEME"] = "https"
    return app


@pytest.fixture
def smart_app(ehr: Ehr, make_app: Callable[..., Flask]) -> Flask:
    """The app at ``PUBLIC``, registered at the EHR as a public client."""
    return registered_app(ehr, make_app)


@pytest.fixture
def browser(smart_app: Flask) -> FlaskClient:
    return smart_app.test_client()


def smart(app: Flask) -> SmartRuntime:
    found = app.extensions[EXTENSION]
    assert isinstance(found, SmartRuntime)
    return found


def launch_url(iss: str, launch: str | None = None) -> str:
    params = {"iss": iss} | ({"launch": launch} if launch else {})
    return f"/launch?{urlencode(params)}"


def authorize(location: str) -> str:
    """Follows the app's redirect at the authorization server; returns where it sends back."""
    answer = requests.get(location, allow_redirects=False, timeout=30)
    assert answer.status_code == 302, answer.text
    return str(answer.headers["Location"])


def local(url: str) -> str:
    """The path and query of a URL of the app (for the test client)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def sign_in(client: FlaskClient, ehr: Ehr, patient: str) -> TestResponse:
    """The EHR launch for ``patient``, up to the app's answer to the callback."""
    started = client.get(launch_url(ehr.base, ehr.auth.launch(patient)))
    assert started.status_code == 302, started.get_data(as_text=True)
    return come_back(client, authorize(started.headers["Location"]))


def come_back(client: FlaskClient, url: str) -> TestResponse:
    """The app's answer to the EHR's redirect back; a sign-in's page becomes the client's
    ``home`` (each launch has its own address)."""
    answer = client.get(local(url))
    if answer.status_code == 303:
        client.home = urlsplit(answer.headers["Location"]).path  # type: ignore[attr-defined]
    return answer


def home(client: FlaskClient, action: str = "") -> str:
    """The address of the client's latest launch, or of one of its forms (``accept``...)."""
    base = str(getattr(client, "home", "/smart/l/" + "x" * 43))
    return f"{base}/{action}" if action else base


def form_fields(html: str) -> dict[str, str]:
    """The hidden fields of the page's forms (csrf_token, fingerprint)."""
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', html))
