"""When a later, different assessment supersedes an earlier one (docs/outbound.md, CarePlan).

Pure functions over resources as read from the server: the old CarePlan is revoked, the new
CarePlan ``replaces`` it, the old RiskAssessment points at its successor through the
``replaced-by`` extension. The inputs are not modified; updated copies are returned, ready to PUT
with ``If-Match`` on the version they were read at.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fhir_cml.fhir.canonical import EXT_REPLACED_BY
from fhir_cml.fhir.outbound.narrative import SUPERSEDED, superseded


@dataclass(frozen=True, slots=True)
class Successor:
    """References (or fullUrls) of the new RiskAssessment and CarePlan."""

    risk_assessment: str
    care_plan: str


def supersede(
    old_care_plan: dict[str, Any],
    old_risk_assessment: dict[str, Any],
    new_refs: Successor,
    new_care_plan: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Updated copies: [old CarePlan revoked, old RiskAssessment marked replaced (, new CarePlan)].

    ``new_care_plan``, when given, comes back with ``replaces`` naming the old CarePlan.
    """
    care_plan = _of_type(old_care_plan, "CarePlan")
    out = [revoked(care_plan), replaced(old_risk_assessment, new_refs.risk_assessment)]
    if new_care_plan is not None:
        out.append(replacing(new_care_plan, care_plan))
    return out


def revoked(care_plan: dict[str, Any], why: str = SUPERSEDED) -> dict[str, Any]:
    """A copy of a CarePlan with ``status = revoked``, its narrative saying why."""
    out = copy.deepcopy(_of_type(care_plan, "CarePlan"))
    out["status"] = "revoked"
    superseded(out, why)
    return out


def replaced(risk_assessment: dict[str, Any], successor: str) -> dict[str, Any]:
    """A copy of a RiskAssessment whose ``replaced-by`` extension names ``successor`` (once),
    its narrative saying it is no longer current."""
    out = copy.deepcopy(_of_type(risk_assessment, "RiskAssessment"))
    superseded(out)
    others = [e for e in out.get("extension", []) if e.get("url") != EXT_REPLACED_BY]
    out["extension"] = [
        *others,
        {"url": EXT_REPLACED_BY, "valueReference": {"reference": successor}},
    ]
    return out


def replaced_by(risk_assessment: dict[str, Any]) -> str | None:
    """The successor a RiskAssessment's ``replaced-by`` extension names, or None (current)."""
    for ext in risk_assessment.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == EXT_REPLACED_BY:
            ref = (ext.get("valueReference") or {}).get("reference")
            return ref if isinstance(ref, str) else ""
    return None


def replacing(new_care_plan: dict[str, Any], old_care_plan: dict[str, Any]) -> dict[str, Any]:
    """A copy of the new CarePlan that ``replaces`` the old one (kept once)."""
    new = copy.deepcopy(_of_type(new_care_plan, "CarePlan"))
    old_ref = local_reference(_of_type(old_care_plan, "CarePlan"))
    kept = [r for r in new.get("replaces", []) if r.get("reference") != old_ref]
    new["replaces"] = [*kept, {"reference": old_ref}]
    return new


def update_entries(resources: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Transaction entries that PUT each resource, guarded by its ``meta.versionId`` if known."""
    return [update_entry(resource) for resource in resources]


def update_entry(resource: dict[str, Any]) -> dict[str, Any]:
    """A bundle entry that PUTs a resource read from the server, guarded by ``If-Match`` on the
    version it was read at (a change made meanwhile is refused, 412, not overwritten)."""
    request: dict[str, Any] = {"method": "PUT", "url": local_reference(resource)}
    version = (resource.get("meta") or {}).get("versionId")
    if version:
        request["ifMatch"] = f'W/"{version}"'
    return {"resource": resource, "request": request}


def local_reference(resource: dict[str, Any]) -> str:
    """``Type/id`` of a resource read from a server; one without an id cannot be superseded."""
    rid = resource.get("id")
    if not isinstance(rid, str) or not rid:
        raise ValueError(f"{resource.get('resourceType', 'resource')} has no id")
    return f"{resource['resourceType']}/{rid}"


def _of_type(resource: dict[str, Any], kind: str) -> dict[str, Any]:
    if resource.get("resourceType") != kind:
        raise ValueError(f"expected a {kind}, got {resource.get('resourceType')!r}")
    return resource
