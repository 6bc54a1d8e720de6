"""How fast is fhir-cml next to simply parsing its input?

Generates N synthetic CML patients as NDJSON bytes in memory (about 40 Observations and 5
MedicationStatements each; synthetic.py: shaped as EHRs send them, or with ``--minimal`` only the
elements fhir-cml reads), then times, in the same run and in turn:

  parse          json.loads of every line (the floor any reader pays)
  rules          the response model alone, over records mapped beforehand
  map+rules      FHIR dicts -> PatientRecord -> Assessment (input already parsed)
  whole path     bytes -> parse -> map -> rules -> outbound FHIR resources built (not validated)

and prints patients/second for each with its time relative to parsing. The goal is that mapping
plus rules cost less than the parse.

    python bench/assess_bench.py [--patients 2000] [--repeat 5] [--seed 1] [--minimal] [--gc]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from synthetic import AS_OF, generate

from fhir_cml.domain import Guideline, assess
from fhir_cml.fhir.inbound import MappingOptions, records_from_resources
from fhir_cml.fhir.outbound import build

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)


def parse(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines() if line]


WITH_GC = False


def timed(run: Callable[[], object]) -> float:
    """Wall time of one run; like timeit, the cyclic GC is off while it runs.

    With ``--gc`` it stays on, as in a real process: parsing tens of thousands of dicts then
    triggers full collections whose cost grows with everything else held in memory.
    """
    gc.collect()
    if not WITH_GC:
        gc.disable()
    try:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start
    finally:
        gc.enable()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--minimal",
        action="store_true",
        help="resources with only the elements fhir-cml reads, instead of shaped as EHRs send them",
    )
    parser.add_argument(
        "--gc", action="store_true", help="leave the cyclic garbage collector on while timing"
    )
    args = parser.parse_args(argv)
    global WITH_GC
    WITH_GC = args.gc

    shape = "minimal" if args.minimal else "ehr"
    data, count = generate(args.patients, args.seed, shape)
    options = MappingOptions(now=NOW)
    preloaded = records_from_resources(parse(data), options)
    records = preloaded.records
    print(
        f"{args.patients} patients, {count} resources ({count / args.patients:.0f} per patient), "
        f"{len(data) / 1e6:.1f} MB NDJSON ({shape}: {len(data) / count:.0f} bytes per resource); "
        f"{len(records)} records mapped, {len(preloaded.issues)} reader issues; "
        f"best and median of {args.repeat} runs, GC {'on' if args.gc else 'off'}"
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

    results: dict[str, list[float]] = {
        "parse (json.loads)": [],
        "rules alone": [],
        "map + rules": [],
        "whole path (+ parse, + FHIR out)": [],
    }
    # Round robin, so that a machine busy with something else for a while slows every stage
    # alike rather than one. The mapper gets freshly parsed dicts each run; parsing them is not
    # part of its timing.
    for _ in range(args.repeat):
        results["parse (json.loads)"].append(timed(lambda: parse(data)))
        results["rules alone"].append(timed(rules))
        fresh.append(parse(data))
        results["map + rules"].append(timed(map_and_rules))
        results["whole path (+ parse, + FHIR out)"].append(timed(whole))

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
