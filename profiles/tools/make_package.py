"""The FHIR NPM package of fhir-cml's conformance resources: ``package.tgz``.

Layout (FHIR package specification): ``package/package.json`` (name org.fhir-cml.ig, version,
canonical, FHIR version 4.0.1, the dependency on hl7.fhir.r4.core), ``package/.index.json`` (one
row per resource: filename, resourceType, id, url, version, kind, type), the conformance resources
as ``package/<Type>-<id>.json``, and the examples in ``package/example/`` with their own index.
The tarball is reproducible: entries sorted, fixed times and owners, gzip without a timestamp.

Usage: python make_package.py <resources-dir> <examples-dir> <package.tgz>
"""

from __future__ import annotations

import gzip
import io
import json
import sys
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from fhir_cml import __version__
from fhir_cml.fhir import canonical

NAME: Final = "org.fhir-cml.ig"
MTIME: Final = 1_764_547_200  # 2025-12-01T00:00:00Z: fixed, so a rebuild gives the same bytes


def manifest() -> dict[str, Any]:
    return {
        "name": NAME,
        "version": __version__,
        "title": "fhir-cml: CML response readings and suggestions",
        "description": (
            "Profiles, extensions, terminology, ConceptMaps, the $cml-assess OperationDefinition, "
            "the CapabilityStatement and one PlanDefinition per rule of fhir-cml, a FHIR service "
            "that reads CML patients' results and TKI therapy and writes draft suggestions for a "
            "clinician to review."
        ),
        "author": "fhir-cml",
        "license": "Apache-2.0",
        "canonical": canonical.BASE,
        "url": canonical.BASE,
        "fhirVersions": ["4.0.1"],
        "type": "IG",
        "jurisdiction": f"{canonical.M49}#001",
        "dependencies": {"hl7.fhir.r4.core": "4.0.1"},
    }


def index_row(name: str, resource: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "filename": name,
        "resourceType": resource["resourceType"],
        "id": resource["id"],
    }
    for key in ("url", "version", "kind", "type"):
        if isinstance(resource.get(key), str):
            row[key] = resource[key]
    return row


def folder(files: Iterable[Path]) -> dict[str, bytes]:
    """Name -> bytes of a package folder: its resources and their ``.index.json``."""
    out: dict[str, bytes] = {}
    rows = []
    for path in sorted(files):
        data = path.read_bytes()
        out[path.name] = data
        rows.append(index_row(path.name, json.loads(data)))
    index = {"index-version": 1, "files": rows}
    out[".index.json"] = _json(index)
    return out


def contents(resources: Path, examples: Path) -> dict[str, bytes]:
    """Path in the tarball -> bytes."""
    out = {"package/package.json": _json(manifest())}
    out |= {f"package/{n}": b for n, b in folder(resources.glob("*.json")).items()}
    out |= {f"package/example/{n}": b for n, b in folder(examples.glob("*.json")).items()}
    return out


def write(files: dict[str, bytes], target: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mtime = MTIME
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(files[name]))
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        target.open("wb") as out,
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz,
    ):
        gz.write(raw.getvalue())


def read(package: Path) -> dict[str, bytes]:
    """Path in the tarball -> bytes (what the tests compare)."""
    with tarfile.open(package, mode="r:gz") as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    files = contents(Path(argv[1]), Path(argv[2]))
    write(files, Path(argv[3]))
    print(f"wrote {argv[3]} ({len(files)} files)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
