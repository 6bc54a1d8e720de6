"""Demo mode: the bundled examples served without an EHR, clearly labelled, Accept into an
in-memory store; and ``fhir-cml serve --demo`` as a newcomer runs it."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from fhir_cml.errors import ConfigurationError
from tests.web.smart.conftest import EXAMPLES, form_fields, smart

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def demo(make_app: Callable[..., Flask]) -> Flask:
    app = make_app(demo=True)
    app.config["PREFERRED_URL_SCHEME"] = "https"
    return app


def text(response: TestResponse) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_the_list_shows_every_example_with_its_reading(demo: Flask) -> None:
    client = demo.test_client()
    response = client.get("/demo")
    assert response.status_code == 200
    body = text(response)
    assert "DEMO" in body
    assert "Suggestions for a clinician to review; not orders." in body
    assert "Readings as of <strong>2025-06-30</strong>" in body
    links = re.findall(r'<a href="/demo/([\w-]+)">([^<]+)</a>', body)
    assert len(links) == len(list(EXAMPLES.glob("*.json"))) == 23
    assert ("01-optimal-responder", "Ima Optimal") in links
    row = re.search(r"Tom Threefifteen</a></td><td>([^<]+)</td>", body)
    assert row is not None
    assert row.group(1) == "no-MMR; ELN 2020 failure (12m); 2 suggestions"
    assert "__Host-fhir-cml=" in response.headers["Set-Cookie"]


def test_an_example_opens_the_same_page_marked_demo(demo: Flask) -> None:
    client = demo.test_client()
    body = text(client.get("/demo/06-tfr-molecular-relapse"))
    assert '<p class="demo-flag" role="note"><strong>DEMO</strong>' in body
    assert "<title>DEMO: Rhea Lapse" in body
    assert "Reading as of <strong>2025-06-30</strong>" in body
    assert "Accept for Rhea Lapse" in body
    assert "Writes the suggestions to the demo store" in body
    assert "molecular relapse after stopping" in body
    assert 'data-code="restart-tki"' in body
    assert "Signed in as" not in body
    assert "End session" not in body


def test_accept_in_the_demo_writes_to_memory_once(demo: Flask) -> None:
    client = demo.test_client()
    fields = form_fields(text(client.get("/demo/05-tfr-candidate")))
    first = client.post("/demo/05-tfr-candidate/accept", data=fields)
    assert first.status_code == 303
    body = text(client.get("/demo/05-tfr-candidate"))
    assert "DEMO: Written to the demo's in-memory store (no EHR)" in body
    assert "Created CarePlan (draft proposal, " in body
    client.post("/demo/05-tfr-candidate/accept", data=fields)
    body = text(client.get("/demo/05-tfr-candidate"))
    assert "DEMO: Nothing new written" in body
    assert "accepting it again creates nothing" in body
    decisions = smart(demo).state.decisions("demo", "Patient/cml-tfr-candidate")
    assert [d.kind for d in decisions] == ["accepted", "accepted"]


def test_dismiss_in_the_demo_is_recorded(demo: Flask) -> None:
    client = demo.test_client()
    fields = form_fields(text(client.get("/demo/07-dose-reduction-candidate")))
    client.post(
        "/demo/07-dose-reduction-candidate/dismiss",
        data=fields | {"reason": "clinical-judgement", "comment": "Cramps are improving."},
    )
    body = text(client.get("/demo/07-dose-reduction-candidate"))
    assert "DEMO: Dismissal recorded" in body
    assert "Clinical judgement differs. Cramps are improving." in body


def test_demo_writes_need_the_csrf_token(demo: Flask) -> None:
    client = demo.test_client()
    fields = form_fields(text(client.get("/demo/05-tfr-candidate")))
    refused = client.post(
        "/demo/05-tfr-candidate/accept", data={"fingerprint": fields["fingerprint"]}
    )
    assert refused.status_code == 403
    assert smart(demo).state.decisions("demo", "Patient/cml-tfr-candidate") == []
    stranger = demo.test_client()
    assert stranger.post("/demo/05-tfr-candidate/accept", data=fields).status_code == 401


def test_an_unknown_example_is_a_404(demo: Flask) -> None:
    client = demo.test_client()
    for name in ("nobody", "README", "01-optimal-responder.json"):
        response = client.get(f"/demo/{name}")
        assert response.status_code == 404
        assert "No such example" in text(response)
    assert client.get("/demo/..%2F..%2Fpyproject").status_code == 404


def test_without_demo_mode_there_is_no_demo(client: FlaskClient) -> None:
    response = client.get("/demo")
    assert response.status_code == 404
    assert "fhir-cml serve --demo" in text(response)


def test_a_missing_examples_directory_is_a_configuration_error(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError, match="FHIR_CML_DEMO_EXAMPLES"):
        make_app(demo=True, demo_examples=str(tmp_path / "none"))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "x.json").write_text("{}")
    with pytest.raises(ConfigurationError, match="no example patient"):
        make_app(demo=True, demo_examples=str(empty))


def test_serve_demo_prints_a_url_that_opens_the_demo(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("fhir-cml")), "serve", "--demo", "--port", "0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.match(r"fhir-cml: demo at (http://127\.0\.0\.1:\d+/demo) \(Ctrl-C stops\)", line)
        assert found is not None, line
        response = requests.get(found.group(1), timeout=30)
        assert response.status_code == 200
        assert "Example patients" in response.text
        page = requests.get(found.group(1) + "/01-optimal-responder", timeout=30)
        assert "<h1>Ima Optimal</h1>" in page.text
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert not list(tmp_path.glob("*.sqlite3"))  # the demo's state was temporary
