"""Every display fhir-cml writes is its code system's display.

A receiver may show a coding's display instead of its own text for the code, so a wrong display
is a wrong statement. Checked here, against the source of each code system:

- the project's CodeSystems (fhir_cml/conformance);
- the HL7 code systems of FHIR R4 (the R4 definitions that profiles/tools installs);
- ATC: the substance names of the inbound mapper's drug tables (fhir_cml.fhir.inbound);
- HGVS: the expression itself;
- the example site's own codes (a laboratory's): its ConceptMaps in examples/conceptmaps;
- every other system (LOINC, SNOMED CT, RxNorm, HGNC, ...): fhir_cml.fhir.terminology, where each
  display records the page it was seen on. A display for a code not there fails: write none.

What is checked: examples/, the conformance resources (ValueSets, ConceptMaps, the
CapabilityStatement, PlanDefinitions; not the CodeSystems, which are the source), every resource
the builders write for the test cases, and the CDS cards' codings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from fhir_cml import conformance
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir import terminology
from fhir_cml.fhir.inbound.medications import CYP3A4_ATC, TKI_ATC

ROOT = Path(__file__).resolve().parents[2]
R4 = ROOT / "profiles" / "tools" / "node_modules" / "@medplum" / "definitions" / "dist" / "fhir"
R4_TERMINOLOGY = ("valuesets.json", "v3-codesystems.json", "v2-tables.json")
RECORDED = datetime(2025, 6, 30, 14, 5, 9, tzinfo=UTC)

Coding = tuple[str, str, str, str]  # where, system, code, display


def codings(value: Any, where: str) -> Iterator[Coding]:
    """Every (system, code, display) under ``value``: Codings, and the targets of ConceptMaps and
    the concepts of ValueSet includes (which name their system one level up)."""
    if isinstance(value, dict):
        system = value.get("system")
        if isinstance(system, str) and isinstance(value.get("code"), str) and "display" in value:
            yield where, system, value["code"], value["display"]
        if isinstance(system, str) and isinstance(value.get("concept"), list):
            for concept in value["concept"]:
                if "display" in concept:
                    yield where, system, concept["code"], concept["display"]
        if isinstance(value.get("target"), str) and isinstance(value.get("element"), list):
            for element in value["element"]:
                for target in element.get("target", []):
                    if "display" in target:
                        yield where, value["target"], target["code"], target["display"]
        for key, item in value.items():
            if key not in ("concept", "element"):
                yield from codings(item, where)
    elif isinstance(value, list):
        for item in value:
            yield from codings(item, where)


@cache
def r4_displays() -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}

    def walk(system: str, concepts: list[dict[str, Any]]) -> None:
        for concept in concepts:
            if "display" in concept:
                out[(system, concept["code"])] = concept["display"]
            walk(system, concept.get("concept", []))

    for name in R4_TERMINOLOGY:
        path = R4 / "r4" / name
        assert path.exists(), f"{path} is missing: install the profile tools (scripts/test does)"
        for entry in json.loads(path.read_text(encoding="utf-8"))["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] == "CodeSystem":
                walk(resource["url"], resource.get("concept", []))
    return out


@cache
def project_displays() -> dict[tuple[str, str], str]:
    return {
        (r["url"], concept["code"]): concept["display"]
        for r in conformance.all_resources()
        if r["resourceType"] == "CodeSystem"
        for concept in r["concept"]
    }


@cache
def site_displays() -> dict[tuple[str, str], str]:
    """The example site's own codes (a laboratory's), as its ConceptMaps in examples/conceptmaps
    name them: the site is their source."""
    out: dict[tuple[str, str], str] = {}
    for path in sorted((ROOT / "examples" / "conceptmaps").glob("*.json")):
        for group in json.loads(path.read_text(encoding="utf-8")).get("group", []):
            for element in group.get("element", []) if group.get("source") else []:
                if "display" in element:
                    out[(group["source"], element["code"])] = element["display"]
    return out


ATC_NAMES = {code: str(name) for code, name in {**TKI_ATC, **CYP3A4_ATC}.items()}


def expected(system: str, code: str) -> str | None:
    """The display the code's source gives, or None when no source gives one."""
    if system.startswith(f"{c.BASE}/"):
        return project_displays().get((system, code))
    if (system, code) in site_displays():
        return site_displays()[(system, code)]
    if system.startswith(("http://terminology.hl7.org/", "http://hl7.org/fhir/")):
        return r4_displays().get((system, code))
    if system == c.ATC:
        name = ATC_NAMES.get(code)
        return terminology.atc_display(code, name) if name else None
    return terminology.display(system, code) if terminology.has_display(system, code) else None


