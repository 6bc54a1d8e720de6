"""Checks what fhir-cml writes against the FHIR R4 (R4B) models before it leaves the process.

The builders produce plain dicts for speed; this is the gate that makes an invalid resource of our
own a loud error, reported as an OperationOutcome whose issues name the element paths.

Building the fhir.resources models of a resource costs milliseconds (a RiskAssessment with its
bases is a hundred nested models): more than everything else fhir-cml does for a patient. So a
resource is first walked as the plain dict it is, against the same models' field tables (names,
cardinality, required elements, choice types) with each primitive value checked by the same
pydantic type as the model would use (:func:`_conforms`); only when that walk is not sure - it
finds a problem, or meets what it does not check itself (``_element`` extension siblings,
contained resources) - is the resource validated by the models, which decide and name the
element paths. The walk accepts nothing the models refuse (tests/unit/test_outbound_validation.py
checks it against the models on mutated resources).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Final

from fhir_cml.errors import OperationOutcomeError
from fhir_cml.fhir.outbound.operation_outcome import issue_element

if TYPE_CHECKING:  # pydantic is imported when a resource is first validated, not at start-up
    from pydantic import TypeAdapter

# pydantic error type -> FHIR issue-type
_ERROR_TYPE: Final = {
    "missing": "required",
    "model_field_validation.missing": "required",
    "extra_forbidden": "structure",
    "value_error": "value",
}


def validate(resource: dict[str, Any]) -> None:
    """Raise :class:`OperationOutcomeError` unless ``resource`` is a valid FHIR R4 resource."""
    if conforms(resource):
        return
    from fhir.resources.R4B import get_fhir_model_class  # see conforms
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


# --- the quick walk ---------------------------------------------------------------------------


def conforms(resource: Any) -> bool:
    """True when the quick walk finds ``resource`` valid; False when it finds a problem or is
    not sure (the models then decide)."""
    kind = resource.get("resourceType") if isinstance(resource, dict) else None
    if not isinstance(kind, str):
        return False
    # The models take a tenth of a second to import: paid by the runs that validate.
    from fhir.resources.R4B import get_fhir_model_class

    try:
        model = get_fhir_model_class(kind)
    except (KeyError, ValueError):
        return False
    return _conforms(resource, model, top=True)


@dataclass(frozen=True, slots=True)
class _Field:
    many: bool
    model: Any  # the model class of a complex element, else None
    leaf: TypeAdapter[Any] | None  # the pydantic type of a primitive element, else None
    required: bool
    choice: str | None
    choice_required: bool


@dataclass(frozen=True, slots=True)
class _Table:
    fields: dict[str, _Field]  # by JSON name
    required: tuple[str, ...]
    choices: dict[str, tuple[tuple[str, ...], bool]]  # prefix -> (JSON names, one required)
    resource_type: str | None


def _conforms(value: Any, model: Any, *, top: bool = False) -> bool:
    if type(value) is not dict:
        return False
    table = _table(model)
    if table is None:
        return False
    for name in table.required:
        if value.get(name) is None:
            return False
    for names, required in table.choices.values():
        given = sum(1 for n in names if value.get(n) is not None)
        if given > 1 or (required and given == 0):
            return False
    fields = table.fields
    for key, item in value.items():
        if key == "resourceType":
            if not top or item != table.resource_type:
                return False
            continue
        field = fields.get(key)
        if field is None:  # unknown, or an _element sibling: the models decide
            return False
        if item is None:
            continue
        if field.many:
            if type(item) is not list:
                return False
            for one in item:
                if one is None or not _one(one, field):
                    return False
        elif type(item) is list or not _one(item, field):
            return False
    return True


def _one(value: Any, field: _Field) -> bool:
    if field.model is _RESOURCE:  # a contained resource: walked as the resource it says it is
        return conforms(value)
    if field.model is not None:
        return _conforms(value, field.model)
    if field.leaf is None or type(value) in (dict, list):
        return False
    key = (field.leaf, type(value), value)
    if key in _VALID_LEAVES:  # systems, codes, URLs recur in every resource
        return True
    try:
        field.leaf.validate_python(value)
    except (ValueError, TypeError):  # pydantic's ValidationError is a ValueError
        return False
    if len(_VALID_LEAVES) >= _MAX_VALID_LEAVES:
        _VALID_LEAVES.clear()
    _VALID_LEAVES.add(key)
    return True


# The model of an element that holds any resource (``contained``, ``Bundle.entry.resource``).
_RESOURCE: Final = object()

# Primitive values already found valid for their type (bounded; shared by threads: a set's add
# and membership test are atomic, and a value lost to a concurrent clear is only checked again).
_VALID_LEAVES: set[tuple[Any, type, Any]] = set()
_MAX_VALID_LEAVES: Final = 50_000


@cache
def _table(model: Any) -> _Table | None:
    """The fields of a model as the quick walk checks them; None for one it does not know how
    to walk (the models decide)."""
    fields: dict[str, _Field] = {}
    required: list[str] = []
    choices: dict[str, tuple[list[str], bool]] = {}
    for name, info in model.model_fields.items():
        alias = info.alias or name
        if alias.startswith("_"):
            continue  # _element siblings are left to the models
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        annotation = info.annotation
        optional = type(None) in typing.get_args(annotation)
        inner = _unwrap_optional(annotation)
        many = typing.get_origin(inner) is list
        # Primitive lists hold Optional items (nulls line values up with _element siblings;
        # the walk leaves a null item to the models).
        item = _unwrap_optional(typing.get_args(inner)[0]) if many else inner
        model_of = getattr(item, "get_model_klass", None)
        if model_of is not None:
            target = model_of()
            if getattr(target, "__resource_type__", None) in ("Resource", "DomainResource"):
                target = _RESOURCE  # contained resources (a RequestGroup's options)
            field = _Field(many, target, None, False, None, False)
        elif typing.get_origin(item) is typing.Annotated:
            field = _Field(many, None, _adapter(item), False, None, False)
        else:
            continue  # not a FHIR element (e.g. fhir_comments): the models decide
        prefix = extra.get("one_of_many")
        if isinstance(prefix, str):
            names, one = choices.setdefault(prefix, ([], False))
            names.append(alias)
            choices[prefix] = (names, one or extra.get("one_of_many_required") is True)
        if (not optional or extra.get("element_required") is True) and not isinstance(prefix, str):
            required.append(alias)
        fields[alias] = _Field(
            field.many, field.model, field.leaf, alias in required, prefix, False
        )
    return _Table(
        fields,
        tuple(required),
        {p: (tuple(n), one) for p, (n, one) in choices.items()},
        getattr(model, "__resource_type__", None),
    )


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


@cache
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    from pydantic import TypeAdapter

    return TypeAdapter(annotation)
