"""Finish SUSHI's output for publication: metadata, copyright and a narrative on every resource.

SUSHI (FSH only, no IG Publisher) leaves out what an implementation guide states once for all of
its resources, so this step adds it, the same for every resource, in place:

- ``publisher``, ``contact``, ``jurisdiction`` (World), ``date`` and ``experimental`` (false),
  where the FSH does not set them; every resource is ``draft`` while the guide is a draft (a
  resource the FSH marks otherwise stops the build);
- ``copyright`` on the ValueSets and ConceptMaps that hold SNOMED CT or LOINC codes, in the words
  each terminology's owner asks for;
- ``text``: a short generated narrative (title, description, canonical URL and status, and the
  content a reader looks for: codes, mappings, parameters, the REST capabilities, the rule's
  citation and actions). Written with fhir-cml's narrative helpers, so it is escaped XHTML.

Usage: python publish.py <resources-dir>
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.outbound.narrative import Markup, b, escape, items, narrative, p, table

PUBLISHER: Final = "fhir-cml"
CONTACT: Final = [
    {"name": "fhir-cml", "telecom": [{"system": "url", "value": "https://fhir-cml.org"}]}
]
JURISDICTION: Final = [{"coding": [{"system": c.M49, "code": "001", "display": "World"}]}]
# The publication date of this version of the guide: change it with the version.
DATE: Final = "2026-12-01"
COPYRIGHT: Final = {
    c.SNOMED: (
        "This material includes SNOMED Clinical Terms® (SNOMED CT®), used by permission of the "
        "International Health Terminology Standards Development Organisation, trading as SNOMED "
        "International. SNOMED CT is copyright © 2002+ SNOMED International; SNOMED and SNOMED CT "
        "are registered trademarks of SNOMED International. Implementers need a SNOMED CT licence "
        "to use these codes: review the usage terms or contact SNOMED International, "
        "info@snomed.org."
    ),
    c.LOINC: (
        "This material contains content from LOINC (http://loinc.org). LOINC is copyright © "
        "1995+, Regenstrief Institute, Inc. and the Logical Observation Identifiers Names and "
        "Codes (LOINC) Committee and is available at no cost under the license at "
        "http://loinc.org/license. LOINC® is a registered United States trademark of Regenstrief "
        "Institute, Inc."
    ),
}
CANONICAL_TYPES: Final = frozenset(
    {
        "CapabilityStatement",
        "CodeSystem",
        "ConceptMap",
        "OperationDefinition",
        "PlanDefinition",
        "StructureDefinition",
        "ValueSet",
    }
)


def finish(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource with metadata, copyright and narrative (a new dict, keys in FHIR order)."""
    if resource["resourceType"] not in CANONICAL_TYPES:
        raise SystemExit(f"{resource['resourceType']}/{resource['id']}: not a conformance resource")
    if resource.get("status") != "draft":
        raise SystemExit(
            f"{resource['resourceType']}/{resource['id']} is {resource.get('status')}: every "
            "resource is draft while the guide is a draft"
        )
    out = dict(resource)
    out.setdefault("experimental", False)
    out.setdefault("date", DATE)
    out.setdefault("publisher", PUBLISHER)
    out.setdefault("contact", CONTACT)
    out.setdefault("jurisdiction", JURISDICTION)
    notices = [COPYRIGHT[s] for s in sorted(COPYRIGHT) if s in systems_of(resource)]
    if notices and resource["resourceType"] in ("ValueSet", "ConceptMap"):
        out["copyright"] = " ".join(notices)
    out["text"] = narrative(*describe(out))
    return _ordered(out)


def systems_of(resource: dict[str, Any]) -> set[str]:
    """The code systems whose codes a ValueSet or ConceptMap holds."""
    found: set[str] = set()
    for include in resource.get("compose", {}).get("include", []):
        if include.get("concept") or include.get("filter") or not include.get("valueSet"):
            found.add(include.get("system", ""))
    for group in resource.get("group", []):
        found.update({group.get("source", ""), group.get("target", "")})
    return found - {""}


def describe(r: dict[str, Any]) -> list[Markup]:
    kind = r["resourceType"]
    what = {
        "StructureDefinition": "Extension" if r.get("type") == "Extension" else "Profile",
    }.get(kind, kind)
    blocks = [
        p(b(r.get("title") or r.get("name") or r["id"]), escape(f" ({what}, {r['status']})")),
        p(escape(r.get("description", ""))) if r.get("description") else "",
        p(escape("Canonical URL: "), element_code(r["url"]), escape(f" version {r['version']}")),
    ]
    blocks += {
        "CodeSystem": _code_system,
        "ValueSet": _value_set,
        "ConceptMap": _concept_map,
        "OperationDefinition": _operation,
        "CapabilityStatement": _capabilities,
        "PlanDefinition": _plan,
        "StructureDefinition": _structure,
    }[kind](r)
    if r.get("copyright"):
        blocks.append(p(b("Copyright: "), escape(r["copyright"])))
    return blocks


