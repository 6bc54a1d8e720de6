"""The site's local codes in the service: ConceptMap files named in the settings (checked at
start-up), and ``$translate`` on a terminology server within its deadline, for ``$cml-assess``
(posted data and data read from the EHR) and so for the CDS services, which read the same way."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from fhir_cml.errors import ConfigurationError
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound.conceptmaps import ConceptMaps
from fhir_cml.web.settings import load_settings
from tests.examples.test_real_world_shapes import as_local_codes, as_text_values
from tests.integration.test_local_codes_server import concept_map
from tests.support.cds import SigningEhr, hook_request, prefetch_for
from tests.support.fhir_server import FhirTestServer

from .conftest import PUBLIC
from .test_fhir_patient import authenticated, callers

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ASSESS = "/fhir/$cml-assess?asOf=2025-06-30"
FHIR_JSON = "application/fhir+json"


def local_example(maps: ConceptMaps, name: str = "01-optimal-responder.json") -> dict[str, Any]:
    """An example as a laboratory with its own codes, units and text values sends it."""
    bundle = json.loads((EXAMPLES / name).read_text("utf-8"))
    resources = [entry["resource"] for entry in bundle["entry"]]
    as_text_values(resources, maps)
    as_local_codes(resources, maps)
    return dict(bundle)


def depth(bundle: dict[str, Any]) -> str | None:
    risk = bundle["entry"][0]["resource"]
    for ext in risk.get("extension", []):
        if ext["url"] == c.EXT_MOLECULAR_RESPONSE:
            return str(ext["valueCodeableConcept"]["coding"][0]["code"])
    return None


def write_map(tmp_path: Path, maps: ConceptMaps) -> Path:
    path = tmp_path / "maps" / "lab.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(concept_map(maps)), "utf-8")
    return path


def test_posted_local_codes_read_with_the_sites_concept_maps(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    canonical = json.loads((EXAMPLES / "01-optimal-responder.json").read_text("utf-8"))
    plain = make_app().test_client()
    expected = plain.post(ASSESS, data=json.dumps(canonical), content_type=FHIR_JSON).get_json()
    maps = ConceptMaps()
    body = json.dumps(local_example(maps))
    unread = plain.post(ASSESS, data=body, content_type=FHIR_JSON)
    assert "ConceptMap" in unread.get_data(as_text=True)  # says how to map the codes
    assert depth(unread.get_json()) != depth(expected)
    site = make_app(concept_maps=str(write_map(tmp_path, maps).parent)).test_client()
    read = site.post(ASSESS, data=body, content_type=FHIR_JSON).get_json()
    assert depth(read) == depth(expected) == "MR4"


def test_local_codes_read_from_the_ehr(
    make_app: Callable[..., Flask], fhir_server: FhirTestServer, fhir_base: str, tmp_path: Path
) -> None:
    """Patient/[id]/$cml-assess also searches the site's own codes the maps map."""
    maps = ConceptMaps()
    fhir_server.load(local_example(maps))
    path = write_map(tmp_path, maps)
    client = authenticated(make_app(**callers(fhir_base=fhir_base, concept_maps=[str(path)])))
    answer = client.get("/fhir/Patient/cml-optimal/$cml-assess?asOf=2025-06-30")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert depth(answer.get_json()) == "MR4"


