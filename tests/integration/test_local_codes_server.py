"""US Core-shaped data with a laboratory's own codes on the real test FHIR server: ``fhir-cml
survey --fhir-base`` counts what is sent and read without showing a patient, and ``fhir-cml sync``
reassesses exactly the patients a changed ConceptMap touches, without ``--full``."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fhir_cml.cli import main
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound.conceptmaps import ConceptMaps
from tests.examples.test_real_world_shapes import (
    EXAMPLES,
    LAB,
    as_local_codes,
    as_medication_requests,
    as_text_values,
)
from tests.support.fhir_server import FhirTestServer
from tests.support.sync_helpers import SyncEnv

pytestmark = pytest.mark.integration

SHAPED = ("01-optimal-responder.json", "09-cyp3a4-inhibitor.json")
CANONICAL = "02-warning-6-months.json"
SECOND_LAB = "L2-BCRIS"  # a second laboratory's code only one patient carries, unmapped at first


def us_core_bundles(maps: ConceptMaps) -> list[dict[str, Any]]:
    """SHAPED as a US Core EHR with its own laboratory codes sends them; CANONICAL as it is."""
    bundles = []
    for name in SHAPED:
        bundle = json.loads((EXAMPLES / name).read_text("utf-8"))
        resources = [entry["resource"] for entry in bundle["entry"]]
        for rewrite in (as_medication_requests, as_text_values, as_local_codes):
            rewrite(resources, maps)
        for entry, resource in zip(bundle["entry"], resources, strict=True):
            entry["resource"] = resource
        bundles.append(bundle)
    first = bundles[0]["entry"]
    hb = copy.deepcopy(
        next(e for e in first if e["resource"]["id"] == "cml-optimal-wbc-2022-01-03")
    )
    hb["fullUrl"] = "urn:uuid:8f0d6a55-2f51-4d57-9d55-1c0e2b5f0a01"
    hb["resource"] |= {
        "id": "cml-optimal-hb-2022-01-03",
        "code": {"coding": [{"system": LAB, "code": SECOND_LAB}], "text": "Hb"},
        "valueString": "131 g/L",
    }
    first.append(hb)
    bundles.append(json.loads((EXAMPLES / CANONICAL).read_text("utf-8")))
    return bundles


def concept_map(maps: ConceptMaps) -> dict[str, Any]:
    """The site's ConceptMap file: the laboratory's codes and units."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for (source, code), (target, to) in sorted(maps.codes.items()):
        groups.setdefault((source, target), []).append(_element(code, to))
    for (source, unit), ucum in sorted(maps.units.items()):
        groups.setdefault((source, c.UCUM), []).append(_element(unit, ucum))
    return {
        "resourceType": "ConceptMap",
        "url": "https://lab.example.org/fhir/ConceptMap/to-fhir-cml",
        "status": "active",
        "group": [
            {"source": s, "target": t, "element": elements} for (s, t), elements in groups.items()
        ],
    }


def _element(code: str, to: str) -> dict[str, Any]:
    return {"code": code, "target": [{"code": to, "equivalence": "equivalent"}]}


@pytest.fixture
def site(fhir_server: FhirTestServer, fhir_base: str, tmp_path: Path) -> tuple[SyncEnv, Path]:
    maps = ConceptMaps()
    for bundle in us_core_bundles(maps):
        fhir_server.load(bundle)
    path = tmp_path / "site-conceptmap.json"
    path.write_text(json.dumps(concept_map(maps)), "utf-8")
    return SyncEnv(fhir_server, fhir_base, tmp_path / "state.sqlite3"), path


