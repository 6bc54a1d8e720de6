"""The FHIR package (profiles/package.tgz) loaded into a FHIR server, and what fhir-cml writes
validated there.

The test FHIR server loads the package as a server loads an implementation guide (``--package``):
its conformance resources are served, and every write claiming one of its profiles is validated
against it with the server's own validator (Medplum's), which matches extensions to slices the
way strict production servers do. Then every example patient is assessed and written back through
the real write path, and each resource the server holds is read back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from fhir_cml.app.writing import WriteSettings, write_back
from fhir_cml.domain import assess
from fhir_cml.ehr.client import FhirClient
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir import inbound
from fhir_cml.fhir.outbound import build
from tests.support.fhir_server import FhirTestServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "profiles" / "package.tgz"
EXAMPLES = ROOT / "profiles" / "examples"
PATIENTS = sorted((ROOT / "examples").glob("*.json"))
AS_OF = date(2025, 6, 30)
RECORDED = datetime(2025, 6, 30, 14, 5, 9, tzinfo=UTC)
FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
# The write path as a deployment that claims the profiles sets it up (docs/sync.md).
CLAIMING = WriteSettings(claim_profiles=True, mode="transaction")


@pytest.fixture(scope="module")
def server(fhir_server_factory: Callable[..., FhirTestServer]) -> FhirTestServer:
    return fhir_server_factory(args=["--package", str(PACKAGE)])


@pytest.fixture
def base(server: FhirTestServer) -> str:
    server.reset()
    return server.base_url


def put(base: str, resource: dict[str, Any]) -> requests.Response:
    url = f"{base}/{resource['resourceType']}/{resource['id']}"
    return requests.put(url, data=json.dumps(resource), headers=FHIR_JSON, timeout=30)


def test_the_package_is_loaded_and_served(base: str) -> None:
    read = requests.get(f"{base}/StructureDefinition/cml-risk-assessment", timeout=30)
    assert read.status_code == 200, read.text
    assert read.json()["url"] == c.PROFILE_RISK_ASSESSMENT
    found = requests.get(
        f"{base}/ConceptMap", params={"url": c.CONCEPT_MAP_MCODE}, timeout=30
    ).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [
        "response-to-mcode-disease-status"
    ]


STORED_EXAMPLES = sorted(
    p for p in EXAMPLES.glob("*.json") if not p.name.startswith(("Bundle-", "Parameters-"))
)


@pytest.mark.parametrize("path", STORED_EXAMPLES, ids=lambda p: p.stem)
def test_every_stored_example_of_the_package_is_accepted(base: str, path: Path) -> None:
    resource = json.loads(path.read_text(encoding="utf-8"))
    assert resource["meta"]["profile"], path.name
    response = put(base, resource)
    assert response.status_code in (200, 201), response.text


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("name", "break_it", "said"),
    [
        (
            "CarePlan-example-suggestions.json",
            lambda r: r.__setitem__("intent", "order"),
            "intent",
        ),
        (
            "RiskAssessment-example-reading.json",
            lambda r: r.__setitem__(
                "extension", [e for e in r["extension"] if e["url"] != c.EXT_MOLECULAR_RESPONSE]
            ),
            "molecularResponse",
        ),
        (
            "RiskAssessment-example-reading.json",
            lambda r: r.__setitem__(
                "extension", [e for e in r["extension"] if e["url"] != c.EXT_ELN_RESPONSE]
            ),
            "elnResponse",
        ),
        (
            "Provenance-example-provenance.json",
            lambda r: r.pop("extension"),
            "Provenance.extension",
        ),
    ],
    ids=["care-plan-order", "no-molecular-response", "no-eln-response", "provenance-no-as-of"],
)
def test_the_server_refuses_what_breaks_a_profile(
    base: str, name: str, break_it: Callable[[dict[str, Any]], object], said: str
) -> None:
    """The profiles are enforced there, so the acceptances above mean something."""
    resource = example(name)
    break_it(resource)
    response = put(base, resource)
    assert 400 <= response.status_code < 500, response.text
    assert said in response.text


@pytest.mark.parametrize("path", PATIENTS, ids=lambda p: p.stem)
def test_what_fhir_cml_writes_for_every_example_patient_is_valid_there(
    server: FhirTestServer, base: str, path: Path
) -> None:
    bundle = json.loads(path.read_text(encoding="utf-8"))
    server.load(bundle)
    loaded = inbound.load_paths([path], inbound.MappingOptions(now=RECORDED))
    client = FhirClient(base)
    try:
        for record in loaded.records:
            assessment = assess(record, AS_OF)
            outcome = write_back(client, assessment, RECORDED, settings=CLAIMING)
            assert outcome.ok, outcome.error
            # The reading, the suggestions, each proposed request, the Provenance.
            proposed = build(assessment, RECORDED).requests
            assert len(outcome.created) == 3 + len(proposed), outcome
            for location in outcome.created:
                stored = client.read(*location.split("/"))
                assert stored["meta"]["profile"], location
                assert stored["text"]["status"] == "generated"
    finally:
        client.close()