def element_code(text: str) -> Markup:
    return f"<code>{escape(text)}</code>"


def _code_system(r: dict[str, Any]) -> list[Markup]:
    rows = [(x["code"], x.get("display", ""), x.get("definition", "")) for x in r["concept"]]
    return [table(("Code", "Display", "Definition"), rows)]


def _value_set(r: dict[str, Any]) -> list[Markup]:
    out: list[Markup] = []
    for include in r.get("compose", {}).get("include", []):
        if include.get("concept"):
            out.append(p(escape(f"Codes from {include['system']}:")))
            out.append(
                table(
                    ("Code", "Display"),
                    ((x["code"], x.get("display", "")) for x in include["concept"]),
                )
            )
        elif include.get("valueSet"):
            out.append(p(escape("All codes of " + ", ".join(include["valueSet"]) + ".")))
        else:
            out.append(p(escape(f"All codes of {include['system']}.")))
    return out


def _concept_map(r: dict[str, Any]) -> list[Markup]:
    out: list[Markup] = []
    for group in r["group"]:
        out.append(p(escape(f"From {group['source']} to {group.get('target', '(no target)')}:")))
        rows = [
            (
                e["code"],
                t.get("code", "-"),
                t.get("display", ""),
                t["equivalence"],
                t.get("comment", ""),
            )
            for e in group["element"]
            for t in e.get("target", [])
        ]
        out.append(table(("Source", "Target", "Display", "Equivalence", "Comment"), rows))
    return out


def _operation(r: dict[str, Any]) -> list[Markup]:
    rows = [
        (
            x["name"],
            x["use"],
            f"{x['min']}..{x['max']}",
            x.get("type", ""),
            x.get("documentation", ""),
        )
        for x in r["parameter"]
    ]
    return [
        p(
            escape(
                f"POST [base]/${r['code']}; also on {', '.join(r.get('resource', []))} instances."
            )
        ),
        table(("Parameter", "Use", "Card.", "Type", "Documentation"), rows),
    ]


def _capabilities(r: dict[str, Any]) -> list[Markup]:
    out: list[Markup] = []
    for rest in r["rest"]:
        out.append(p(b(f"As {rest['mode']}: "), escape(rest.get("documentation", ""))))
        rows = [
            (
                res["type"],
                ", ".join(i["code"] for i in res.get("interaction", [])),
                ", ".join(s["name"] for s in res.get("searchParam", [])),
                ", ".join("$" + o["name"] for o in res.get("operation", [])),
            )
            for res in rest.get("resource", [])
        ]
        out.append(table(("Resource", "Interactions", "Search parameters", "Operations"), rows))
        whole = [i["code"] for i in rest.get("interaction", [])]
        whole += ["$" + o["name"] for o in rest.get("operation", [])]
        if whole:
            out.append(p(escape("Whole-server: " + ", ".join(whole) + ".")))
    return out


def _plan(r: dict[str, Any]) -> list[Markup]:
    out = [
        p(b("Source: "), escape(a.get("citation", "")))
        for a in r.get("relatedArtifact", [])
        if a.get("citation")
    ]
    actions = [a.get("title", "") for a in r.get("action", [])]
    if actions:
        out.append(p(escape("Leads to:")) + items("ul", (escape(t) for t in actions)))
    return out


def _structure(r: dict[str, Any]) -> list[Markup]:
    rows = [
        (
            e["path"] + (f":{e['sliceName']}" if e.get("sliceName") else ""),
            f"{e['min']}..{e['max']}" if "min" in e and "max" in e else "",
            e.get("short", ""),
        )
        for e in r.get("differential", {}).get("element", [])
        if e.get("short") or "min" in e or "max" in e
    ]
    intro = p(escape(f"Based on {r['baseDefinition']}; the elements it constrains:"))
    return [intro, table(("Element", "Card.", "Meaning"), rows)] if rows else [intro]


def _ordered(resource: dict[str, Any]) -> dict[str, Any]:
    """The narrative near the top, as FHIR JSON places it; the rest in the order given."""
    head = [k for k in ("resourceType", "id", "meta", "text") if k in resource]
    return {**{k: resource[k] for k in head}, **resource}


def run(directory: Path, names: Iterable[Path] | None = None) -> int:
    paths = sorted(names or directory.glob("*.json"))
    for path in paths:
        resource = json.loads(path.read_text(encoding="utf-8"))
        path.write_text(
            json.dumps(finish(resource), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    return len(paths)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    count = run(Path(argv[1]))
    print(f"published {count} resources in {argv[1]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
