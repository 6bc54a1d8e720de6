"""Each example patient, rewritten the way real EHRs send it, reads the same.

The shapes: TKIs as US Core MedicationRequests instead of MedicationStatements; every result under
a laboratory's own code and unit with a site ConceptMap mapping them; values as text ("0,05 %",
"< 0.0032 %"); and all of these together. The reading (response, ELN, TFR, TDM, therapy, schedule,
suggestions) must equal the reading of the canonical example.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from fhir_cml.domain import Guideline, assess
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound import MappingOptions, records_from_resources
from fhir_cml.fhir.inbound.conceptmaps import ConceptMaps, concept_maps_from
from fhir_cml.reporting import to_contract

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FILES = sorted(path.name for path in EXAMPLES.glob("*.json"))
AS_OF = date(2025, 6, 30)
NOW = datetime(2025, 6, 30, 12, tzinfo=UTC)
LAB = "https://lab.example.org/fhir/CodeSystem/local-tests"
LAB_UNITS = "https://lab.example.org/fhir/CodeSystem/local-units"
_REQUEST_STATUS = {
    "active": "active",
    "completed": "completed",
    "stopped": "stopped",
    "on-hold": "on-hold",
    "unknown": "unknown",
    "entered-in-error": "entered-in-error",
    "not-taken": "cancelled",
    "intended": "draft",
}

Shape = Callable[[list[dict[str, Any]], ConceptMaps], None]


def as_medication_requests(resources: list[dict[str, Any]], _: ConceptMaps) -> None:
    """MedicationStatement -> US Core MedicationRequest (bounds period, authoredOn, intent)."""
    for n, res in enumerate(resources):
        if res["resourceType"] != "MedicationStatement":
            continue
        period = dict(res.get("effectivePeriod") or {})
        if "effectiveDateTime" in res:
            period = {"start": res["effectiveDateTime"]}
        ended = res["status"] in ("completed", "stopped")
        if ended and "end" not in period and "dateAsserted" in res:
            period["end"] = res["dateAsserted"]
        dosages = copy.deepcopy(res.get("dosage") or [{}])
        for dosage in dosages:
            dosage.setdefault("timing", {}).setdefault("repeat", {})["boundsPeriod"] = period
        request: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "id": res["id"],
            "meta": {
                "profile": [
                    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-medicationrequest"
                ]
            },
            "status": _REQUEST_STATUS[res["status"]],
            "intent": "order",
            "subject": res["subject"],
            "authoredOn": period.get("start"),
            "dosageInstruction": dosages,
        }
        for name in ("medicationCodeableConcept", "medicationReference", "contained"):
            if name in res:
                request[name] = res[name]
        if res.get("statusReason"):
            request["statusReason"] = res["statusReason"][0]
        resources[n] = request


def as_local_codes(resources: list[dict[str, Any]], maps: ConceptMaps) -> None:
    """Every LOINC / cml code of results and components -> the laboratory's own; units too."""

    def local(concept: dict[str, Any]) -> None:
        for coding in concept.get("coding") or []:
            if coding.get("system") in (c.LOINC, c.CS_CML):
                own = f"L-{coding['code']}"
                maps.codes[(LAB, own)] = (coding["system"], coding["code"])
                coding.update(system=LAB, code=own)

    def local_unit(quantity: dict[str, Any] | None) -> None:
        if quantity and quantity.get("system") == c.UCUM and "code" in quantity:
            own = f"u:{quantity['code']}"
            maps.units[(LAB_UNITS, own)] = quantity["code"]
            quantity.update(system=LAB_UNITS, code=own, unit=own)

    for res in resources:
        if res["resourceType"] != "Observation":
            continue
        local(res["code"])
        local_unit(res.get("valueQuantity"))
        for comp in res.get("component") or []:
            local(comp["code"])
            local_unit(comp.get("valueQuantity"))


