"""Quicker construction for the domain's frozen dataclasses.

Every value the domain builds is a frozen, slotted dataclass: immutable, hashable, small. The
``__init__`` that dataclasses generates for a frozen class sets each field through
``object.__setattr__``, looked up again for every field of every instance, which makes building
one about four times slower than building a plain slotted one. Mapping and assessing a patient
builds some 270 of them (52 bases, 21 milestone items, 17 depth calls, ...): about 6 % of the CPU
time of ``fhir-cml assess`` on a registry export (bench/README.md). ``quick_init`` swaps in an
``__init__`` that stores each field through its slot directly: the same parameters and defaults,
the same instance, as frozen as before (assigning to a field still raises FrozenInstanceError).
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any, TypeVar

T = TypeVar("T")


def quick_init(cls: type[T]) -> type[T]:
    """Replaces the generated ``__init__`` of a frozen, slotted dataclass (put it above @dataclass)."""
    if "__slots__" not in vars(cls) or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: quick_init takes slotted classes without __post_init__")
    params: list[str] = []
    lines: list[str] = []
    namespace: dict[str, Any] = {}
    for field in fields(cls):  # type: ignore[arg-type]
        name = field.name
        if not field.init or field.kw_only or field.default_factory is not MISSING:
            raise TypeError(f"{cls.__name__}.{name}: quick_init takes plain fields only")
        namespace[f"_set_{name}"] = getattr(cls, name).__set__  # the slot's own setter
        if field.default is MISSING:
            params.append(name)
        else:
            namespace[f"_default_{name}"] = field.default
            params.append(f"{name}=_default_{name}")
        lines.append(f"    _set_{name}(self, {name})")
    source = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(lines or ["    pass"])
    exec(source, namespace)  # noqa: S102 - the source is built above from the field names
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
