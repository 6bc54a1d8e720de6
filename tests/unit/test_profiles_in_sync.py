"""profiles/ and the Python code cannot drift apart.

The FSH generated from Python is committed and must equal what the generator writes now; every
URL and code in fhir_cml/fhir/canonical.py and every code of the response model's vocabulary must
be in the committed conformance resources; the copy the service ships (fhir_cml/conformance) must
equal profiles/fsh-generated/resources. The rebuild itself (FSH -> JSON) is tested in
tests/integration/test_profiles_build.py.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import fhir_cml
from fhir_cml import conformance
from fhir_cml.domain import vocabulary
from fhir_cml.domain.rules import catalogue
from fhir_cml.fhir import canonical
from fhir_cml.reporting import citation_text

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "profiles"
RESOURCES = PROFILES / "fsh-generated" / "resources"


def _tool(name: str) -> ModuleType:
    path = PROFILES / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


GEN = _tool("generate_fsh")
PACKAGE = _tool("make_package")
EXAMPLES = _tool("make_examples")
CONCEPT_MAPS = _tool("conceptmaps")


def committed() -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(RESOURCES.glob("*.json"))]


def by_url() -> dict[str, dict[str, Any]]:
    return {r["url"]: r for r in committed() if "url" in r}


def test_committed_generated_fsh_is_what_the_generator_writes() -> None:
    expected = GEN.render()
    directory = PROFILES / "input" / "fsh" / "generated"
    assert sorted(p.name for p in directory.glob("*.fsh")) == sorted(expected)
    for name, text in expected.items():
        assert (directory / name).read_text(encoding="utf-8") == text, (
            f"{name} is stale: run profiles/build"
        )


def test_shipped_copy_equals_the_build_output() -> None:
    shipped = ROOT / "fhir_cml" / "conformance"
    names = sorted(p.name for p in RESOURCES.glob("*.json"))
    assert names, "profiles/fsh-generated/resources is empty"
    assert sorted(p.name for p in shipped.glob("*.json")) == names
    for name in names:
        assert (shipped / name).read_bytes() == (RESOURCES / name).read_bytes(), name


def test_loader_reads_every_shipped_resource() -> None:
    everything = conformance.all_resources()
    assert len(everything) == len(committed())
    capability = conformance.load("CapabilityStatement", "fhir-cml")
    assert capability["url"] == canonical.CAPABILITY_STATEMENT
    assert conformance.by_url(canonical.PROFILE_CARE_PLAN)["id"] == "cml-care-plan"
    with pytest.raises(KeyError):
        conformance.load("ValueSet", "no-such-value-set")


def test_configuration_matches_the_package() -> None:
    config = (PROFILES / "sushi-config.yaml").read_text(encoding="utf-8")
    assert f"canonical: {canonical.BASE}\n" in config
    assert f"version: {fhir_cml.__version__}\n" in config
    assert "fhirVersion: 4.0.1\n" in config
    for resource in committed():
        if resource["resourceType"] == "PlanDefinition":
            assert resource["version"] == catalogue.RULESET_VERSION
        else:
            assert resource.get("version") == fhir_cml.__version__, resource["id"]


# Which kind of resource each canonical.py URL names.
KINDS = {
    "CS_": "CodeSystem",
    "EXT_": "StructureDefinition",
    "PROFILE_": "StructureDefinition",
    "VS_": "ValueSet",
    "OPERATION_": "OperationDefinition",
    "CAPABILITY_": "CapabilityStatement",
    "CONCEPT_MAP_": "ConceptMap",
}


@pytest.mark.parametrize("name", sorted(GEN.url_constants()))
def test_every_canonical_url_is_in_the_conformance_resources(name: str) -> None:
    url = GEN.url_constants()[name]
    kind = next((k for prefix, k in KINDS.items() if name.startswith(prefix)), None)
    if kind is not None:
        resource = by_url().get(url)
        assert resource is not None, f"{name} = {url} names no conformance resource"
        assert resource["resourceType"] == kind
        if kind == "StructureDefinition" and name.startswith("EXT_"):
            assert resource["type"] == "Extension"
        if kind == "StructureDefinition" and name.startswith("PROFILE_"):
            assert resource["type"] != "Extension"
    else:
        # identifier systems, BASE and external systems: used somewhere in what we publish
        text = "\n".join(json.dumps(r) for r in committed())
        assert json.dumps(url)[1:-1] in text, f"{name} = {url} is used by no profile"


def test_every_rule_has_its_plan_definition() -> None:
    urls = by_url()
    for rule in catalogue.RULES.values():
        plan = urls.get(canonical.plan_definition(rule.id))
        assert plan is not None, rule.id
        assert plan["resourceType"] == "PlanDefinition"
        assert plan["title"] == rule.title
        cited = [x["citation"] for x in plan.get("relatedArtifact", [])]
        assert cited == [citation_text(c) for c in rule.citations], rule.id
    plans = [r for r in committed() if r["resourceType"] == "PlanDefinition"]
    assert len(plans) == len(catalogue.RULES)


def test_every_recommendation_is_the_action_of_some_rule() -> None:
    actions = {
        coding["code"]
        for plan in committed()
        if plan["resourceType"] == "PlanDefinition"
        for action in plan.get("action", [])
        for concept in action.get("code", [])
        for coding in concept["coding"]
        if coding["system"] == canonical.CS_RECOMMENDATION
    }
    assert actions == {r.value for r in vocabulary.Recommendation}


ENUMS: dict[str, type[StrEnum]] = {
    canonical.CS_MOLECULAR_RESPONSE: vocabulary.ResponseDepth,
    canonical.CS_ELN_RESPONSE: vocabulary.ElnStatus,
    canonical.CS_ELN_MILESTONE: vocabulary.Milestone,
    canonical.CS_TFR_STATUS: vocabulary.TfrStatus,
    canonical.CS_TDM_STATUS: vocabulary.TdmStatus,
    canonical.CS_THERAPY_STATUS: vocabulary.TherapyStatus,
    canonical.CS_RISK_CATEGORY: vocabulary.RiskCategory,
    canonical.CS_RECOMMENDATION: vocabulary.Recommendation,
    canonical.CS_GUIDELINE: vocabulary.Guideline,
    canonical.CS_ISSUE: vocabulary.IssueCode,
    canonical.CS_TRANSCRIPT: vocabulary.Transcript,
    canonical.CS_STOP_REASON: vocabulary.StopReason,
}


def codes_of(system: str) -> list[str]:
    cs = by_url()[system]
    assert cs["resourceType"] == "CodeSystem"
    assert cs["content"] == "complete"
    for concept in cs["concept"]:
        assert concept.get("display"), concept["code"]
        assert concept.get("definition"), concept["code"]
    return [c["code"] for c in cs["concept"]]


@pytest.mark.parametrize("system", sorted(ENUMS))
def test_each_code_system_holds_exactly_the_engines_codes(system: str) -> None:
    assert codes_of(system) == [m.value for m in ENUMS[system]]


def test_every_project_code_system_is_mapped_to_its_enum() -> None:
    systems = {u for n, u in GEN.url_constants().items() if n.startswith("CS_")}
    assert systems == {*ENUMS, canonical.CS_CML, canonical.CS_CDS_OVERRIDE_REASON}


def test_override_reason_code_system_holds_the_cards_reasons() -> None:
    assert codes_of(canonical.CS_CDS_OVERRIDE_REASON) == [
        c for c, _ in canonical.CDS_OVERRIDE_REASONS
    ]


def test_cml_code_system_holds_every_local_code_of_canonical() -> None:
    names = GEN.cml_code_names()
    assert "ABL1_COPIES" in names
    assert "EUTOS_SCORE" in names
    assert sorted(codes_of(canonical.CS_CML)) == sorted(getattr(canonical, n) for n in names)


@pytest.mark.parametrize(
    "system", sorted({*ENUMS, canonical.CS_CML, canonical.CS_CDS_OVERRIDE_REASON})
)
def test_each_code_system_has_its_value_set(system: str) -> None:
    vs = by_url().get(system.replace("/CodeSystem/", "/ValueSet/"))
    assert vs is not None
    assert vs["compose"]["include"] == [{"system": system}]


def value_set_codes(url: str) -> set[tuple[str, str]]:
    vs = by_url()[url]
    out: set[tuple[str, str]] = set()
    for include in vs["compose"]["include"]:
        out |= {(include["system"], c["code"]) for c in include.get("concept", [])}
        for inner in include.get("valueSet", []):
            out |= value_set_codes(inner)
    return out


def test_value_sets_hold_the_codes_the_inbound_mapper_reads() -> None:
    from fhir_cml.fhir.inbound import codes as inbound

    unconfirmed = set(GEN.UNCONFIRMED)
    bcr = set(GEN.observation_codes(inbound.BCR_ABL1_KINDS))
    assert ("http://loinc.org", "69380-4") in bcr
    assert value_set_codes(canonical.VS_BCR_ABL1_CODES) == bcr - unconfirmed
    trough = set(GEN.observation_codes([inbound.Kind.TROUGH]))
    assert (
        value_set_codes(f"{canonical.BASE}/ValueSet/imatinib-trough-codes") == trough - unconfirmed
    )
    tki = {(canonical.RXNORM, code) for code in GEN.TKI_RXNORM} | {
        (canonical.ATC, code) for code in GEN.TKI_ATC
    }
    assert value_set_codes(canonical.VS_TKI) == tki
    cyp = {(canonical.RXNORM, code) for code in GEN.CYP3A4_RXNORM} | {
        (canonical.ATC, code) for code in GEN.CYP3A4_ATC
    }
    assert value_set_codes(canonical.VS_CYP3A4) == cyp


def test_value_sets_name_only_drugs_the_engine_knows() -> None:
    from fhir_cml.domain.rules.interactions import STRONG_CYP3A4

    tki = by_url()[canonical.VS_TKI]["compose"]["include"]
    atc = next(i for i in tki if i["system"] == canonical.ATC)
    assert {c["display"] for c in atc["concept"]} == {t.value for t in vocabulary.Tki}
    inhibitors = value_set_codes(f"{canonical.BASE}/ValueSet/strong-cyp3a4-inhibitors")
    inducers = value_set_codes(f"{canonical.BASE}/ValueSet/strong-cyp3a4-inducers")
    assert not inhibitors & inducers
    for code, name in GEN.CYP3A4_ATC.items():
        effect = STRONG_CYP3A4[name].value
        assert (canonical.ATC, code) in (inhibitors if effect == "strong-inhibitor" else inducers)
    assert sorted(GEN.CYP3A4_NAME_ONLY) == ["grapefruit"]


# --- Publication metadata, ConceptMaps, examples and the package -------------------------------


@pytest.mark.parametrize("resource", committed(), ids=lambda r: f"{r['resourceType']}/{r['id']}")
def test_every_resource_carries_the_guides_metadata(resource: dict[str, Any]) -> None:
    assert resource["status"] == "draft"  # the guide is a draft: so are its rules
    assert resource["experimental"] is False
    assert resource["publisher"] == "fhir-cml"
    assert resource["contact"][0]["telecom"][0]["value"].startswith("https://")
    assert resource["jurisdiction"] == [
        {"coding": [{"system": canonical.M49, "code": "001", "display": "World"}]}
    ]
    assert len(resource["date"]) >= 10
    assert resource["text"]["status"] == "generated"


def test_value_sets_and_maps_with_snomed_or_loinc_state_their_copyright() -> None:
    checked = 0
    for resource in committed():
        if resource["resourceType"] not in ("ValueSet", "ConceptMap"):
            continue
        systems = GEN_SYSTEMS(resource)
        for system, owner in (
            (canonical.SNOMED, "SNOMED International"),
            (canonical.LOINC, "Regenstrief"),
        ):
            if system in systems:
                assert owner in resource.get("copyright", ""), resource["id"]
                checked += 1
        if not systems & {canonical.SNOMED, canonical.LOINC}:
            assert "copyright" not in resource, resource["id"]
    assert checked >= 5


def GEN_SYSTEMS(resource: dict[str, Any]) -> set[str]:
    includes = resource.get("compose", {}).get("include", [])
    found = {i["system"] for i in includes if "system" in i and i.get("concept")}
    found |= {g["target"] for g in resource.get("group", []) if "target" in g}
    return found


RESPONSE_CODE_SYSTEMS = {
    canonical.CS_MOLECULAR_RESPONSE: vocabulary.ResponseDepth,
    canonical.CS_ELN_RESPONSE: vocabulary.ElnStatus,
    canonical.CS_TFR_STATUS: vocabulary.TfrStatus,
}


@pytest.mark.parametrize("url", [canonical.CONCEPT_MAP_MCODE, canonical.CONCEPT_MAP_RKKP])
def test_concept_maps_map_every_code_of_the_response_code_systems(url: str) -> None:
    cmap = by_url()[url]
    for group in cmap["group"]:
        codes = [e["code"] for e in group["element"]]
        if group["source"] in RESPONSE_CODE_SYSTEMS:
            assert sorted(codes) == sorted(m.value for m in RESPONSE_CODE_SYSTEMS[group["source"]])
        for element in group["element"]:
            for target in element["target"]:
                assert ("code" in target) == (target["equivalence"] != "unmatched")
                if target["equivalence"] in ("narrower", "inexact", "unmatched"):
                    assert target.get("comment"), (element["code"], target)


def test_the_concept_maps_say_what_is_not_confirmed() -> None:
    rkkp = by_url()[canonical.CONCEPT_MAP_RKKP]
    assert "Not confirmed" in rkkp["description"]
    assert canonical.RKKP_CML_RESPONSE_VS in rkkp["description"]
    mcode = by_url()[canonical.CONCEPT_MAP_MCODE]
    assert mcode["targetCanonical"] == canonical.MCODE_CONDITION_STATUS_TREND_VS


def test_the_committed_examples_are_what_the_tool_writes() -> None:
    expected = EXAMPLES.examples()
    committed_examples = {
        p.name: json.loads(p.read_text(encoding="utf-8"))
        for p in (PROFILES / "examples").glob("*.json")
    }
    assert committed_examples == expected, "profiles/examples is stale: run profiles/build"


def test_every_profile_has_an_example() -> None:
    claimed = {
        profile
        for resource in EXAMPLES.examples().values()
        for profile in resource.get("meta", {}).get("profile", [])
    }
    profiles = {
        r["url"]
        for r in committed()
        if r["resourceType"] == "StructureDefinition" and r["type"] != "Extension"
    }
    assert profiles <= claimed, profiles - claimed


def test_the_committed_package_holds_the_resources_and_examples() -> None:
    built = PACKAGE.contents(RESOURCES, PROFILES / "examples")
    assert PACKAGE.read(PROFILES / "package.tgz") == built, "profiles/package.tgz is stale"
    manifest = json.loads(built["package/package.json"])
    assert manifest["name"] == "org.fhir-cml.ig"
    assert manifest["version"] == fhir_cml.__version__
    assert manifest["canonical"] == canonical.BASE
    assert manifest["fhirVersions"] == ["4.0.1"]
    index = json.loads(built["package/.index.json"])["files"]
    assert {row["filename"] for row in index} == {p.name for p in RESOURCES.glob("*.json")}
    assert all(row["url"].startswith(canonical.BASE) for row in index)
