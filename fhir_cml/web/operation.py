"""The input of ``$cml-assess``, from a Parameters resource, a Bundle, or the query string.

The parameters are those of the generated OperationDefinition (``fhir_cml/conformance``):
``resource`` (0..*, a resource or a Bundle each), ``asOf`` (date), ``guideline`` (code),
``writeBack`` (boolean). What cannot be read is a :class:`~fhir_cml.errors.RequestError` naming
the element: 400 for malformed input, 422 for a well-formed resource that is not one the
operation takes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Final

from fhir_cml.domain import Guideline
from fhir_cml.errors import RequestError

PARAMETERS: Final = ("resource", "asOf", "guideline", "writeBack")
_SINGLE: Final = ("asOf", "guideline", "writeBack")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_GUIDELINES: Final = {g.value: g for g in Guideline}


@dataclass(frozen=True, slots=True)
class OperationInput:
    """What the caller asked for; None where the caller said nothing."""

    resources: tuple[dict[str, Any], ...] = ()
    as_of: date | None = None
    guideline: Guideline | None = None
    write_back: bool | None = None
    given: frozenset[str] = field(default_factory=frozenset)


def from_body(body: Any) -> OperationInput:
    """A Parameters resource, or a Bundle taken as the single ``resource``."""
    if not isinstance(body, dict):
        raise RequestError(
            "The body must be a JSON object: a Parameters resource or a Bundle.", code="structure"
        )
    kind = body.get("resourceType")
    if not isinstance(kind, str) or not kind:
        raise RequestError(
            "The body is not a FHIR resource: it has no resourceType.",
            code="structure",
            expression="resourceType",
        )
    if kind == "Bundle":
        return OperationInput(resources=(body,), given=frozenset({"resource"}))
    if kind != "Parameters":
        raise RequestError(
            f"$cml-assess takes a Parameters resource or a Bundle, not a {kind[:64]}.",
            status=422,
            code="processing",
            expression="resourceType",
        )
    return _parameters(body)


def _parameters(body: dict[str, Any]) -> OperationInput:
    items = body.get("parameter", [])
    if not isinstance(items, list):
        raise _bad("Parameters.parameter must be an array.", "Parameters.parameter")
    resources: list[dict[str, Any]] = []
    values: dict[str, Any] = {}
    for index, item in enumerate(items):
        where = f"Parameters.parameter[{index}]"
        if not isinstance(item, dict):
            raise _bad(f"{where} must be an object.", where)
        name = item.get("name")
        if not isinstance(name, str):
            raise _bad(f"{where} has no name.", f"{where}.name")
        if name not in PARAMETERS:
            raise _bad(
                f"{where}: unknown parameter {name[:64]!r}; $cml-assess takes "
                f"{', '.join(PARAMETERS)}.",
                f"{where}.name",
                code="not-supported",
            )
        if name == "resource":
            resource = item.get("resource")
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                raise _bad(f"{where} (resource) must hold a FHIR resource.", f"{where}.resource")
            resources.append(resource)
            continue
        if name in values:
            raise _bad(f"{where}: {name} is given more than once.", where)
        values[name] = _value(name, item, where)
    return OperationInput(
        resources=tuple(resources),
        as_of=values.get("asOf"),
        guideline=values.get("guideline"),
        write_back=values.get("writeBack"),
        given=frozenset(values) | ({"resource"} if resources else frozenset()),
    )


def _value(name: str, item: dict[str, Any], where: str) -> Any:
    if name == "asOf":
        return parse_date(item.get("valueDate"), f"{where}.valueDate", "asOf (valueDate)")
    if name == "guideline":
        return parse_guideline(item.get("valueCode"), f"{where}.valueCode")
    value = item.get("valueBoolean")
    if not isinstance(value, bool):
        raise _bad(f"{where}: writeBack needs a valueBoolean (true or false).", f"{where}")
    return value


def from_query(args: Mapping[str, Sequence[str]]) -> OperationInput:
    """``asOf``, ``guideline``, ``writeBack`` from the query (other parameters are ignored)."""
    values: dict[str, Any] = {}
    for name in _SINGLE:
        given = list(args.get(name, ()))
        if not given:
            continue
        if len(given) > 1:
            raise _bad(f"The query gives {name} more than once.", name)
        text = given[0]
        if name == "asOf":
            values[name] = parse_date(text, name, "asOf")
        elif name == "guideline":
            values[name] = parse_guideline(text, name)
        elif text in ("true", "false"):
            values[name] = text == "true"
        else:
            raise _bad(f"writeBack must be true or false, not {text[:32]!r}.", name)
    return OperationInput(
        as_of=values.get("asOf"),
        guideline=values.get("guideline"),
        write_back=values.get("writeBack"),
        given=frozenset(values),
    )


def merge(query: OperationInput, body: OperationInput) -> OperationInput:
    """Query and body together; a parameter given in both is refused as ambiguous."""
    both = sorted((query.given & body.given) - {"resource"})
    if both:
        raise _bad(f"{', '.join(both)} given both in the query and in the body.", both[0])
    return replace(
        body,
        as_of=body.as_of or query.as_of,
        guideline=body.guideline or query.guideline,
        write_back=body.write_back if body.write_back is not None else query.write_back,
        given=body.given | query.given,
    )


def parse_date(value: Any, where: str, label: str) -> date:
    if not isinstance(value, str) or not _DATE.match(value):
        raise _bad(f"{label} must be a date YYYY-MM-DD.", where)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _bad(f"{label} {value!r} is not a calendar date.", where) from None


def parse_guideline(value: Any, where: str) -> Guideline:
    found = _GUIDELINES.get(value) if isinstance(value, str) else None
    if found is None:
        raise _bad(
            f"guideline must be one of {', '.join(_GUIDELINES)}.", where, code="code-invalid"
        )
    return found


def _bad(message: str, expression: str, code: str = "invalid") -> RequestError:
    return RequestError(message, status=400, code=code, expression=expression)
