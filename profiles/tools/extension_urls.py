"""Write the ``url`` of each extension slice into the StructureDefinitions SUSHI built.

SUSHI (like the IG Publisher) leaves the ``url`` of a slice such as ``RiskAssessment.extension:asOf``
implicit: it follows from the extension's own definition, named in the slice's type profile.
Validators that do not open that definition - Medplum's, on its server as in its library - match
extensions to slices by the slice's ``url`` child alone, find none, and refuse every resource
("Incorrect number of values provided for slice 'asOf': expected 1..1, but found 0"). Writing
the child out (``fixedUri``, in the snapshot and the differential) says the same thing
explicitly, so those servers accept what fhir-cml writes when it claims the profiles.

    python extension_urls.py RESOURCES_DIR     # rewrites StructureDefinition-*.json in place
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def extension_of(element: dict[str, Any]) -> str | None:
    """The extension URL a slice is typed with (``type: [{code: Extension, profile: [url]}]``)."""
    types = element.get("type") or []
    if not element.get("sliceName") or len(types) != 1 or types[0].get("code") != "Extension":
        return None
    profiles = types[0].get("profile") or []
    return str(profiles[0]) if len(profiles) == 1 else None


def with_urls(sd: dict[str, Any], url_elements: dict[str, dict[str, Any]]) -> bool:
    """Adds the missing ``url`` children to ``sd``; whether anything changed."""
    changed = False
    for part in ("snapshot", "differential"):
        elements = (sd.get(part) or {}).get("element")
        if not elements:
            continue
        ids = {e.get("id") for e in elements}
        out = []
        for element in elements:
            out.append(element)
            url = extension_of(element)
            child = f"{element['id']}.url"
            if url is None or child in ids:
                continue
            if part == "snapshot":
                base = url_elements.get(url, {})
                added = {k: v for k, v in base.items() if k not in ("id", "path", "fixedUri")}
            else:
                added = {}
            out.append({"id": child, "path": f"{element['path']}.url", **added, "fixedUri": url})
            changed = True
        sd[part]["element"] = out
    return changed


def main(directory: Path) -> int:
    files = sorted(directory.glob("StructureDefinition-*.json"))
    definitions = {path: json.loads(path.read_text(encoding="utf-8")) for path in files}
    url_elements = {
        sd["url"]: next(e for e in sd["snapshot"]["element"] if e["id"] == "Extension.url")
        for sd in definitions.values()
        if sd.get("type") == "Extension" and sd.get("snapshot")
    }
    for path, sd in definitions.items():
        if with_urls(sd, url_elements):
            path.write_text(json.dumps(sd, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
