"""The example patients through the whole loop: seeded on the test server, read back by
``fhir-cml sync``, assessed, written, and the written resources checked against the readings
derived by hand in tests/examples/expected_readings.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.outbound.care_plan import recommendation_code
from tests.support.fhir_server import FhirTestServer
from tests.support.sync_helpers import SyncEnv, fingerprint_of, subject_of

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = json.loads((ROOT / "tests" / "examples" / "expected_readings.json").read_text())
EXAMPLES = {e["patient"]: e for e in EXPECTED["examples"]}
# The site's ConceptMap for the laboratory of 22-local-lab-codes, as ./scripts/demo passes it.
# and the dispenses of 23-medication-dispense.
SITE_MAPS = (
    "--concept-map",
    str(ROOT / "examples" / "conceptmaps"),
    "--medication-records",
    "MedicationDispense",
)


@pytest.fixture
def env(fhir_server: FhirTestServer, fhir_base: str, tmp_path: Path) -> SyncEnv:
    for example in EXPECTED["examples"]:
        fhir_server.load(json.loads((ROOT / "examples" / example["file"]).read_text()))
    fhir_server.reset_stats()
    return SyncEnv(fhir_server, fhir_base, tmp_path / "state.sqlite3")


def extension(resource: dict[str, Any], url: str) -> dict[str, Any]:
    [found] = [e for e in resource.get("extension", []) if e["url"] == url]
    return found


def test_every_example_patient_gets_its_reading_written_once(env: SyncEnv) -> None:
    result = env.run("--write-mode", "batch", *SITE_MAPS)
    assert result.exit_code == 0, result.output
    written = env.written()
    risks = {subject_of(r): r for r in written["RiskAssessment"]}
    plans = {subject_of(p): p for p in written["CarePlan"]}
    assert len(risks) == len(written["RiskAssessment"]) == len(EXAMPLES)
    assert len(plans) == len(written["CarePlan"]) == len(EXAMPLES)
    assert len(written["Provenance"]) == len(EXAMPLES)

    for patient, example in EXAMPLES.items():
        expected = example["expected"]
        risk, plan = risks[patient], plans[patient]
        assert fingerprint_of(risk) == fingerprint_of(plan)
        depth = extension(risk, c.EXT_MOLECULAR_RESPONSE)["valueCodeableConcept"]["coding"][0]
        assert depth["code"] == expected["molecular_response"], patient
        eln = {
            e["url"]: e["valueCoding"]["code"]
            for e in extension(risk, c.EXT_ELN_RESPONSE)["extension"]
        }
        wanted = example["guidelines"]["eln2020"]["eln"]
        assert eln["status"] == wanted["status"], patient
        if wanted.get("milestone"):
            assert eln["milestone"] == wanted["milestone"], patient
        codes = {recommendation_code(activity) for activity in plan.get("activity", [])}
        assert set(expected["recommendations"]["present"]) <= codes, patient
        assert not set(expected["recommendations"]["absent"]) & codes, patient
        assert plan["status"] == "draft"
        assert plan["intent"] == "proposal"

    env.server.reset_stats()
    again = env.run("--full", *SITE_MAPS)
    assert again.exit_code == 0, again.output
    assert env.writes() == 0
    assert f"inputs unchanged: {len(EXAMPLES)}" in again.output
