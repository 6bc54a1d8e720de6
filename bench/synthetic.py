"""Synthetic CML patients for the benchmarks, in two shapes.

``ehr`` (the default) is shaped like what an EHR or a laboratory system returns for a lab result
(compare the US Core Laboratory Result examples and HL7's Observation examples): meta with
versionId and lastUpdated; the laboratory's identifier; basedOn and encounter; category and
code with displays and text; subject with a display; effectiveDateTime and issued; performer;
valueQuantity with UCUM system and code; interpretation; referenceRange; specimen; method and a
note on the PCR results. Patients, Conditions and MedicationStatements carry what EHRs send too
(names, addresses, ICD-10-CM next to SNOMED CT, ATC next to RxNorm, dosage text and route).

``minimal`` keeps only the elements fhir-cml reads (what a server returns for a search with
``_elements``): the same clinical content, so both shapes map to the same records and the same
assessments; only the bytes around them differ.

The clinical course is random but seeded: BCR::ABL1 every three months falling with the
response, blood counts, spleen size, imatinib troughs, adherence, a TKI course with dose
changes or a switch, and other medications (sometimes a strong CYP3A4 inhibitor).
"""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

from fhir_cml.fhir import canonical as c

AS_OF = date(2025, 6, 30)
SHAPES = ("ehr", "minimal")

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
REFERENCE_RANGE_MEANING = "http://terminology.hl7.org/CodeSystem/referencerange-meaning"
ACCESSION = "https://lab.example.org/fhir/identifier/accession"
MRN = "https://hospital.example.org/fhir/identifier/mrn"
LAB = ("Organization/lab-haematology", "Haematology Laboratory, Example University Hospital")
MOLECULAR_LAB = (
    "Organization/lab-molecular",
    "Molecular Haematology Laboratory, Example University Hospital",
)
CLINIC = ("Practitioner/cml-clinic-1", "Dr. A. Example, CML Clinic")
FAMILY = ("Smith", "Garcia", "Mueller", "Rossi", "Nguyen", "Kowalski", "Okafor", "Jensen")
GIVEN = ("Anna", "Ben", "Chloe", "David", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas")
INTERPRETATIONS = {
    "N": "Normal",
    "H": "High",
    "L": "Low",
    "A": "Abnormal",
    "ND": "Not detected",
}


class Shape:
    """Builds resources in one shape; ``ehr`` adds what the mapper does not read."""

    def __init__(self, ehr: bool) -> None:
        self.ehr = ehr

    def concept(self, system: str, code: str, display: str, *more: tuple[str, str, str]) -> Any:
        if not self.ehr:
            return {"coding": [{"system": s, "code": k} for s, k, _ in ((system, code, ""), *more)]}
        codings = [{"system": system, "code": code, "display": display}]
        codings += [{"system": s, "code": k, "display": d} for s, k, d in more]
        return {"coding": codings, "text": display}

    def quantity(self, value: float, unit: str, code: str | None = None) -> dict[str, Any]:
        if not self.ehr:
            return {"value": value, "system": c.UCUM, "code": code or unit}
        return {"value": value, "unit": unit, "system": c.UCUM, "code": code or unit}


def _interpretation(code: str) -> list[dict[str, Any]]:
    display = INTERPRETATIONS[code]
    return [
        {
            "coding": [{"system": c.V3_INTERPRETATION, "code": code, "display": display}],
            "text": display,
        }
    ]


def _category(code: str, display: str) -> list[dict[str, Any]]:
    return [
        {
            "coding": [{"system": c.OBSERVATION_CATEGORY, "code": code, "display": display}],
            "text": display,
        }
    ]


def _observation(
    shape: Shape,
    pid: str,
    name: str,
    oid: str,
    day: date,
    code: tuple[str, str, str],
    value: dict[str, Any],
    *,
    category: tuple[str, str] = ("laboratory", "Laboratory"),
    performer: tuple[str, str] = LAB,
    extras: dict[str, Any] | None = None,
) -> dict[str, Any]:
    when = f"{day.isoformat()}T08:30:00Z"
    if not shape.ehr:
        return {
            "resourceType": "Observation",
            "id": oid,
            "status": "final",
            "code": shape.concept(*code),
            "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": when,
            **value,
        }
    issued = f"{day.isoformat()}T16:20:00Z"
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "meta": {"versionId": "1", "lastUpdated": issued},
        "identifier": [{"system": ACCESSION, "value": f"{oid.upper()}-{day.strftime('%y%m%d')}"}],
        "basedOn": [{"reference": f"ServiceRequest/{oid}-order"}],
        "status": "final",
        "category": _category(*category),
        "code": shape.concept(*code),
        "subject": {"reference": f"Patient/{pid}", "display": name},
        "encounter": {"reference": f"Encounter/{pid}-{day.isoformat()}"},
        "effectiveDateTime": when,
        "issued": issued,
        "performer": [{"reference": performer[0], "display": performer[1]}],
        **value,
    }
    if extras:
        resource.update(extras)
    return resource


