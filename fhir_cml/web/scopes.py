"""SMART on FHIR scopes, v1 and v2, as the service reads them: what a scope string grants.

A scope is ``{context}/{type}.{permissions}`` with an optional v2 query restriction:
``system/Observation.rs``, ``patient/*.read`` (v1), ``system/Observation.rs?category=laboratory``.
v1 ``read`` grants read and search (``rs``), ``write`` create, update and delete (``cud``), ``*``
everything. A restricted scope (``?...``) grants only what matches its query: the CDS face may
still use it to fetch (the EHR applies the restriction), but it never proves that a caller may
see a patient's whole CML record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["Scope", "grants", "missing", "parse"]

_SCOPE: Final = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.([a-z*]+)(\?.*)?$")
_V1: Final = {"read": "rs", "write": "cud", "*": "cruds"}
_V2: Final = frozenset("cruds")


@dataclass(frozen=True, slots=True)
class Scope:
    """One resource scope: its context (patient, user, system), type, permissions."""

    context: str
    resource_type: str  # or "*"
    permissions: frozenset[str]  # letters of "cruds"
    restricted: bool = False  # a v2 query narrows it

    def covers(self, resource_type: str, need: str) -> bool:
        """Whether this scope grants every permission letter in ``need`` on the type."""
        return self.resource_type in (resource_type, "*") and set(need) <= self.permissions


def parse(scope: str | Iterable[str]) -> tuple[Scope, ...]:
    """The resource scopes of a space-separated scope string (others, like ``openid``, ignored)."""
    items = scope.split() if isinstance(scope, str) else scope
    found = []
    for item in items:
        match = _SCOPE.match(item)
        if match is None:
            continue
        permission = match.group(3)
        letters = _V1.get(permission, permission)
        if not set(letters) <= _V2:
            continue
        found.append(
            Scope(match.group(1), match.group(2), frozenset(letters), match.group(4) is not None)
        )
    return tuple(found)


def grants(
    scopes: Iterable[Scope],
    resource_type: str,
    need: str,
    *,
    contexts: Iterable[str] = ("patient", "user", "system"),
    restricted: bool = True,
) -> bool:
    """Whether one of ``scopes`` (in one of ``contexts``) grants ``need`` on ``resource_type``.

    ``restricted=False`` leaves out scopes narrowed by a query.
    """
    allowed = frozenset(contexts)
    return any(
        s.context in allowed and (restricted or not s.restricted) and s.covers(resource_type, need)
        for s in scopes
    )


def missing(
    scopes: Iterable[Scope], needs: Mapping[str, str], context: str, *, also: Iterable[str] = ()
) -> list[str]:
    """The scopes (in ``context``) still needed for ``needs`` (type -> permission letters), in
    the v2 syntax; unrestricted scopes of ``context`` or of the ``also`` contexts count."""
    held = tuple(scopes)
    contexts = (context, *also)
    return [
        f"{context}/{resource_type}.{need}"
        for resource_type, need in needs.items()
        if not grants(held, resource_type, need, contexts=contexts, restricted=False)
    ]
