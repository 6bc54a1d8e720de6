"""A site's local codes and units, mapped with FHIR ConceptMap resources (docs/inbound.md,
"Local codes and units").

A laboratory sends its own code for a BCR::ABL1 result ("BCRABL-IS" in its own system) and its
own unit spelling; the site says what they mean in a ConceptMap: local Observation, component
and medication codes to the codes fhir-cml reads (LOINC, cml#..., RxNorm, ATC), local units to
UCUM. Only ``equivalent`` and ``equal`` mappings are used: a wider or narrower concept is not the
same test. Mappings are applied on the way in, before grouping: the translated coding is added
next to the local one (the unit's UCUM code set next to its text), so every reader sees the code
it knows and the resource still shows what the site sent.

The translations come from a :class:`Terminology`: :class:`ConceptMaps` (ConceptMap resources from
files) or, in the ehr layer, the site's terminology server (``$translate``).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound.context import as_dict, as_list
from fhir_cml.fhir.inbound.loader import Entry

USED_EQUIVALENCE: Final = frozenset({"equivalent", "equal"})
# Codes of these systems are the ones fhir-cml reads itself; any other system is a site's own.
KNOWN_SYSTEMS: Final = frozenset({c.LOINC, c.SNOMED, c.CS_CML, c.RXNORM, c.ATC})
_CODED: Final = ("Observation", "Condition")
_MEDICATION_RECORDS: Final = (
    "MedicationStatement",
    "MedicationRequest",
    "MedicationDispense",
    "MedicationAdministration",
)


class Terminology(Protocol):
    """What a site's codes and units mean."""

    def code(self, system: str, code: str) -> tuple[str, str] | None:
        """The (system, code) fhir-cml reads for a local code, or None when unmapped."""

    def unit(self, system: str | None, unit: str) -> str | None:
        """The UCUM code for a local unit, or None when unmapped."""