def _reference_range(shape: Shape, low: float, high: float, unit: str) -> dict[str, Any]:
    return {
        "referenceRange": [
            {
                "low": shape.quantity(low, unit),
                "high": shape.quantity(high, unit),
                "type": {
                    "coding": [
                        {
                            "system": REFERENCE_RANGE_MEANING,
                            "code": "normal",
                            "display": "Normal Range",
                        }
                    ],
                    "text": "Normal Range",
                },
                "text": f"{low:g}-{high:g} {unit}",
            }
        ]
    }


def _statement(
    shape: Shape,
    pid: str,
    name: str,
    sid: str,
    medication: tuple[tuple[str, str, str], ...],
    start: date,
    end: date | None,
    dose_mg: float | None,
    status: str,
    per_day: int = 1,
) -> dict[str, Any]:
    period: dict[str, str] = {"start": start.isoformat()}
    if end is not None:
        period["end"] = end.isoformat()
    resource: dict[str, Any] = {"resourceType": "MedicationStatement", "id": sid}
    if shape.ehr:
        resource["meta"] = {"versionId": "1", "lastUpdated": f"{start.isoformat()}T10:00:00Z"}
    resource["status"] = status
    if shape.ehr:
        resource["category"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/medication-statement-category",
                    "code": "community",
                    "display": "Community",
                }
            ]
        }
    resource["medicationCodeableConcept"] = shape.concept(*medication[0], *medication[1:])
    resource["subject"] = (
        {"reference": f"Patient/{pid}", "display": name}
        if shape.ehr
        else {"reference": f"Patient/{pid}"}
    )
    resource["effectivePeriod"] = period
    resource["dateAsserted"] = (end or start).isoformat()
    if shape.ehr:
        resource["informationSource"] = {"reference": CLINIC[0], "display": CLINIC[1]}
    if dose_mg is not None:
        dosage: dict[str, Any] = {
            "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": shape.quantity(dose_mg, "mg")}],
        }
        if shape.ehr:
            dosage = {
                "sequence": 1,
                "text": f"{dose_mg:g} mg by mouth {'once' if per_day == 1 else 'twice'} daily",
                **dosage,
                "route": shape.concept(c.SNOMED, "26643006", "Oral route"),
            }
            dosage["timing"]["code"] = shape.concept(
                c.V3_TIMING, "QD" if per_day == 1 else "BID", "QD" if per_day == 1 else "BID"
            )
        resource["dosage"] = [dosage]
    return resource