def written() -> Iterator[Coding]:
    for path in sorted((ROOT / "examples").glob("*.json")):
        yield from codings(json.loads(path.read_text(encoding="utf-8")), path.name)
    for resource in conformance.all_resources():
        if resource["resourceType"] != "CodeSystem":
            yield from codings(resource, f"{resource['resourceType']}/{resource['id']}")
    from fhir_cml.fhir.outbound import build, result_bundle, supersede
    from fhir_cml.fhir.outbound.supersede import Successor
    from tests.unit.cases import RECORDS, assessment

    for name in sorted(RECORDS):
        a = assessment(name)
        yield from codings(result_bundle([a], RECORDED), f"case {name}")
        w = build(a, RECORDED)
        old = supersede(
            {**w.care_plan, "id": "old"},
            {**w.risk_assessment, "id": "old"},
            Successor("RiskAssessment/new", "CarePlan/new"),
        )
        yield from codings(old, f"case {name} superseded")
    from fhir_cml.web.cds.cards import override_reasons

    yield from codings(override_reasons(), "CDS card overrideReasons")


WRITTEN = list(written())


def test_something_is_checked() -> None:
    systems = {system for _, system, _, _ in WRITTEN}
    assert {c.LOINC, c.SNOMED, c.CS_CML, c.ATC, c.RXNORM} <= systems
    assert len(WRITTEN) > 500


@pytest.mark.parametrize(
    "system",
    sorted({system for _, system, _, _ in WRITTEN}),
)
def test_every_display_written_is_its_sources(system: str) -> None:
    wrong = sorted(
        {
            f"{where}: {code} {display!r} (source: {expected(system, code)!r})"
            for where, s, code, display in WRITTEN
            if s == system and display != expected(system, code)
        }
    )
    assert not wrong, "\n".join(wrong[:20]) + (
        "\n(an external code without a confirmed display must be written without one; add a "
        "confirmed display with its source to fhir_cml/fhir/terminology.py)"
    )


def test_the_issue_displays_are_right() -> None:
    """LOINC 103609-4 is the 24-hours-post-dose level, 45359-7 the length of time post dose."""
    assert terminology.display(c.LOINC, "103609-4").endswith("--24 hours post dose")
    assert terminology.display(c.LOINC, "45359-7") == "Length of time post dose"
    shown = {(s, code): d for _, s, code, d in WRITTEN}
    assert shown[(c.LOINC, "103609-4")] == terminology.display(c.LOINC, "103609-4")
    assert shown[(c.LOINC, "45359-7")] == "Length of time post dose"


def test_every_confirmed_display_says_where_it_was_seen() -> None:
    for (system, code), confirmed in terminology.CONFIRMED.items():
        assert confirmed.display.strip() == confirmed.display, (system, code)
        assert "https://" in confirmed.source or "not recorded" in confirmed.source, (
            system,
            code,
        )


def test_a_wrong_display_is_caught() -> None:
    wrong = {"system": c.LOINC, "code": "103609-4", "display": "Imatinib --trough"}
    [(_, system, code, display)] = list(codings(wrong, "test"))
    assert display != expected(system, code)
    unknown = {"system": c.SNOMED, "code": "84229001", "display": "Fatigue (finding)"}
    [(_, system, code, display)] = list(codings(unknown, "test"))
    assert expected(system, code) is None
