"""fhir-cml's conformance resources, as the service serves and uses them at run time.

The JSON files next to this module are copies of ``profiles/fsh-generated/resources`` written by
``profiles/build`` (do not edit them here; change the FSH or the Python they are generated from):
the CapabilityStatement, the $cml-assess OperationDefinition, the profiles and extensions
(StructureDefinitions with snapshots), the CodeSystems and ValueSets and one PlanDefinition per
rule. No Node tooling is needed to read them.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["all_resources", "by_url", "load"]


@cache
def _index() -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        resource = json.loads(entry.read_text(encoding="utf-8"))
        if not isinstance(resource, dict):
            raise ValueError(f"{entry.name} is not a FHIR resource")
        out[(str(resource["resourceType"]), str(resource["id"]))] = resource
    return out


def load(resource_type: str, id: str) -> dict[str, Any]:
    """The resource of that type and id (a copy); KeyError when there is none."""
    try:
        return copy.deepcopy(_index()[(resource_type, id)])
    except KeyError:
        raise KeyError(f"no conformance resource {resource_type}/{id}") from None


def all_resources() -> list[dict[str, Any]]:
    """Every conformance resource (copies), ordered by type and id."""
    return [copy.deepcopy(r) for _, r in sorted(_index().items())]


def by_url(url: str) -> dict[str, Any]:
    """The resource with that canonical URL (a copy); KeyError when there is none."""
    for resource in _index().values():
        if resource.get("url") == url:
            return copy.deepcopy(resource)
    raise KeyError(f"no conformance resource with url {url}")