IMATINIB_400 = (
    (c.RXNORM, "403879", "imatinib 400 MG Oral Tablet"),
    (c.ATC, "L01EA01", "imatinib"),
)
IMATINIB = ((c.RXNORM, "282388", "imatinib"), (c.ATC, "L01EA01", "imatinib"))
NILOTINIB = ((c.RXNORM, "662281", "nilotinib"), (c.ATC, "L01EA03", "nilotinib"))
CLARITHROMYCIN = ((c.RXNORM, "21212", "clarithromycin"), (c.ATC, "J01FA09", "clarithromycin"))
AMLODIPINE = ((c.RXNORM, "17767", "amlodipine"), (c.ATC, "C08CA01", "amlodipine"))
PCR_CODE = (c.LOINC, "69380-4", "BCR-ABL1 e13a2+e14a2 transcripts/ABL1 transcripts in Blood (IS)")
ABL1 = (c.CS_CML, c.ABL1_COPIES, "ABL1 control-gene copies")
# LOINC, display, unit, the range values are drawn from, the normal range.
COUNTS = [
    ("6690-2", "Leukocytes [#/volume] in Blood", "10*9/L", 4.0, 9.0, (4.0, 11.0)),
    ("777-3", "Platelets [#/volume] in Blood", "10*9/L", 160.0, 420.0, (150.0, 400.0)),
    ("706-2", "Basophils/100 leukocytes in Blood", "%", 0.0, 2.0, (0.0, 1.0)),
    ("709-6", "Blasts/100 leukocytes in Blood", "%", 0.0, 1.0, (0.0, 0.0)),
]


def _flag(value: float, low: float, high: float) -> str:
    return "H" if value > high else "L" if value < low else "N"


