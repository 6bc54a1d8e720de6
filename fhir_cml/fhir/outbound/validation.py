"""Checks what fhir-cml writes against the FHIR R4 (R4B) models before it leaves the process.

The builders produce plain dicts for speed; this is the gate that makes an invalid resource of our
own a loud error, reported as an OperationOutcome whose issues name the element paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from fhir_cml.errors import OperationOutcomeError
from fhir_cml.fhir.outbound.operation_outcome import issue_element

# pydantic error type -> FHIR issue-type
_ERROR_TYPE: Final = {
    "missing": "required",
    "model_field_validation.missing": "required",
    "extra_forbidden": "structure",
    "value_error": "value",
}


def validate(resource: dict[str, Any]) -> None:
    """Raise :class:`OperationOutcomeError` unless ``resource`` is a valid FHIR R4 resource."""
    # The models take a few hundred milliseconds to import: paid by the runs that validate.
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    kind = resource.get("resourceType") if isinstance(resource, dict) else None
    if not isinstance(kind, str):
        raise OperationOutcomeError(
            "Not a FHIR resource: no resourceType.", code="structure", expression="resourceType"
        )
    try:
        model = get_fhir_model_class(kind)
    except (KeyError, ValueError):
        raise OperationOutcomeError(
            f"Unknown resource type {kind!r}.", code="not-supported", expression="resourceType"
        ) from None
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        issues = [
            issue_element(
                "error",
                _ERROR_TYPE.get(str(err["type"]), "invalid"),
                str(err["msg"]),
                expression=[element_path(kind, err["loc"])],
            )
            for err in exc.errors()
        ]
        first = issues[0]
        raise OperationOutcomeError(
            f"Invalid {kind}: {first['expression'][0]}: {first['diagnostics']}"
            + (f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""),
            outcome={"resourceType": "OperationOutcome", "issue": issues},
            code="invalid",
            status=500,
            expression=first["expression"][0],
        ) from None


def validate_all(resources: Sequence[dict[str, Any]]) -> None:
    for resource in resources:
        validate(resource)


def element_path(kind: str, loc: Sequence[int | str]) -> str:
    """A pydantic error location as a FHIRPath element path: ``CarePlan.activity[0].detail``."""
    path = kind
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("resource_type", "__root__"):
            continue
        else:
            path += f".{part}"
    return path
