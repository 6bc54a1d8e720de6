"""How fast is fhir-cml next to simply parsing its input?

Generates N synthetic CML patients as NDJSON bytes in memory (about 40 Observations and 5
MedicationStatements each, shaped as EHRs send them), then times, in the same run:

  parse          json.loads of every line (the floor any reader pays)
  rules          the response model alone, over records mapped beforehand
  map+rules      FHIR dicts -> PatientRecord -> Assessment (input already parsed)
  whole path     bytes -> parse -> map -> rules -> outbound FHIR resources built (not validated)

and prints patients/second for each with its time relative to parsing. The goal is that mapping
plus rules cost less than the parse.

    python bench/assess_bench.py [--patients 2000] [--repeat 5] [--seed 1] [--gc]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fhir_cml.domain import Guideline, assess
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound import MappingOptions, records_from_resources
from fhir_cml.fhir.outbound import build

AS_OF = date(2025, 6, 30)
NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
LAB = [{"coding": [{"system": c.OBSERVATION_CATEGORY, "code": "laboratory"}]}]


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _quantity(value: float, unit: str, code: str | None = None) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": c.UCUM, "code": code or unit}


def _observation(
    pid: str, oid: str, day: date, code: dict[str, Any], **value: Any
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "meta": {"versionId": "1", "lastUpdated": f"{day.isoformat()}T16:20:00Z"},
        "status": "final",
        "category": LAB,
        "code": code,
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": f"{day.isoformat()}T08:30:00Z",
        "issued": f"{day.isoformat()}T16:20:00Z",
        **value,
    }


def _statement(
    pid: str,
    sid: str,
    medication: dict[str, Any],
    start: date,
    end: date | None,
    dose_mg: float | None,
    status: str,
    per_day: int = 1,
) -> dict[str, Any]:
    period: dict[str, str] = {"start": start.isoformat()}
    if end is not None:
        period["end"] = end.isoformat()
    resource: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": sid,
        "status": status,
        "medicationCodeableConcept": medication,
        "subject": {"reference": f"Patient/{pid}"},
        "effectivePeriod": period,
        "dateAsserted": (end or start).isoformat(),
    }
    if dose_mg is not None:
        resource["dosage"] = [
            {
                "text": f"{dose_mg:g} mg {per_day} times daily",
                "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
                "route": _concept(c.SNOMED, "26643006", "Oral route"),
                "doseAndRate": [{"doseQuantity": _quantity(dose_mg, "mg")}],
            }
        ]
    return resource


IMATINIB_400 = _concept(c.RXNORM, "403879", "imatinib 400 MG Oral Tablet")
IMATINIB = _concept(c.RXNORM, "282388", "imatinib")
NILOTINIB = _concept(c.RXNORM, "662281", "nilotinib")
CLARITHROMYCIN = _concept(c.RXNORM, "21212", "clarithromycin")
AMLODIPINE = _concept(c.RXNORM, "17767", "amlodipine")
PCR_CODE = _concept(
    c.LOINC, "69380-4", "BCR-ABL1 e13a2+e14a2 transcripts/ABL1 transcripts in Blood (IS)"
)
ABL1 = _concept(c.CS_CML, c.ABL1_COPIES, "ABL1 control-gene copies")
COUNTS = [
    ("6690-2", "Leukocytes [#/volume] in Blood", "10*9/L", 4.0, 9.0),
    ("777-3", "Platelets [#/volume] in Blood", "10*9/L", 160.0, 420.0),
    ("706-2", "Basophils/100 leukocytes in Blood", "%", 0.0, 2.0),
    ("709-6", "Blasts/100 leukocytes in Blood", "%", 0.0, 1.0),
]


def patient_resources(i: int, rng: random.Random) -> list[dict[str, Any]]:
    """One synthetic patient: ~40 Observations, ~5 MedicationStatements, Patient, Condition."""
    pid = f"p{i}"
    start = AS_OF - timedelta(days=rng.randint(200, 3600))
    out: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "id": pid,
            "identifier": [{"system": "urn:oid:1.2.3.4", "value": f"MRN{i:07d}"}],
            "gender": rng.choice(["female", "male"]),
            "birthDate": date(rng.randint(1940, 1995), rng.randint(1, 12), 15).isoformat(),
        },
        {
            "resourceType": "Condition",
            "id": f"{pid}-cml",
            "clinicalStatus": _concept(
                "http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"
            ),
            "code": _concept(c.SNOMED, "92818009", "Chronic myeloid leukemia"),
            "subject": {"reference": f"Patient/{pid}"},
            "onsetDateTime": (start - timedelta(days=20)).isoformat(),
            "stage": [{"summary": _concept(c.SNOMED, "278177007", "Chronic phase")}],
        },
    ]
    # Baseline: spleen and blood counts a week before the start, for the risk scores.
    base = start - timedelta(days=7)
    out.append(
        _observation(
            pid,
            f"{pid}-spleen",
            base,
            _concept(c.LOINC, "32489-7", "Spleen tip distance below costal margin"),
            valueQuantity=_quantity(float(rng.randint(0, 12)), "cm"),
        )
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
        obs = _observation(
            pid,
            f"{pid}-pcr-{n}",
            day,
            PCR_CODE,
            component=[{"code": ABL1, "valueQuantity": _quantity(copies, "copies", "{copies}")}],
        )
        if detectable:
            obs["valueQuantity"] = _quantity(round(value, 4), "%")
        else:
            obs["valueCodeableConcept"] = _concept(c.SNOMED, "260415000", "Not detected")
        out.append(obs)
    # Blood counts at baseline and with some of the PCRs.
    for n, offset in enumerate([-7, 30, 90, 180, 365]):
        day = start + timedelta(days=offset)
        for code, display, unit, low, high in COUNTS:
            out.append(
                _observation(
                    pid,
                    f"{pid}-{code}-{n}",
                    day,
                    _concept(c.LOINC, code, display),
                    valueQuantity=_quantity(round(rng.uniform(low, high), 1), unit),
                )
            )
    # Imatinib trough levels with the time since the last dose.
    for n in range(2):
        day = start + timedelta(days=60 + 200 * n)
        if day > AS_OF:
            break
        out.append(
            _observation(
                pid,
                f"{pid}-trough-{n}",
                day,
                _concept(c.LOINC, "103609-4", "Imatinib [Mass/volume] in Serum or Plasma --trough"),
                valueQuantity=_quantity(float(rng.randint(500, 2200)), "ng/mL"),
                component=[
                    {
                        "code": _concept(c.LOINC, "45359-7", "Time since last dose"),
                        "valueQuantity": _quantity(round(rng.uniform(21, 26), 1), "h"),
                    }
                ],
            )
        )
    # Adherence assessed at two visits.
    for n, offset in enumerate((120, 400)):
        day = start + timedelta(days=offset)
        if day > AS_OF:
            break
        adherent = rng.random() < 0.85
        out.append(
            _observation(
                pid,
                f"{pid}-adherence-{n}",
                day,
                _concept(c.LOINC, "71799-1", "Adherence with medication"),
                valueCodeableConcept=_concept(
                    c.SNOMED,
                    "1156699004" if adherent else "702565001",
                    "Complies with drug therapy" if adherent else "Not adherent",
                ),
            )
        )
    # TKI course: 400 mg, often escalated to 600 mg, sometimes a switch; other medications.
    change = start + timedelta(days=rng.randint(180, 400))
    if change < AS_OF and rng.random() < 0.6:
        out.append(_statement(pid, f"{pid}-ms-1", IMATINIB_400, start, change, 400, "completed"))
        if rng.random() < 0.2:
            out.append(_statement(pid, f"{pid}-ms-2", NILOTINIB, change, None, 300, "active", 2))
        else:
            out.append(_statement(pid, f"{pid}-ms-2", IMATINIB, change, None, 600, "active"))
    else:
        out.append(_statement(pid, f"{pid}-ms-1", IMATINIB_400, start, None, 400, "active"))
    out.append(_statement(pid, f"{pid}-ms-3", AMLODIPINE, start, None, 5, "active"))
    if rng.random() < 0.1:
        begin = AS_OF - timedelta(days=rng.randint(5, 60))
        out.append(_statement(pid, f"{pid}-ms-4", CLARITHROMYCIN, begin, None, 500, "active", 2))
    else:
        out.append(
            _statement(
                pid, f"{pid}-ms-4", AMLODIPINE, start, start + timedelta(days=90), 10, "stopped"
            )
        )
    out.append(_statement(pid, f"{pid}-ms-5", AMLODIPINE, start, None, 2.5, "on-hold"))
    return out


def generate(patients: int, seed: int) -> tuple[bytes, int]:
    """NDJSON bytes for ``patients`` patients, and the number of resources."""
    rng = random.Random(seed)
    lines: list[str] = []
    for i in range(patients):
        lines.extend(json.dumps(r, separators=(",", ":")) for r in patient_resources(i, rng))
    return ("\n".join(lines) + "\n").encode(), len(lines)


def parse(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines() if line]


WITH_GC = False


def timed(run: Callable[[], object], repeat: int) -> list[float]:
    """Wall times of ``repeat`` runs; like timeit, the cyclic GC is off while a run is timed.

    With ``--gc`` it stays on, as in a real process: parsing tens of thousands of dicts then
    triggers full collections whose cost grows with everything else held in memory.
    """
    times = []
    for _ in range(repeat):
        gc.collect()
        if not WITH_GC:
            gc.disable()
        try:
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        finally:
            gc.enable()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--gc", action="store_true", help="leave the cyclic garbage collector on while timing"
    )
    args = parser.parse_args(argv)
    global WITH_GC
    WITH_GC = args.gc

    data, count = generate(args.patients, args.seed)
    options = MappingOptions(now=NOW)
    preloaded = records_from_resources(parse(data), options)
    records = preloaded.records
    print(
        f"{args.patients} patients, {count} resources ({count / args.patients:.0f} per patient), "
        f"{len(data) / 1e6:.1f} MB NDJSON; {len(records)} records mapped, "
        f"{len(preloaded.issues)} reader issues; best and median of {args.repeat} runs, GC {'on' if args.gc else 'off'}"
    )
    if len(records) != args.patients:
        print("every synthetic patient should map to a record", file=sys.stderr)
        return 1

    def rules() -> None:
        for record in records:
            assess(record, AS_OF, Guideline.ELN2020)

    fresh: list[list[dict[str, Any]]] = []

    def map_and_rules() -> None:
        loaded = records_from_resources(fresh.pop(), options)
        for record in loaded.records:
            assess(record, AS_OF, Guideline.ELN2020)

    def whole() -> None:
        loaded = records_from_resources(parse(data), options)
        for record in loaded.records:
            build(assess(record, AS_OF, Guideline.ELN2020), NOW)

    results = {"parse (json.loads)": timed(lambda: parse(data), args.repeat)}
    results["rules alone"] = timed(rules, args.repeat)
    # The mapper gets freshly parsed dicts each run; parsing them is not part of this timing.
    map_times = []
    for _ in range(args.repeat):
        fresh.append(parse(data))
        map_times += timed(map_and_rules, 1)
    results["map + rules"] = map_times
    results["whole path (+ parse, + FHIR out)"] = timed(whole, args.repeat)

    floor = min(results["parse (json.loads)"])
    print(f"{'stage':<34}{'best s':>9}{'median s':>10}{'patients/s':>12}{'x parse':>9}")
    for name, times in results.items():
        best, median = min(times), statistics.median(times)
        print(
            f"{name:<34}{best:>9.3f}{median:>10.3f}{args.patients / best:>12,.0f}"
            f"{best / floor:>9.2f}"
        )
    goal = min(results["map + rules"]) < floor
    print(f"map + rules {'below' if goal else 'ABOVE'} the cost of parsing the JSON")
    return 0


if __name__ == "__main__":
    sys.exit(main())