def patient_resources(i: int, rng: random.Random, shape: str = "ehr") -> list[dict[str, Any]]:
    """One synthetic patient: ~40 Observations, ~5 MedicationStatements, Patient, Condition.

    The random draws do not depend on ``shape``: the same seed gives the same patients in both.
    """
    s = Shape(shape == "ehr")
    pid = f"p{i}"
    family, given = FAMILY[i % len(FAMILY)], GIVEN[(i // len(FAMILY)) % len(GIVEN)]
    name = f"{given} {family}"
    start = AS_OF - timedelta(days=rng.randint(200, 3600))
    gender = rng.choice(["female", "male"])
    born = date(rng.randint(1940, 1995), rng.randint(1, 12), 15).isoformat()
    patient: dict[str, Any] = {"resourceType": "Patient", "id": pid, "birthDate": born}
    condition: dict[str, Any] = {
        "resourceType": "Condition",
        "id": f"{pid}-cml",
        "code": s.concept(c.SNOMED, "92818009", "Chronic myeloid leukemia"),
        "subject": {"reference": f"Patient/{pid}"},
        "onsetDateTime": (start - timedelta(days=20)).isoformat(),
        "stage": [{"summary": s.concept(c.SNOMED, "278177007", "Chronic phase")}],
    }
    if s.ehr:
        patient = {
            "resourceType": "Patient",
            "id": pid,
            "meta": {"versionId": "3", "lastUpdated": "2025-01-15T09:12:44Z"},
            "identifier": [
                {
                    "use": "usual",
                    "type": {
                        "coding": [
                            {"system": V2_0203, "code": "MR", "display": "Medical record number"}
                        ]
                    },
                    "system": MRN,
                    "value": f"MRN{i:07d}",
                }
            ],
            "active": True,
            "name": [{"use": "official", "family": family, "given": [given]}],
            "telecom": [{"system": "phone", "value": f"+1 555 01{i % 100:02d}", "use": "home"}],
            "gender": gender,
            "birthDate": born,
            "address": [
                {
                    "use": "home",
                    "line": [f"{i % 200 + 1} Example Street"],
                    "city": "Springfield",
                    "postalCode": f"{10000 + i % 90000}",
                    "country": "US",
                }
            ],
            "managingOrganization": {"reference": "Organization/example-hospital"},
        }
        condition = {
            "resourceType": "Condition",
            "id": f"{pid}-cml",
            "meta": {"versionId": "1", "lastUpdated": f"{start.isoformat()}T11:00:00Z"},
            "clinicalStatus": s.concept(
                "http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"
            ),
            "verificationStatus": s.concept(
                "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                "confirmed",
                "Confirmed",
            ),
            "category": [
                s.concept(
                    "http://terminology.hl7.org/CodeSystem/condition-category",
                    "problem-list-item",
                    "Problem List Item",
                )
            ],
            "code": s.concept(
                c.SNOMED,
                "92818009",
                "Chronic myeloid leukemia",
                (c.ICD10_CM, "C92.10", "Chronic myeloid leukemia, BCR/ABL-positive"),
            ),
            "subject": {"reference": f"Patient/{pid}", "display": name},
            "onsetDateTime": (start - timedelta(days=20)).isoformat(),
            "recordedDate": (start - timedelta(days=14)).isoformat(),
            "recorder": {"reference": CLINIC[0], "display": CLINIC[1]},
            "stage": [{"summary": s.concept(c.SNOMED, "278177007", "Chronic phase")}],
        }
    out: list[dict[str, Any]] = [patient, condition]

    def observation(
        oid: str, day: date, code: tuple[str, str, str], value: dict[str, Any], **kw: Any
    ) -> None:
        out.append(_observation(s, pid, name, oid, day, code, value, **kw))

    # Baseline: spleen and blood counts a week before the start, for the risk scores.
    base = start - timedelta(days=7)
    observation(
        f"{pid}-spleen",
        base,
        (c.LOINC, "32489-7", "Spleen tip distance below costal margin"),
        {"valueQuantity": s.quantity(float(rng.randint(0, 12)), "cm")},
        category=("exam", "Exam"),
        performer=CLINIC,
    )
    # BCR::ABL1 every ~3 months (monthly early on), falling with the response.
    level = rng.uniform(20.0, 80.0)
    halving = rng.uniform(40.0, 160.0)
    days = list(range(30, 120, 30)) + list(range(180, (AS_OF - start).days, 91))
    for n, offset in enumerate(days[:22]):
        day = start + timedelta(days=offset)
        value = max(level * 0.5 ** (offset / halving), 0.0005)
        copies = rng.randint(20_000, 150_000)
        detectable = value > 0.001 or rng.random() < 0.5
        found: dict[str, Any] = {
            "component": [
                {
                    "code": s.concept(*ABL1),
                    "valueQuantity": s.quantity(copies, "copies", "{copies}"),
                }
            ]
        }
        if detectable:
            found["valueQuantity"] = s.quantity(round(value, 4), "%")
        else:
            found["valueCodeableConcept"] = s.concept(c.SNOMED, "260415000", "Not detected")
        observation(
            f"{pid}-pcr-{n}",
            day,
            PCR_CODE,
            found,
            performer=MOLECULAR_LAB,
            extras={
                "interpretation": _interpretation("A" if detectable else "ND"),
                "note": [
                    {"text": f"ABL1 {copies:,} control-gene copies in the sample. EAC protocol."}
                ],
                "method": {"text": "RT-qPCR (EAC protocol), International Scale"},
                "specimen": {
                    "reference": f"Specimen/{pid}-pcr-{n}-blood",
                    "display": "Peripheral blood, EDTA",
                },
                "referenceRange": [{"text": "Not detected"}],
            },
        )
    # Blood counts at baseline and with some of the PCRs.
    for n, offset in enumerate([-7, 30, 90, 180, 365]):
        day = start + timedelta(days=offset)
        for code, display, unit, low, high, normal in COUNTS:
            count = round(rng.uniform(low, high), 1)
            observation(
                f"{pid}-{code}-{n}",
                day,
                (c.LOINC, code, display),
                {"valueQuantity": s.quantity(count, unit)},
                extras={
                    "interpretation": _interpretation(_flag(count, *normal)),
                    "specimen": {
                        "reference": f"Specimen/{pid}-cbc-{n}-blood",
                        "display": "Peripheral blood, EDTA",
                    },
                    **_reference_range(s, *normal, unit),
                },
            )
    # Imatinib trough levels with the time since the last dose.
    for n in range(2):
        day = start + timedelta(days=60 + 200 * n)
        if day > AS_OF:
            break
        level_ng = float(rng.randint(500, 2200))
        observation(
            f"{pid}-trough-{n}",
            day,
            (c.LOINC, "103609-4", "Imatinib [Mass/volume] in Serum or Plasma --trough"),
            {
                "valueQuantity": s.quantity(level_ng, "ng/mL"),
                "component": [
                    {
                        "code": s.concept(c.LOINC, "45359-7", "Time since last dose"),
                        "valueQuantity": s.quantity(round(rng.uniform(21, 26), 1), "h"),
                    }
                ],
            },
            extras={
                "interpretation": _interpretation("L" if level_ng < 1000 else "N"),
                "specimen": {
                    "reference": f"Specimen/{pid}-trough-{n}-plasma",
                    "display": "Plasma, lithium heparin",
                },
                "referenceRange": [
                    {
                        "low": s.quantity(1000.0, "ng/mL"),
                        "text": "Target trough at steady state: 1000 ng/mL or more",
                    }
                ],
            },
        )
    # Adherence assessed at two visits.
    for n, offset in enumerate((120, 400)):
        day = start + timedelta(days=offset)
        if day > AS_OF:
            break
        adherent = rng.random() < 0.85
        observation(
            f"{pid}-adherence-{n}",
            day,
            (c.LOINC, "71799-1", "Adherence with medication"),
            {
                "valueCodeableConcept": s.concept(
                    c.SNOMED,
                    "1156699004" if adherent else "702565001",
                    "Complies with drug therapy" if adherent else "Not adherent",
                )
            },
            category=("survey", "Survey"),
            performer=CLINIC,
        )
    # TKI course: 400 mg, often escalated to 600 mg, sometimes a switch; other medications.

    def statement(sid: str, *args: Any) -> None:
        out.append(_statement(s, pid, name, f"{pid}-{sid}", *args))

    change = start + timedelta(days=rng.randint(180, 400))
    if change < AS_OF and rng.random() < 0.6:
        statement("ms-1", IMATINIB_400, start, change, 400, "completed")
        if rng.random() < 0.2:
            statement("ms-2", NILOTINIB, change, None, 300, "active", 2)
        else:
            statement("ms-2", IMATINIB, change, None, 600, "active")
    else:
        statement("ms-1", IMATINIB_400, start, None, 400, "active")
    statement("ms-3", AMLODIPINE, start, None, 5, "active")
    if rng.random() < 0.1:
        begin = AS_OF - timedelta(days=rng.randint(5, 60))
        statement("ms-4", CLARITHROMYCIN, begin, None, 500, "active", 2)
    else:
        statement("ms-4", AMLODIPINE, start, start + timedelta(days=90), 10, "stopped")
    statement("ms-5", AMLODIPINE, start, None, 2.5, "on-hold")
    return out


def generate(patients: int, seed: int, shape: str = "ehr") -> tuple[bytes, int]:
    """NDJSON bytes for ``patients`` patients, and the number of resources."""
    rng = random.Random(seed)
    lines: list[str] = []
    for i in range(patients):
        lines.extend(json.dumps(r, separators=(",", ":")) for r in patient_resources(i, rng, shape))
    return ("\n".join(lines) + "\n").encode(), len(lines)


def write_export(
    directory: Path, patients: int, seed: int = 1, shape: str = "ehr"
) -> tuple[int, int]:
    """A Bulk Data export of ``patients`` patients, written patient by patient (never held whole).

    As servers deliver one: one NDJSON file per resource type (each patient's resources spread
    over them) and a manifest. Returns the number of resources and of bytes written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    files: dict[str, IO[bytes]] = {}
    counts: dict[str, int] = {}
    size = 0
    try:
        for i in range(patients):
            for resource in patient_resources(i, rng, shape):
                rtype = resource["resourceType"]
                handle = files.get(rtype)
                if handle is None:
                    handle = files[rtype] = (directory / f"{rtype}.ndjson").open("wb")
                line = orjson.dumps(resource) + b"\n"
                handle.write(line)
                size += len(line)
                counts[rtype] = counts.get(rtype, 0) + 1
    finally:
        for handle in files.values():
            handle.close()
    manifest = {
        "transactionTime": f"{AS_OF.isoformat()}T12:00:00Z",
        "request": "https://ehr.example.org/fhir/Patient/$export",
        "requiresAccessToken": True,
        "output": [
            {"type": rtype, "url": f"https://ehr.example.org/export/{rtype}.ndjson", "count": n}
            for rtype, n in sorted(counts.items())
        ],
        "error": [],
    }
    (directory / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return sum(counts.values()), size
