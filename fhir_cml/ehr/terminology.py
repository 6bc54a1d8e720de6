"""A site's local codes and units translated by its terminology server (``ConceptMap/$translate``).

The same answers a ConceptMap file gives (:mod:`fhir_cml.fhir.inbound.conceptmaps`), asked of the
server once per distinct code or unit, under one deadline for the whole run: past it, or when the
server fails, a code stays untranslated (and so "not read", with its issue) and
:attr:`ServerTerminology.problems` says so - a reading never waits on a slow terminology server.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from fhir_cml.errors import FhirClientError
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound.conceptmaps import (
    KNOWN_SYSTEMS,
    USED_EQUIVALENCE,
    ConceptMaps,
    Terminology,
    concept_maps_from,
)

if TYPE_CHECKING:  # the HTTP client is imported by whoever makes one
    from fhir_cml.ehr.client import FhirClient

DEFAULT_DEADLINE_SECONDS: Final = 30.0


@dataclass
class Answers:
    """What a terminology server answered, kept for a run (sync) or the process (the service)."""

    codes: dict[tuple[str, str], tuple[str, str] | None] = field(default_factory=dict)
    units: dict[tuple[str, str], str | None] = field(default_factory=dict)


@dataclass
class ServerTerminology:
    """``$translate`` on ``client``'s server, cached, within ``deadline`` seconds in all.

    Only answers are cached (in ``answers``, which may be shared): a question that failed or
    came past the deadline is not asked again by this object, and may be by the next one.
    """

    client: FhirClient
    deadline: float = DEFAULT_DEADLINE_SECONDS
    clock: Callable[[], float] = time.monotonic
    problems: list[str] = field(default_factory=list)
    answers: Answers = field(default_factory=Answers)
    _started: float | None = None
    _skipped: int = 0
    _failed: set[tuple[tuple[str, str], ...]] = field(default_factory=set)

    def code(self, system: str, code: str) -> tuple[str, str] | None:
        key = (system, code)
        if key not in self.answers.codes:
            found = self._translate([("system", system), ("code", code)])
            if found is None:
                return None
            self.answers.codes[key] = next(
                ((s, k) for s, k in found if s in KNOWN_SYSTEMS and s != c.UCUM), None
            )
        return self.answers.codes[key]

    def unit(self, system: str | None, unit: str) -> str | None:
        key = (system or "", unit.strip())
        if key not in self.answers.units:
            params = [("code", unit.strip()), ("targetsystem", c.UCUM)]
            if system:
                params.insert(0, ("system", system))
            found = self._translate(params)
            if found is None:
                return None
            self.answers.units[key] = next((k for s, k in found if s == c.UCUM), None)
        return self.answers.units[key]

    def _translate(self, params: list[tuple[str, str]]) -> list[tuple[str, str]] | None:
        """The equivalent matches, or None when the server was not asked or did not answer."""
        asked = tuple(params)
        if asked in self._failed:
            return None
        now = self.clock()
        if self._started is None:
            self._started = now
        if now - self._started > self.deadline:
            self._skipped += 1
            if self._skipped == 1:
                self.problems.append(
                    f"The terminology server's {self.deadline:g} s deadline passed: further "
                    "local codes and units are not translated in this run (left as not read)."
                )
            return None
        try:
            response = self.client.request("GET", "ConceptMap/$translate", params=params)
            body = self.client.json(response, "ConceptMap/$translate")
        except FhirClientError as err:
            self._failed.add(asked)
            self.problems.append(f"$translate {dict(params)} failed: {err}")
            return None
        return matches(body)


def matches(parameters: dict[str, Any]) -> list[tuple[str, str]]:
    """(system, code) of each equivalent match in a ``$translate`` answer (R4 Parameters)."""
    found: list[tuple[str, str]] = []
    for param in parameters.get("parameter") or []:
        if not isinstance(param, dict) or param.get("name") != "match":
            continue
        parts = {p.get("name"): p for p in param.get("part") or [] if isinstance(p, dict)}
        how = (parts.get("equivalence") or parts.get("relationship") or {}).get("valueCode")
        concept = (parts.get("concept") or {}).get("valueCoding") or {}
        system, code = concept.get("system"), concept.get("code")
        if how in USED_EQUIVALENCE and isinstance(system, str) and isinstance(code, str):
            found.append((system, code))
    return found


@dataclass
class Chained:
    """The site's ConceptMap files first, then its terminology server."""

    first: Terminology
    then: Terminology

    def code(self, system: str, code: str) -> tuple[str, str] | None:
        return self.first.code(system, code) or self.then.code(system, code)

    def unit(self, system: str | None, unit: str) -> str | None:
        return self.first.unit(system, unit) or self.then.unit(system, unit)


def site_terminology(
    concept_maps: Sequence[Path],
    server: FhirClient | None = None,
    deadline: float = DEFAULT_DEADLINE_SECONDS,
) -> tuple[Terminology | None, list[str]]:
    """The translations a run is configured with, and the problems met loading them.

    The server's problems appear in the list as they happen (it is the same list object).
    """
    files = concept_maps_from(concept_maps) if concept_maps else None
    remote = ServerTerminology(server, deadline) if server is not None else None
    problems: list[str] = []
    if files is not None:
        problems.extend(files.problems)
    if remote is not None:
        remote.problems = problems
    if files is not None and remote is not None:
        return Chained(files, remote), problems
    return (files or remote), problems


def terminology_key(terminology: Terminology | None) -> str:
    """A short digest of what translates the site's codes: the maps' content, the server's URL.

    What a terminology server answers is not known in advance: a change there reaches the
    patients whose resources are read again (their fingerprints cover the answers).
    """
    if terminology is None:
        return ""
    if isinstance(terminology, Chained):
        parts = [terminology_key(terminology.first), terminology_key(terminology.then)]
        text = "+".join(parts)
    elif isinstance(terminology, ConceptMaps):
        text = "maps:" + terminology.digest()
    elif isinstance(terminology, ServerTerminology):
        text = "server:" + terminology.client.base_url
    else:
        text = type(terminology).__name__
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def search_codes(
    terminology: Terminology | None, read: tuple[tuple[str, str], ...] | None
) -> tuple[tuple[str, str], ...] | None:
    """The Observation codes to search for: those read, and the site's own codes mapped to them.

    A terminology server's maps are not known in advance: every Observation is read then (None),
    and the answers decide what is read.
    """
    if read is None or terminology is None:
        return read
    if isinstance(terminology, Chained):
        return search_codes(terminology.then, search_codes(terminology.first, read))
    if not isinstance(terminology, ConceptMaps):
        return None
    wanted = set(read)
    local = sorted(source for source, target in terminology.codes.items() if target in wanted)
    return (*read, *(code for code in local if code not in wanted))