def as_text_values(resources: list[dict[str, Any]], _: ConceptMaps) -> None:
    """valueQuantity -> valueString ("< 0,0032 %" with a decimal comma, "% IS" for IS %)."""
    for res in resources:
        quantity = res.get("valueQuantity")
        if res["resourceType"] != "Observation" or not quantity or "comparator" in quantity:
            continue  # a comparator stays a Quantity: "< 1 %" reads the same either way
        unit = quantity.get("code") or quantity.get("unit") or ""
        is_bcr = any(x.get("code") == "69380-4" for x in res["code"].get("coding") or [])
        if unit == "%" and is_bcr:
            unit = "% IS"
        number = (
            f"{quantity['value']}".replace(".", ",")
            if "." in f"{quantity['value']}"
            else (f"{quantity['value']}")
        )
        if "," in number and len(number.split(",")[1]) == 3 and number.split(",")[0] != "0":
            number = number.replace(",", ".")  # "1,234" would be ambiguous: a point instead
        del res["valueQuantity"]
        res["valueString"] = f"{number} {unit}".strip()


SHAPES: dict[str, list[Shape]] = {
    "us-core-medications": [as_medication_requests],
    "local-codes": [as_local_codes],
    "text-values": [as_text_values],
    "all": [as_medication_requests, as_text_values, as_local_codes],
}


def reading(resources: list[dict[str, Any]], maps: ConceptMaps | None) -> dict[str, Any]:
    options = MappingOptions(now=NOW, terminology=maps)
    loaded = records_from_resources(resources, options)
    [record] = loaded.records
    assessment = assess(record, AS_OF, Guideline.ELN2020)
    patient = to_contract([assessment], as_of=AS_OF, guideline=Guideline.ELN2020)["patients"][0]
    therapy = patient["therapy"]
    return {
        "molecular_response": patient["molecular_response"],
        "latest": (patient["latest_bcr_abl1"] or {}).get("is_percent"),
        "eln": (patient["eln"]["status"], patient["eln"]["milestone"]),
        "tfr": patient["tfr"]["status"],
        "tdm": (patient["tdm"]["status"], patient["tdm"].get("trough_ng_ml")),
        "therapy": {
            k: therapy.get(k) for k in ("drug", "start", "daily_dose_mg", "status", "line")
        },
        "next_pcr_due": patient["next_pcr_due"],
        "pcr_overdue": patient["pcr_overdue"],
        # with their parameters: the switch options, doses and dates the faces show
        "recommendations": sorted(
            (r["code"], json.dumps(r["params"], sort_keys=True)) for r in patient["recommendations"]
        ),
        "interactions": sorted(i["effect"] for i in patient["interactions"]),
        "risk": {k: v["category"] for k, v in (patient["risk_scores"] or {}).items()},
    }


def resources_of(name: str) -> list[dict[str, Any]]:
    bundle = json.loads((EXAMPLES / name).read_text("utf-8"))
    return [entry["resource"] for entry in bundle["entry"]]


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("name", FILES)
def test_the_real_world_shape_reads_the_same(name: str, shape: str) -> None:
    site = concept_maps_from([EXAMPLES / "conceptmaps"])  # 22-local-lab-codes needs it
    canonical = reading(resources_of(name), site)
    resources = resources_of(name)
    maps = ConceptMaps(codes=dict(site.codes), units=dict(site.units))
    for rewrite in SHAPES[shape]:
        rewrite(resources, maps)
    assert reading(resources, maps) == canonical


def test_the_shapes_do_change_the_input() -> None:
    """The rewrites are not no-ops: without the site's ConceptMap, local codes are not read."""
    resources = resources_of("01-optimal-responder.json")
    as_local_codes(resources, ConceptMaps())
    [record] = records_from_resources(resources, MappingOptions(now=NOW)).records
    assert record.bcr_abl1 == ()
    assert "ConceptMap" in " ".join(i.message for i in record.issues)
    resources = resources_of("01-optimal-responder.json")
    as_medication_requests(resources, ConceptMaps())
    assert {r["resourceType"] for r in resources} >= {"MedicationRequest"}
    assert "MedicationStatement" not in {r["resourceType"] for r in resources}