def test_translate_on_the_terminology_server_within_its_deadline(
    make_app: Callable[..., Flask], fhir_server: FhirTestServer, fhir_base: str
) -> None:
    maps = ConceptMaps()
    body = json.dumps(local_example(maps))
    fhir_server.load(concept_map(maps))
    client = make_app(terminology_server=fhir_base, terminology_deadline=2).test_client()
    read = client.post(ASSESS, data=body, content_type=FHIR_JSON).get_json()
    assert depth(read) == "MR4"
    asked = fhir_server.stats()["byInteraction"]["operation"]
    assert client.post(ASSESS, data=body, content_type=FHIR_JSON).status_code == 200
    assert fhir_server.stats()["byInteraction"]["operation"] == asked  # the answers are kept

    # A terminology server slower than the deadline: the codes stay unread, the answer comes.
    slow = make_app(terminology_server=fhir_base, terminology_deadline=0.2).test_client()
    fhir_server.delay(2000)
    try:
        late = slow.post(ASSESS, data=body, content_type=FHIR_JSON)
    finally:
        fhir_server.delay(0)
    assert late.status_code == 200
    assert depth(late.get_json()) != "MR4"
    assert "ConceptMap" in late.get_data(as_text=True)


def test_cds_prefetch_asks_for_the_sites_own_codes(
    make_app: Callable[..., Flask], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An EHR that runs the discovered templates sends the laboratory's own codes too, and the
    card reads them as it reads the canonical codes."""
    from datetime import date

    from fhir_cml.web import assessment

    monkeypatch.setattr(assessment, "today", lambda: date(2025, 6, 30))
    maps = ConceptMaps()
    bundle = local_example(maps)
    resources = [entry["resource"] for entry in bundle["entry"]]
    (local_system, local_code), _ = next(iter(maps.codes.items()))
    ehr = SigningEhr.make("https://ehr.example.org")
    issuers = {"cds_issuers": [{"iss": "https://ehr.example.org", "jwks": ehr.jwks}]}

    def card(app: Flask) -> tuple[dict[str, Any], dict[str, str]]:
        [service] = [
            s
            for s in app.test_client().get("/cds-services").get_json()["services"]
            if s["id"] == "cml-monitoring"
        ]
        prefetch = prefetch_for("cml-monitoring", resources, "cml-optimal", service["prefetch"])
        url = "/cds-services/cml-monitoring"
        answer = app.test_client().post(
            url,
            json=hook_request("patient-view", "cml-optimal", prefetch),
            headers={"Authorization": f"Bearer {ehr.token(PUBLIC + url)}"},
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)
        [found] = answer.get_json()["cards"]
        return dict(found), service["prefetch"]

    plain, plain_templates = card(make_app(**issuers))
    assert f"{local_system}|{local_code}" not in plain_templates["bcrAbl1"]
    site, site_templates = card(
        make_app(concept_maps=str(write_map(tmp_path, maps).parent), **issuers)
    )
    assert f"{local_system}|{local_code}" in ",".join(site_templates.values())
    assert "MMR" not in plain["summary"]
    assert "MR4" in site["summary"], site["summary"]

    # A terminology server's maps are not known in advance: every result of the patient.
    server = make_app(terminology_server="https://tx.example.org/fhir", **issuers)
    [monitoring] = [
        s
        for s in server.test_client().get("/cds-services").get_json()["services"]
        if s["id"] == "cml-monitoring"
    ]
    assert "code=" not in monitoring["prefetch"]["bcrAbl1"]
    assert monitoring["prefetch"]["bcrAbl1"].startswith("Observation?patient={{context.patientId}}")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"concept_maps": "/nonexistent/maps.json"}, "no such file"),
        ({"concept_maps": "{path}"}, "not a ConceptMap"),
        (
            {"terminology_server": "https://tx.example.org/fhir", "terminology_deadline": 5},
            "FHIR_CML_CDS_DEADLINE",
        ),
    ],
)
def test_the_settings_are_checked_at_start(
    settings: dict[str, Any], message: str, tmp_path: Path
) -> None:
    path = tmp_path / "patient.json"
    path.write_text(json.dumps({"resourceType": "Patient", "id": "x"}), "utf-8")
    config = {k: str(v).format(path=path) for k, v in settings.items()}
    with pytest.raises(ConfigurationError) as err:
        load_settings({"public_base_url": PUBLIC, **config})
    assert message in str(err.value)
    assert "FHIR_CML_" in str(err.value)
