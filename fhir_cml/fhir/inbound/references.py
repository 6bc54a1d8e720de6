"""References: what each resource is called (its ``ref``) and which patient a reference means.

A resource is called ``Type/id``; a Bundle entry without an id by its fullUrl (``urn:uuid:...``);
anything else by a label that says where it was read ("Observation (labs.json entry 3)"), which is
not a reference and is written back only as a display. A patient reference resolves to one key,
``Patient/<id>``, whether it was written relative, absolute, as a ``urn:uuid:`` fullUrl of a
Patient entry, as an identifier, or through a contained Patient.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhir_cml.fhir.inbound.context import as_dict, as_list, as_str
from fhir_cml.fhir.inbound.loader import Entry


def ref_of(entry: Entry) -> str:
    rtype = entry.rtype
    rid = entry.resource.get("id")
    if type(rid) is str and rid:
        return f"{rtype}/{rid}"
    if type(rid) is int:
        return f"{rtype}/{rid}"
    if entry.full_url:
        return entry.full_url
    return f"{rtype} ({entry.source})"


def literal(reference: str) -> tuple[str, str] | None:
    """(type, id) of a relative or absolute literal reference; history and URL prefix dropped."""
    text = reference
    cut = text.find("/_history/")
    if cut >= 0:
        text = text[:cut]
    parts = text.rsplit("/", 2)
    if len(parts) < 2:
        return None
    rtype, rid = parts[-2], parts[-1]
    if not rtype[:1].isupper() or not rtype.isalpha() or not rid or "?" in rid:
        return None
    return rtype, rid


def identifier_key(identifier: Any) -> tuple[str, str] | None:
    ident = as_dict(identifier)
    value = as_str(ident.get("value"))
    if value is None:
        return None
    return as_str(ident.get("system")) or "", value


@dataclass
class PatientIndex:
    """Patients seen in the input, by fullUrl and by identifier."""

    by_url: dict[str, str] = field(default_factory=dict)
    by_identifier: dict[tuple[str, str], str] = field(default_factory=dict)
    _cache: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    def add(self, entry: Entry) -> str:
        """Registers a Patient resource and returns its key."""
        res = entry.resource
        rid = res.get("id")
        if (type(rid) is str and rid) or type(rid) is int:
            key = f"Patient/{rid}"
        else:
            key = entry.full_url or self._by_identifiers(res) or ref_of(entry)
        if entry.full_url:
            self.by_url[entry.full_url] = key
        for ident in as_list(res.get("identifier")):
            found = identifier_key(ident)
            if found is not None:
                self.by_identifier.setdefault(found, key)
        return key

    def known(self, reference: str) -> tuple[str | None, str | None] | None:
        """A literal reference already resolved: the common case, one dict lookup."""
        return self._cache.get(reference)

    def resolve(self, holder: dict[str, Any], field_name: str) -> tuple[str | None, str | None]:
        """(patient key, None) or (None, why not) for ``holder[field_name]``."""
        value = holder.get(field_name)
        if value is None:
            return None, f"has no {field_name}"
        ref = as_dict(value)
        text = ref.get("reference")
        if type(text) is str and text:
            if text[0] == "#":
                return self._contained(holder, text[1:])
            cached = self._cache.get(text)
            if cached is None:
                cached = self._literal(text)
                self._cache[text] = cached
            return cached
        rtype = ref.get("type")
        if rtype is not None and rtype != "Patient":
            return None, f"{field_name} is a {str(rtype)[:40]}, not a Patient"
        found = identifier_key(ref.get("identifier"))
        if found is not None:
            return self._identified(found), None
        return None, f"{field_name} has neither a reference nor an identifier"

    def _literal(self, text: str) -> tuple[str | None, str | None]:
        known = self.by_url.get(text)
        if known is not None:
            return known, None
        if text.startswith("urn:"):
            return text, None  # a Patient entry not in this input: its fullUrl is its name
        if text.startswith("Patient?"):
            return self._conditional(text), None
        parsed = literal(text)
        if parsed is None:
            return None, f"reference {text[:80]!r} is not a Patient reference"
        if parsed[0] != "Patient":
            return None, f"refers to a {parsed[0]}, not a Patient"
        return f"Patient/{parsed[1]}", None

    def _conditional(self, text: str) -> str:
        for part in text[len("Patient?") :].split("&"):
            name, _, value = part.partition("=")
            if name == "identifier" and value:
                system, bar, code = value.rpartition("|")
                found = (system, code) if bar else ("", value)
                return self.by_identifier.get(found, text)
        return text

    def _contained(self, holder: dict[str, Any], local_id: str) -> tuple[str | None, str | None]:
        for item in as_list(holder.get("contained")):
            item = as_dict(item)
            if item.get("id") == local_id:
                if item.get("resourceType") != "Patient":
                    return None, f"contained #{local_id[:40]} is not a Patient"
                key = self._by_identifiers(item)
                if key is None:
                    return None, (
                        f"refers to a contained Patient #{local_id[:40]} without an identifier, "
                        "so it cannot be matched to a patient"
                    )
                return key, None
        return None, f"refers to #{local_id[:40]}, which is not among its contained resources"

    def _by_identifiers(self, patient: dict[str, Any]) -> str | None:
        first: tuple[str, str] | None = None
        for ident in as_list(patient.get("identifier")):
            found = identifier_key(ident)
            if found is None:
                continue
            known = self.by_identifier.get(found)
            if known is not None:
                return known
            first = first or found
        return self._identified(first) if first else None

    def _identified(self, found: tuple[str, str]) -> str:
        known = self.by_identifier.get(found)
        if known is not None:
            return known
        system, value = found
        return f"Patient?identifier={system}|{value}" if system else f"Patient?identifier={value}"