@dataclass
class ConceptMaps:
    """Translations read from ConceptMap resources."""

    codes: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    units: dict[tuple[str, str], str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    # The problems that left a whole file or resource out (also in ``problems``).
    unusable: list[str] = field(default_factory=list)

    def code(self, system: str, code: str) -> tuple[str, str] | None:
        return self.codes.get((system, code))

    def unit(self, system: str | None, unit: str) -> str | None:
        return self.units.get((system or "", unit.strip()))

    def digest(self) -> str:
        """A digest of what the maps say (not of how the files are written)."""
        lines = [f"code {s}|{k}={t}|{u}" for (s, k), (t, u) in self.codes.items()]
        lines += [f"unit {s}|{k}={u}" for (s, k), u in self.units.items()]
        return hashlib.sha256("\n".join(sorted(lines)).encode("utf-8")).hexdigest()

    def add(self, resource: Any, where: str) -> None:
        """One ConceptMap (R4: ``equivalence``; R5-style ``relationship`` is read too)."""
        if type(resource) is not dict or resource.get("resourceType") != "ConceptMap":
            self._unusable(f"{where}: not a ConceptMap; skipped.")
            return
        name = str(resource.get("url") or resource.get("name") or resource.get("id") or where)
        self.names.append(name)
        for group in as_list(resource.get("group")):
            group = as_dict(group)
            found_source, found_target = group.get("source"), group.get("target")
            source: str = found_source if type(found_source) is str else ""
            target: str | None = found_target if type(found_target) is str else None
            for element in as_list(group.get("element")):
                element = as_dict(element)
                code = element.get("code")
                if type(code) is not str or not code:
                    continue
                for mapped in as_list(element.get("target")):
                    self._target(name, source, target, code, as_dict(mapped))

    def _unusable(self, problem: str) -> None:
        self.problems.append(problem)
        self.unusable.append(problem)

    def _target(
        self, name: str, source: str, target: str | None, code: str, mapped: dict[str, Any]
    ) -> None:
        to = mapped.get("code")
        how = mapped.get("equivalence") or mapped.get("relationship")
        if type(to) is not str or not to or target is None:
            return
        if how not in USED_EQUIVALENCE:
            self.problems.append(
                f"{name}: {source or '(no system)'}|{code} -> {target}|{to} is {how!r}, not "
                "equivalent: not used (only equivalent or equal mappings are read)."
            )
            return
        if target == c.UCUM:
            self.units[(source, code.strip())] = to
        elif source:
            self.codes[(source, code)] = (target, to)


def concept_maps_from(paths: Iterable[Path]) -> ConceptMaps:
    """ConceptMaps from JSON files (a ConceptMap, a Bundle of them) or directories of them."""
    maps = ConceptMaps()
    for path in paths:
        files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
        for file in files:
            try:
                doc = json.loads(file.read_text("utf-8"))
            except (OSError, ValueError) as err:
                maps._unusable(f"{file}: cannot be read as JSON ({err}); skipped.")
                continue
            if type(doc) is dict and doc.get("resourceType") == "Bundle":
                for number, entry in enumerate(as_list(doc.get("entry")), 1):
                    maps.add(as_dict(entry).get("resource"), f"{file} entry {number}")
            else:
                maps.add(doc, str(file))
    return maps


# --- applying translations ----------------------------------------------------------------------


def translate_entries(entries: Iterator[Entry], terminology: Terminology | None) -> Iterator[Entry]:
    """Each entry with its local codes and units translated (a copy where anything changed)."""
    if terminology is None:
        yield from entries
        return
    for entry in entries:
        entry.resource = translate(entry.resource, terminology)
        yield entry


def translate(resource: Any, terminology: Terminology) -> Any:
    """The resource with translated codings and units added (the original is left untouched)."""
    if type(resource) is not dict:
        return resource
    rtype = resource.get("resourceType")
    if rtype not in _CODED and rtype not in _MEDICATION_RECORDS and rtype != "Medication":
        return resource
    out = copy.deepcopy(resource)
    changed = False
    if rtype == "Medication":
        changed |= _concept(out.get("code"), terminology)
    elif rtype in _MEDICATION_RECORDS:
        changed |= _concept(out.get("medicationCodeableConcept"), terminology)
    else:
        changed |= _concept(out.get("code"), terminology)
    if rtype == "Observation":
        changed |= _quantity(out.get("valueQuantity"), terminology)
        for comp in as_list(out.get("component")):
            comp = as_dict(comp)
            changed |= _concept(comp.get("code"), terminology)
            changed |= _quantity(comp.get("valueQuantity"), terminology)
    for item in as_list(out.get("contained")):
        if type(item) is dict and item.get("resourceType") == "Medication":
            changed |= _concept(item.get("code"), terminology)
    return out if changed else resource


def _concept(concept: Any, terminology: Terminology) -> bool:
    if type(concept) is not dict:
        return False
    codings = concept.get("coding")
    if type(codings) is not list:
        return False
    added: list[dict[str, Any]] = []
    present = {(x.get("system"), x.get("code")) for x in codings if type(x) is dict}
    for coding in codings:
        if type(coding) is not dict:
            continue
        system, code = coding.get("system"), coding.get("code")
        if type(system) is not str or type(code) is not str or system in KNOWN_SYSTEMS:
            continue
        found = terminology.code(system, code)
        if found is not None and found not in present:
            present.add(found)
            added.append({"system": found[0], "code": found[1]})
    codings.extend(added)
    return bool(added)


def _quantity(quantity: Any, terminology: Terminology) -> bool:
    if type(quantity) is not dict:
        return False
    system = quantity.get("system")
    if system == c.UCUM and type(quantity.get("code")) is str:
        return False  # already UCUM
    for key in ("code", "unit"):
        text = quantity.get(key)
        if type(text) is str and text.strip():
            ucum = terminology.unit(system if type(system) is str else None, text)
            if ucum is not None:
                quantity["system"] = c.UCUM
                quantity["code"] = ucum
                quantity.setdefault("unit", text)
                return True
    return False


@dataclass
class _Asked:
    """A Terminology that remembers every question and its answer."""

    inner: Terminology
    answers: dict[str, str] = field(default_factory=dict)

    def code(self, system: str, code: str) -> tuple[str, str] | None:
        found = self.inner.code(system, code)
        self.answers[f"code {system}|{code}"] = "|".join(found) if found else "-"
        return found

    def unit(self, system: str | None, unit: str) -> str | None:
        found = self.inner.unit(system, unit)
        self.answers[f"unit {system or ''}|{unit.strip()}"] = found or "-"
        return found


def translations_used(
    resources: Iterable[Any], terminology: Terminology
) -> tuple[list[Any], str | None]:
    """The resources as the reader sees them (translated), and a digest of the translations asked.

    For the sync fingerprint: a result sent under a local code counts once it maps to a code
    fhir-cml reads, and a changed mapping of a code or unit the patient's resources carry changes
    the digest, so only the patients whose codes a map change touches are read again. None when
    no local code or unit was asked about (a patient the maps cannot affect).
    """
    asked = _Asked(terminology)
    seen = [translate(resource, asked) for resource in resources]
    if not asked.answers:
        return seen, None
    text = "\n".join(f"{k}={v}" for k, v in sorted(asked.answers.items()))
    return seen, hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_local(system: Any) -> bool:
    """A code system that is a site's own (not one fhir-cml reads directly)."""
    return type(system) is str and system not in KNOWN_SYSTEMS
