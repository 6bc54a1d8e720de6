"""Times the test FHIR server on synthetic data: start-up, bulk load, a 50-patient search.

Run from the repository root after ./scripts/test has installed everything:

    .venv/bin/python tests/fhir_server/measure.py [--patients 1000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.fhir_server import FhirTestServer, start_fhir_server

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"


def synthetic_patient(n: int) -> list[dict[str, Any]]:
    """One patient with 45 resources: 30 Observations, 8 MedicationStatements, 3 Conditions,
    a CarePlan, a RiskAssessment and a Procedure."""
    pid = f"pat-{n:05}"
    subject = {"reference": f"Patient/{pid}"}
    resources: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "id": pid,
            "identifier": [{"system": "urn:example:mrn", "value": pid}],
            "gender": "female" if n % 2 else "male",
            "birthDate": f"{1940 + n % 50}-01-01",
        }
    ]
    for i in range(30):
        code, unit, value = (
            ("69380-4", "%", 10 / (i + 1)) if i % 2 == 0 else ("718-7", "g/dL", 13.0)
        )
        resources.append(
            {
                "resourceType": "Observation",
                "id": f"{pid}-obs-{i}",
                "status": "final",
                "code": {"coding": [{"system": LOINC, "code": code}]},
                "subject": subject,
                "effectiveDateTime": f"{2015 + i // 4}-{1 + 3 * (i % 4):02}-15",
                "valueQuantity": {"value": value, "unit": unit},
            }
        )
    for i in range(8):
        resources.append(
            {
                "resourceType": "MedicationStatement",
                "id": f"{pid}-med-{i}",
                "status": "completed" if i < 7 else "active",
                "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "282388"}]},
                "subject": subject,
                "effectivePeriod": {"start": f"{2015 + i}-01-01"},
            }
        )
    for i in range(3):
        resources.append(
            {
                "resourceType": "Condition",
                "id": f"{pid}-cond-{i}",
                "subject": subject,
                "code": {"coding": [{"system": SNOMED, "code": "92818009"}]},
            }
        )
    resources += [
        {
            "resourceType": "CarePlan",
            "id": f"{pid}-plan",
            "status": "active",
            "intent": "plan",
            "subject": subject,
        },
        {
            "resourceType": "RiskAssessment",
            "id": f"{pid}-risk",
            "status": "final",
            "subject": subject,
        },
        {
            "resourceType": "Procedure",
            "id": f"{pid}-proc",
            "status": "completed",
            "subject": subject,
        },
    ]
    return resources


def timed(fn: Any, repeat: int = 1) -> tuple[float, Any]:
    """Median seconds of `repeat` calls, and the last result."""
    times = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=1000)
    args = parser.parse_args()

    startup, server = timed(start_fhir_server)
    for _ in range(2):
        seconds, other = timed(start_fhir_server)
        startup = min(startup, seconds)
        other.stop()
    assert isinstance(server, FhirTestServer)
    try:
        resources = [r for n in range(args.patients) for r in synthetic_patient(n)]
        ndjson = "\n".join(json.dumps(r) for r in resources)
        load_seconds, loaded = timed(
            lambda: server.http.post(
                f"{server.root_url}/_admin/load",
                data=ndjson,
                headers={"Content-Type": "application/fhir+ndjson"},
                timeout=600,
            ).json()
        )
        ids = ",".join(f"pat-{n:05}" for n in range(0, args.patients, max(1, args.patients // 50)))
        ids = ",".join(ids.split(",")[:50])
        url = f"{server.base_url}/Observation?patient={ids}&_count=1000"

        def search(query: str = url) -> dict[str, Any]:
            response = server.http.get(query, timeout=600)
            response.raise_for_status()
            result: dict[str, Any] = response.json()
            return result

        search_seconds, bundle = timed(search, repeat=5)
        sorted_seconds, _ = timed(lambda: search(url + "&_sort=-date"), repeat=3)
        one_seconds, _ = timed(
            lambda: search(f"{server.base_url}/Observation?patient=pat-00007"), 5
        )
        code = f"{server.base_url}/Observation?code={LOINC}|69380-4&_count=10"
        scan_seconds, scan = timed(lambda: search(code), repeat=3)
    finally:
        server.stop()

    print(f"start-up (process start to /metadata answering): {startup:.2f} s")
    print(
        f"load {loaded['loaded']} resources ({args.patients} patients) via /_admin/load: "
        f"{load_seconds:.2f} s"
    )
    print(
        f"Observation?patient=<50 ids>&_count=1000: {search_seconds * 1000:.0f} ms "
        f"({len(bundle['entry'])} of {bundle['total']} matches on the first page)"
    )
    print(f"  the same with _sort=-date: {sorted_seconds * 1000:.0f} ms")
    print(f"Observation?patient=<1 id>: {one_seconds * 1000:.0f} ms")
    print(
        f"Observation?code=... (no patient: a scan of every Observation), _count=10: "
        f"{scan_seconds * 1000:.0f} ms ({scan['total']} matches)"
    )


if __name__ == "__main__":
    main()
