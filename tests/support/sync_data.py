"""Small CML patients for the sync tests, shaped as docs/inbound.md describes them.

Every resource carries ``meta.lastUpdated`` in the past (the test server's ``/_admin/load`` keeps
it), so that an incremental run sees only what a test changes afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from typing import Any

from fhir_cml.fhir import canonical as c

AS_OF = date(2025, 6, 30)
SEEDED = "2025-01-01T00:00:00Z"
PCR = {"coding": [{"system": c.LOINC, "code": "69380-4"}], "text": "BCR::ABL1 IS"}
ABL1 = {"coding": [{"system": c.CS_CML, "code": c.ABL1_COPIES}]}
IMATINIB = {"coding": [{"system": c.RXNORM, "code": "282388", "display": "imatinib"}]}


def _meta() -> dict[str, Any]:
    return {"lastUpdated": SEEDED}


def pcr(pid: str, day: date, percent: float, n: int | None = None) -> dict[str, Any]:
    """A BCR::ABL1 IS result with 60,000 ABL1 copies."""
    return {
        "resourceType": "Observation",
        "id": f"{pid}-pcr-{n if n is not None else day.isoformat()}",
        "meta": _meta(),
        "status": "final",
        "code": PCR,
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": day.isoformat(),
        "valueQuantity": {"value": percent, "unit": "%", "system": c.UCUM, "code": "%"},
        "component": [
            {
                "code": ABL1,
                "valueQuantity": {
                    "value": 60000,
                    "unit": "copies",
                    "system": c.UCUM,
                    "code": "{copies}",
                },
            }
        ],
    }


def cml_patient(
    pid: str, start: date, results: Sequence[tuple[int, float]]
) -> list[dict[str, Any]]:
    """A patient on imatinib 400 mg from ``start``; ``results`` are (days after start, IS %)."""
    return [
        {
            "resourceType": "Patient",
            "id": pid,
            "meta": _meta(),
            "birthDate": "1960-05-01",
            "name": [{"family": f"Test-{pid}"}],
        },
        {
            "resourceType": "Condition",
            "id": f"{pid}-cml",
            "meta": _meta(),
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active",
                    }
                ]
            },
            "code": {"coding": [{"system": c.SNOMED, "code": "92818009"}]},
            "subject": {"reference": f"Patient/{pid}"},
            "onsetDateTime": (start - timedelta(days=14)).isoformat(),
        },
        {
            "resourceType": "MedicationStatement",
            "id": f"{pid}-imatinib",
            "meta": _meta(),
            "status": "active",
            "medicationCodeableConcept": IMATINIB,
            "subject": {"reference": f"Patient/{pid}"},
            "effectivePeriod": {"start": start.isoformat()},
            "dosage": [
                {
                    "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                    "doseAndRate": [
                        {
                            "doseQuantity": {
                                "value": 400,
                                "unit": "mg",
                                "system": c.UCUM,
                                "code": "mg",
                            }
                        }
                    ],
                }
            ],
        },
        *(pcr(pid, start + timedelta(days=d), v) for d, v in results),
    ]


def other_patient(pid: str) -> list[dict[str, Any]]:
    """A patient without CML: a haemoglobin result only."""
    return [
        {"resourceType": "Patient", "id": pid, "meta": _meta(), "birthDate": "1980-01-01"},
        {
            "resourceType": "Observation",
            "id": f"{pid}-hb",
            "meta": _meta(),
            "status": "final",
            "code": {"coding": [{"system": c.LOINC, "code": "718-7"}]},
            "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": "2025-05-01",
            "valueQuantity": {"value": 13.5, "unit": "g/dL", "system": c.UCUM, "code": "g/dL"},
        },
    ]


# Four CML patients with different readings as of 2025-06-30.
CML_PATIENTS: dict[str, list[dict[str, Any]]] = {
    # MR4 after years of imatinib: optimal.
    "opt": cml_patient(
        "opt",
        date(2022, 1, 10),
        [(90, 4.2), (180, 0.62), (360, 0.075), (800, 0.009), (1250, 0.006)],
    ),
    # 6.8 % at 3 months, 3.5 % at 6 months: warning.
    "warn": cml_patient("warn", date(2024, 12, 2), [(91, 6.8), (175, 3.5)]),
    # 12 %, 6 %, then 3.1 % at about a year: failure.
    "fail": cml_patient("fail", date(2024, 6, 17), [(91, 12.0), (182, 6.0), (350, 3.1)]),
    # MMR at a year and since.
    "mmr": cml_patient("mmr", date(2023, 5, 1), [(92, 5.0), (183, 0.8), (365, 0.08), (700, 0.05)]),
}
NON_CML = other_patient("nocml")


def all_resources(
    patients: dict[str, list[dict[str, Any]]] | None = None,
) -> Iterator[dict[str, Any]]:
    for resources in (patients or CML_PATIENTS).values():
        yield from resources
    yield from NON_CML


def more_patients(n: int) -> Iterator[dict[str, Any]]:
    """``n`` more optimal responders, ``extra-0`` to ``extra-<n-1>``."""
    for i in range(n):
        yield from cml_patient(
            f"extra-{i}", date(2022, 1, 10), [(90, 4.2), (180, 0.62), (360, 0.075), (800, 0.009)]
        )


def group(gid: str, members: Sequence[str]) -> dict[str, Any]:
    return {
        "resourceType": "Group",
        "id": gid,
        "meta": _meta(),
        "type": "person",
        "actual": True,
        "member": [{"entity": {"reference": f"Patient/{m}"}} for m in members],
    }