def secrets() -> set[str]:
    """Patient ids, names and identifiers, and every result as sent (text and number)."""
    found = {"Patient/"}
    for bundle in us_core_bundles(ConceptMaps()):
        for entry in bundle["entry"]:
            res = entry["resource"]
            if res["resourceType"] == "Patient":
                found |= {res["id"], *(i["value"] for i in res.get("identifier", []))}
                found |= {n["family"] for n in res.get("name", []) if "family" in n}
            found.add(res.get("valueString") or "-")
            value = (res.get("valueQuantity") or {}).get("value")
            if isinstance(value, float):
                found.add(repr(value))
    return {s for s in found if len(s) > 4}


def survey(env: SyncEnv, out: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        main, ["survey", "--fhir-base", env.base, "-o", str(out), *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    written = [result.output] + [p.read_text("utf-8") for p in sorted(out.iterdir())]
    hidden = secrets()
    assert len(hidden) > 20
    for text in written:
        for secret in hidden:
            assert secret not in text, secret
    data: dict[str, Any] = json.loads((out / "survey.json").read_text("utf-8"))
    return data


def rows(data: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [r for r in data["rows"] if r["resourceType"] == "Observation" and r["code"] == code]


def test_the_survey_of_a_us_core_server_counts_local_codes_and_reads_them_once_mapped(
    site: tuple[SyncEnv, Path], tmp_path: Path
) -> None:
    env, path = site
    before = survey(env, tmp_path / "before")
    assert before["patients"]["cml"] == 3
    local_pcr = rows(before, "L-69380-4")
    assert sum(r["count"] for r in local_pcr) > 10
    assert sum(r["read"] for r in local_pcr) == 0
    drafted = {e["code"] for g in before["draftConceptMap"]["group"] for e in g["element"]}
    assert {"L-69380-4", SECOND_LAB} <= drafted
    requests = [r for r in before["rows"] if r["resourceType"] == "MedicationRequest"]
    assert requests
    assert all(r["read"] == r["count"] for r in requests)

    after = survey(env, tmp_path / "after", "--concept-map", str(path))
    mapped = rows(after, "L-69380-4")
    assert sum(r["read"] for r in mapped) == sum(r["count"] for r in local_pcr)
    assert sum(r["read"] for r in rows(after, SECOND_LAB)) == 0  # still the site's own
    assert after["read"] > before["read"]


def test_a_changed_concept_map_reassesses_only_the_patients_it_touches(
    site: tuple[SyncEnv, Path],
) -> None:
    env, path = site
    first = env.run("--concept-map", str(path))
    assert first.exit_code == 0, first.output
    assert "assessed           3" in first.output
    again = env.run("--concept-map", str(path))
    assert again.exit_code == 0, again.output
    assert "assessed           0" in again.output  # nothing changed on the server

    document = json.loads(path.read_text("utf-8"))
    document["group"].append(
        {"source": LAB, "target": c.LOINC, "element": [_element(SECOND_LAB, "69380-4")]}
    )
    path.write_text(json.dumps(document), "utf-8")
    env.server.reset_stats()
    changed = env.run("--concept-map", str(path))
    assert changed.exit_code == 0, changed.output
    assert "read               3" in changed.output  # a new map: everyone is read again
    assert "assessed           1" in changed.output  # the one patient with a second lab
    assert "inputs unchanged: 2" in changed.output


def test_assess_translates_on_the_terminology_server(
    fhir_server: FhirTestServer, fhir_base: str, tmp_path: Path
) -> None:
    maps = ConceptMaps()
    [bundle, *_] = us_core_bundles(maps)
    fhir_server.load(concept_map(maps))
    path = tmp_path / "patient.json"
    path.write_text(json.dumps(bundle), "utf-8")
    args = ["assess", str(path), "--as-of", "2025-06-30", "--format", "json"]
    plain = json.loads(CliRunner().invoke(main, args).stdout)
    assert plain["patients"][0]["molecular_response"] != "MR4"
    result = CliRunner().invoke(main, [*args, "--terminology-server", fhir_base])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["patients"][0]["molecular_response"] == "MR4"
    assert fhir_server.stats()["byInteraction"]["operation"] > 0
