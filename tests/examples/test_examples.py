"""The bundled example patients and the readings a clinician would expect for them.

``expected_readings.json`` was derived by hand from clinical-rules.md and the conventions in
fhir_cml/domain/config.py (examples/README.md explains each judgement call); it is an oracle
independent of the rule code. The reading tests run the command line in-process, exactly as
``fhir-cml assess examples/<file> --as-of 2025-06-30 --guideline <g> --format json``.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fhir.resources.R4B.bundle import Bundle

from fhir_cml.cli import main
from fhir_cml.fhir import canonical
from tests.examples import build_examples

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
EXPECTED = json.loads((Path(__file__).with_name("expected_readings.json")).read_text("utf-8"))
AS_OF = EXPECTED["as_of"]
CASES = EXPECTED["examples"]
FILES = sorted(path.name for path in EXAMPLES.glob("*.json"))

# Absolute tolerance for numbers, by field name; anything else must match exactly.
TOLERANCE = {"value": 0.01, "is_percent": 1e-9, "trough_ng_ml": 0.5, "daily_dose_mg": 1e-9}
BCR_ABL1_CODES = {"69380-4", "55147-3", "46434-7", "50195-7", "82905-1", "52132-8"}
TROUGH_CODES = {"103609-4", "57844-3"}
MUTATION_CODES = {"69548-6"}
TKI_ATC = {"L01EA01", "L01EA02", "L01EA03", "L01EA04", "L01EA05", "L01EA06"}
REFERENCE = re.compile(
    r"^(Patient|Condition|Observation|MedicationStatement|MedicationRequest|MedicationDispense|"
    r"AdverseEvent)/[A-Za-z0-9\-.]{1,64}$"
)


def _case_id(case: dict[str, Any]) -> str:
    return str(case["file"]).removesuffix(".json")


READINGS = [
    pytest.param(case, guideline, id=f"{_case_id(case)}-{guideline}")
    for case in CASES
    for guideline in case["guidelines"]
]


_MISSING = object()


@cache
def _assess(file: str, guideline: str) -> dict[str, Any]:
    args = [
        "assess",
        str(EXAMPLES / file),
        "--as-of",
        AS_OF,
        "--guideline",
        guideline,
        "--format",
        "json",
    ]
    if (EXAMPLES / "conceptmaps").is_dir():  # the site's ConceptMaps, as ./scripts/demo passes
        args += ["--concept-map", str(EXAMPLES / "conceptmaps")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, (
        f"fhir-cml {' '.join(args)} exited {result.exit_code}:\n{result.output}"
    )
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def _compare(expected: Any, actual: Any, path: str, problems: list[str]) -> None:
    """Collect every difference between an expected fragment and the actual JSON."""
    if actual is _MISSING:
        problems.append(f"{path}: missing (expected {expected!r})")
        return
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            problems.append(f"{path}: expected an object, got {actual!r}")
            return
        for key, value in expected.items():
            _compare(value, actual.get(key, _MISSING), f"{path}.{key}", problems)
        return
    field = path.rsplit(".", 1)[-1]
    numeric = isinstance(expected, int | float) and not isinstance(expected, bool)
    if numeric and isinstance(actual, int | float) and not isinstance(actual, bool):
        if not math.isclose(actual, expected, rel_tol=1e-9, abs_tol=TOLERANCE.get(field, 0.0)):
            problems.append(f"{path}: expected {expected!r}, got {actual!r}")
        return
    if isinstance(expected, str) and isinstance(actual, str) and field in {"date", "start"}:
        actual = actual[:10]  # a date-time is fine where a date is expected
    if actual != expected:
        problems.append(f"{path}: expected {expected!r}, got {actual!r}")


def _check_patient(expected: dict[str, Any], patient: dict[str, Any], problems: list[str]) -> None:
    plain = {
        key: value
        for key, value in expected.items()
        if key not in {"risk_scores", "recommendations", "issues_present", "interactions"}
    }
    _compare(plain, patient, "patient", problems)

    scores = patient.get("risk_scores") or {}
    for name, score in expected.get("risk_scores", {}).items():
        actual = scores.get(name)
        if score["category"] == "not-evaluable":
            # Not computable: reported as not-evaluable (without a value) or left out.
            if actual is not None:
                _compare({"category": "not-evaluable"}, actual, f"risk_scores.{name}", problems)
                if actual.get("value") is not None:
                    problems.append(
                        f"risk_scores.{name}.value: expected none, got {actual['value']!r}"
                    )
            continue
        _compare(score, actual if actual is not None else _MISSING, f"risk_scores.{name}", problems)

    if "recommendations" in expected:
        codes = {item.get("code") for item in patient.get("recommendations") or []}
        wanted = expected["recommendations"]
        missing = [code for code in wanted["present"] if code not in codes]
        unwanted = [code for code in wanted["absent"] if code in codes]
        if missing:
            problems.append(f"recommendations: missing {missing} (got {sorted(codes)})")
        if unwanted:
            problems.append(f"recommendations: must not suggest {unwanted} (got {sorted(codes)})")

    if "issues_present" in expected:
        issues = {item.get("code") for item in patient.get("issues") or []}
        for code in expected["issues_present"]:
            if code not in issues:
                problems.append(f"issues: missing {code!r} (got {sorted(issues)})")

    if "interactions" in expected:
        effects = sorted(item.get("effect") for item in patient.get("interactions") or [])
        wanted_effects = sorted(item["effect"] for item in expected["interactions"])
        if effects != wanted_effects:
            problems.append(f"interactions: expected effects {wanted_effects}, got {effects}")


@pytest.mark.parametrize(("case", "guideline"), READINGS)
def test_example_reading(case: dict[str, Any], guideline: str) -> None:
    document = _assess(case["file"], guideline)
    problems: list[str] = []
    _compare({"as_of": AS_OF, "guideline": guideline}, document, "document", problems)
    patients = document.get("patients") or []
    assert len(patients) == 1, f"expected one assessed patient, got {len(patients)}"
    patient = patients[0]
    _compare(case["patient"], patient.get("patient", _MISSING), "patient.patient", problems)
    _check_patient(case["expected"], patient, problems)
    _compare(case["guidelines"][guideline], patient, "patient", problems)
    assert not problems, f"{case['file']} ({guideline}):\n  " + "\n  ".join(problems)


# --- The example files themselves: these need nothing but the files ---------------------------


@pytest.mark.parametrize("name", FILES)
def test_example_parses_as_r4_bundle(name: str) -> None:
    bundle = Bundle.model_validate_json((EXAMPLES / name).read_text("utf-8"))
    assert bundle.type == "transaction"
    assert bundle.entry


def _codes(concept: dict[str, Any] | None) -> set[str]:
    return {coding.get("code", "") for coding in (concept or {}).get("coding", [])}


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        for value in node.values():
            found += _references(value)
        return found
    if isinstance(node, list):
        return [ref for item in node for ref in _references(item)]
    return []


def _dates(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = []
        for key, value in node.items():
            if key in {
                "effectiveDateTime",
                "issued",
                "date",
                "recordedDate",
                "dateAsserted",
                "onsetDateTime",
            }:
                found.append(value)
            else:
                found += _dates(value)
        return found
    if isinstance(node, list):
        return [value for item in node for value in _dates(item)]
    return []


@pytest.mark.parametrize("name", FILES)
def test_example_parses_into_the_documented_shapes(name: str) -> None:
    """Transaction conventions, relative references, profiles, and nothing after the as-of date."""
    bundle = json.loads((EXAMPLES / name).read_text("utf-8"))
    resources = [entry["resource"] for entry in bundle["entry"]]
    present = {f"{r['resourceType']}/{r['id']}" for r in resources}
    assert len(present) == len(resources), "resource ids repeat"
    patients = [r for r in resources if r["resourceType"] == "Patient"]
    assert len(patients) == 1, "one patient per example"
    for entry in bundle["entry"]:
        resource = entry["resource"]
        path = f"{resource['resourceType']}/{resource['id']}"
        assert re.fullmatch(
            r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            entry["fullUrl"],
        )
        assert entry["request"] == {"method": "PUT", "url": path}
        assert resource["id"].startswith(patients[0]["id"]), path
        for reference in _references(resource):
            assert REFERENCE.match(reference), f"{path}: {reference} is not a relative reference"
            assert reference in present, f"{path}: {reference} does not resolve in the Bundle"
        for value in _dates(resource):
            assert date.fromisoformat(value[:10]).isoformat() <= AS_OF, (
                f"{path}: {value} after {AS_OF}"
            )
        profiles = set(resource.get("meta", {}).get("profile", []))
        if resource["resourceType"] == "Observation":
            codes = _codes(resource["code"])
            if codes & BCR_ABL1_CODES:
                assert canonical.PROFILE_BCR_ABL1 in profiles, path
                assert "abl1-copies" in {
                    c for comp in resource["component"] for c in _codes(comp["code"])
                }
            if codes & TROUGH_CODES:
                assert canonical.PROFILE_TROUGH in profiles, path
            if codes & MUTATION_CODES:
                assert canonical.PROFILE_MUTATION in profiles, path
                assert canonical.GENOMICS_VARIANT_PROFILE in profiles, path
        if resource["resourceType"] == "MedicationStatement":
            is_tki = bool(_codes(resource["medicationCodeableConcept"]) & TKI_ATC)
            assert (canonical.PROFILE_TKI_STATEMENT in profiles) == is_tki, path


def test_expected_readings_cover_every_example() -> None:
    assert sorted(case["file"] for case in CASES) == FILES
    for case in CASES:
        bundle = json.loads((EXAMPLES / case["file"]).read_text("utf-8"))
        patient_ids = [
            e["resource"]["id"]
            for e in bundle["entry"]
            if e["resource"]["resourceType"] == "Patient"
        ]
        assert case["patient"] == f"Patient/{patient_ids[0]}"
        assert case["guidelines"], case["file"]
        assert set(case["guidelines"]) <= {"eln2020", "eln2013", "eln2009"}


def test_the_site_concept_maps_match_their_source() -> None:
    for name, text in build_examples.site_concept_maps().items():
        assert (EXAMPLES / name).read_text("utf-8") == text, name


def test_examples_match_their_source() -> None:
    """examples/*.json are written by build_examples.py: change the patient there and rerun it."""
    built = build_examples.build()
    assert sorted(built) == FILES
    for name, text in built.items():
        assert (EXAMPLES / name).read_text("utf-8") == text, (
            f"{name} differs from tests/examples/build_examples.py; run "
            "`python -m tests.examples.build_examples`"
        )
