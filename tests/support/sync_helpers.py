"""Running ``fhir-cml sync`` in tests and reading back what it wrote."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from click.testing import CliRunner, Result

from fhir_cml.cli import main
from fhir_cml.fhir import canonical as c
from tests.support.fhir_server import FhirTestServer
from tests.support.sync_data import AS_OF

WRITES = ("transaction", "batch", "create", "update", "patch", "delete")


@dataclass
class SyncEnv:
    """A seeded test server and a state store of one test."""

    server: FhirTestServer
    base: str
    state: Path

    def run(self, *args: str, state: Path | None = None) -> Result:
        """``fhir-cml sync`` with this server and state, as of the tests' date."""
        argv = [
            "sync",
            "--fhir-base",
            self.base,
            "--state",
            str(state or self.state),
            "--as-of",
            AS_OF.isoformat(),
            "--no-progress",
            "--concurrency",
            "2",
            *args,
        ]
        return CliRunner().invoke(main, argv, catch_exceptions=False)

    def search(self, query: str) -> list[dict[str, Any]]:
        response = requests.get(
            f"{self.base}/{query}", headers={"Accept": "application/fhir+json"}, timeout=30
        )
        response.raise_for_status()
        bundle = response.json()
        assert bundle.get("link") is None or not any(
            link["relation"] == "next" for link in bundle["link"]
        ), "more than one page; raise _count"
        return [e["resource"] for e in bundle.get("entry", [])]

    def written(self) -> dict[str, list[dict[str, Any]]]:
        """Everything fhir-cml wrote, by resource type."""
        return {
            kind: self.search(f"{kind}?_count=1000")
            for kind in ("RiskAssessment", "CarePlan", "Provenance")
        }

    def writes(self) -> int:
        """Write requests (transactions, batches, creates, ...) since the stats were reset."""
        stats = self.server.stats()["byInteraction"]
        return sum(stats.get(kind, 0) for kind in WRITES)

    def reads(self) -> int:
        stats = self.server.stats()["byInteraction"]
        return sum(n for kind, n in stats.items() if kind not in WRITES)


def subject_of(resource: dict[str, Any]) -> str:
    return str(resource["subject"]["reference"])


def fingerprint_of(resource: dict[str, Any]) -> str:
    for ident in resource.get("identifier", []):
        if ident["system"] in (c.ID_ASSESSMENT, c.ID_CARE_PLAN):
            return str(ident["value"])
    raise AssertionError("no fhir-cml identifier")


def by_status(care_plans: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for plan in care_plans:
        out.setdefault(plan["status"], []).append(subject_of(plan))
    return {k: sorted(v) for k, v in out.items()}
