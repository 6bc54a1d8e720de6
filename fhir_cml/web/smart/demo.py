"""Demo mode: the app over the bundled example patients, without an EHR.

``fhir-cml serve --demo`` (or ``FHIR_CML_DEMO=true``) lists the examples at ``/demo``; each opens
the same page a clinician sees after a launch from the EHR, marked DEMO, as of 2025-06-30 (the
date the examples are written for; ``FHIR_CML_SMART_AS_OF`` changes it). Accept writes to an
in-memory store that behaves like the EHR's idempotent write-back (a second Accept of the same
proposal adds nothing); Dismiss is recorded in the state store like a real one, under the
pseudo-EHR ``demo``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Final

import fhir_cml
from fhir_cml.app import suggestions
from fhir_cml.domain import Assessment
from fhir_cml.errors import ConfigurationError
from fhir_cml.fhir.outbound.identifiers import fingerprint
from fhir_cml.fhir.outbound.requests import title_of
from fhir_cml.web.settings import Settings, env_name
from fhir_cml.web.smart.page import human_name

DEMO_AS_OF: Final = date(2025, 6, 30)
DEMO_ISS: Final = "demo"


def default_examples() -> Path:
    """``examples/`` of the source tree the package runs from."""
    return Path(fhir_cml.__file__).resolve().parent.parent / "examples"


@dataclass(frozen=True, slots=True)
class Example:
    name: str  # the file name without .json: the demo URL's last segment
    path: Path
    patient: str  # Patient/<id>
    title: str  # the patient's name

    def resources(self) -> list[dict[str, Any]]:
        """The resources of the example's Bundle."""
        bundle = json.loads(self.path.read_text(encoding="utf-8"))
        return [
            e["resource"]
            for e in bundle.get("entry") or []
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)
        ]


class Demo:
    """The examples, the as-of date, and the in-memory write-back."""

    def __init__(self, examples: dict[str, Example], as_of: date) -> None:
        self.examples = examples
        self.as_of = as_of
        self._written: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    @classmethod
    def start(cls, settings: Settings) -> Demo:
        directory = settings.demo_examples or default_examples()
        if not directory.is_dir():
            raise ConfigurationError(
                f"{env_name('demo_examples')}: {directory} is not a directory of example "
                "patients (FHIR Bundles, *.json)"
            )
        examples = {}
        for path in sorted(directory.glob("*.json")):
            found = _patient(path)
            if found is not None:
                examples[path.stem] = Example(path.stem, path, *found)
        if not examples:
            raise ConfigurationError(
                f"{env_name('demo_examples')}: no example patient in {directory}"
            )
        return cls(examples, settings.smart_as_of or DEMO_AS_OF)

    @cached_property
    def names(self) -> list[str]:
        return list(self.examples)

    def write(self, assessment: Assessment, recorded: datetime) -> dict[str, Any]:
        """Writes the proposal to the in-memory store, once per assessment fingerprint."""
        key = fingerprint(assessment)
        with self._lock:
            if key in self._written:
                return {"action": "unchanged", "created": [], "existing": self._written[key]}
            written = suggestions(assessment, recorded)
            activities = len(written.care_plan.get("activity") or [])
            created = [
                "RiskAssessment (the reading)",
                f"CarePlan (draft proposal, {activities} "
                f"suggestion{'s' if activities != 1 else ''})",
                *(
                    f"{r.resource['resourceType']} (proposed: {title_of(r.resource)})"
                    for r in written.requests
                ),
                "Provenance",
            ]
            self._written[key] = created
            return {"action": "create", "created": created, "existing": []}


def _patient(path: Path) -> tuple[str, str] | None:
    """(Patient/<id>, name) of an example Bundle; None for a file that is not one."""
    try:
        bundle = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    entries = bundle.get("entry") if isinstance(bundle, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "Patient":
            pid = resource.get("id")
            name = human_name(resource.get("name")) or f"Patient/{pid}"
            if isinstance(pid, str):
                return f"Patient/{pid}", name
    return None
