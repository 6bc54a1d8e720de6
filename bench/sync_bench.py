"""How fast is ``fhir-cml sync`` against a FHIR server, next to merely reading the same data?

Starts the test FHIR server (tests/fhir_server, Medplum's engine), seeds it with N synthetic CML
patients (synthetic.py, shaped as EHRs send them: ~49 resources each), and measures in one run:

  full sync       a first sync (every patient read, assessed and written): with the defaults
                  (--write-mode auto, which finds that this server takes two patients per
                  transaction and writes in batches), and with --write-mode transaction
  bare reads      the same read requests the full sync sent, replayed by a plain requests loop
                  against the same data (the floor: what reading alone costs here)
  bare writes     the same write bundles, replayed the same way against the same data (what
                  the server spends on the conditional creates, whoever sends them)
  dry run         a full sync that writes nothing: reading, mapping, assessing, planning
  re-run          a second, incremental sync with nothing changed
  bulk            a first sync with --bulk ($export, download, the same assessment)

HTTP requests per patient come from the server's own counters (/_admin/stats), reads and writes
apart. The goals: under 0.5 read and 0.1 write requests per patient on a full sync, and the
full sync taking no more than 1.5x the bare reads.

    python bench/sync_bench.py [--patients 1000] [--concurrency 4] [--batch-size 50]
"""

from __future__ import annotations

import argparse
import copy
import gc
import io
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synthetic import patient_resources

from fhir_cml.fhir.client import Exchange, FhirClient
from fhir_cml.fhir.fetch import FetchOptions
from fhir_cml.jobs.sync import Summary, SyncJob, SyncSettings
from fhir_cml.state import StateStore
from tests.support.fhir_server import FhirTestServer, start_fhir_server

AS_OF = __import__("datetime").date(2025, 6, 30)
WRITES = ("transaction", "batch", "create", "update", "patch", "delete")
EXPORT = ("export", "export-status", "export-file", "export-delete")


@dataclass
class Measured:
    name: str
    seconds: float
    reads: int
    writes: int
    exports: int
    summary: Summary | None = None


def seed(server: FhirTestServer, patients: int, seed_value: int) -> int:
    server.reset()
    rng = random.Random(seed_value)
    resources: list[dict[str, Any]] = []
    for i in range(patients):
        for resource in patient_resources(i, rng):
            resource.setdefault("meta", {})["lastUpdated"] = "2025-01-01T00:00:00Z"
            resources.append(resource)
    server.load(resources)
    server.reset_stats()
    return len(resources)


def counts(server: FhirTestServer) -> tuple[int, int, int]:
    by = server.stats()["byInteraction"]
    writes = sum(by.get(k, 0) for k in WRITES)
    exports = sum(by.get(k, 0) for k in EXPORT)
    reads = sum(n for k, n in by.items() if k not in WRITES and k not in EXPORT)
    return reads, writes, exports


class RecordingClient(FhirClient):
    """Keeps the batch and transaction bundles it sends, to replay them."""

    sent: list[dict[str, Any]]

    def _bundle_post(self, bundle: dict[str, Any], kind: str, repeatable: bool) -> dict[str, Any]:
        self.sent.append(copy.deepcopy(bundle))
        return super()._bundle_post(bundle, kind, repeatable)


def sync(
    server: FhirTestServer,
    state: Path,
    name: str,
    args: argparse.Namespace,
    urls: list[tuple[str, str, Any]] | None = None,
    bundles: list[dict[str, Any]] | None = None,
    **settings: Any,
) -> Measured:
    server.reset_stats()
    client = RecordingClient(server.base_url, pool_size=max(4, args.concurrency))
    client.sent = bundles if bundles is not None else []
    if urls is not None:

        def record(exchange: Exchange) -> None:
            if not exchange.write and exchange.status == 200:
                urls.append((exchange.method, exchange.url, None))

        client.on_exchange.append(record)
    store = StateStore(str(state))
    job = SyncJob(
        SyncSettings(
            fhir_base=server.base_url,
            as_of=AS_OF,
            concurrency=args.concurrency,
            fetch=FetchOptions(batch_size=args.batch_size),
            **settings,
        ),
        client,
        store,
        progress=False,
        out=io.StringIO(),
    )
    gc.collect()
    gc.freeze()  # what the benchmark itself holds (generated data, recordings) is not the job's
    started = time.perf_counter()
    summary = job.run()
    seconds = time.perf_counter() - started
    client.close()
    store.close()
    if summary.exit_code != 0:
        print("\n".join(summary.lines()), file=sys.stderr)
        raise SystemExit(f"{name}: the sync failed")
    return Measured(name, seconds, *counts(server), summary)


def bare_writes(server: FhirTestServer, bundles: list[dict[str, Any]]) -> Measured:
    """The recorded write bundles, one after the other (references rewritten as sent)."""
    server.reset_stats()
    session = requests.Session()
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    gc.collect()
    gc.freeze()
    started = time.perf_counter()
    for bundle in bundles:  # refused ones too (the sync's probing of transaction sizes)
        response = session.post(server.base_url, json=bundle, headers=headers, timeout=300)
        response.json()
    seconds = time.perf_counter() - started
    session.close()
    return Measured("bare writes (same bundles)", seconds, *counts(server))


def bare_reads(server: FhirTestServer, urls: list[tuple[str, str, Any]]) -> Measured:
    """The recorded read requests, one after the other, with nothing done with the answers."""
    server.reset_stats()
    session = requests.Session()
    session.headers["Accept"] = "application/fhir+json"
    gc.collect()
    gc.freeze()
    started = time.perf_counter()
    for method, url, _ in urls:
        response = session.request(method, url, timeout=300)
        response.raise_for_status()
        response.json()
    seconds = time.perf_counter() - started
    session.close()
    return Measured("bare reads (same requests)", seconds, *counts(server))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    server = start_fhir_server(args=["--export-polls", "1", "--export-retry-after", "1"])
    results: list[Measured] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            total = seed(server, args.patients, args.seed)
            print(
                f"{args.patients} patients, {total} resources on the test server "
                f"({total / args.patients:.0f} per patient); concurrency {args.concurrency}, "
                f"{args.batch_size} patients per search",
                file=sys.stderr,
            )
            urls: list[tuple[str, str, Any]] = []
            bundles: list[dict[str, Any]] = []
            full = sync(server, work / "auto.sqlite3", "full sync (defaults)", args, urls, bundles)
            results.append(full)
            results.append(sync(server, work / "auto.sqlite3", "re-run, nothing changed", args))
            seed(server, args.patients, args.seed)
            results.append(bare_reads(server, urls))
            results.append(bare_writes(server, bundles))
            seed(server, args.patients, args.seed)
            results.append(
                sync(server, work / "dry.sqlite3", "full sync, --dry-run", args, dry_run=True)
            )
            seed(server, args.patients, args.seed)
            results.append(
                sync(
                    server,
                    work / "tx.sqlite3",
                    "full sync, --write-mode transaction",
                    args,
                    write_mode="transaction",
                )
            )
            seed(server, args.patients, args.seed)
            results.append(
                sync(
                    server,
                    work / "bulk.sqlite3",
                    "full sync, --bulk",
                    args,
                    bulk=True,
                )
            )
    finally:
        server.stop()

    n = args.patients
    print(
        f"{'run':<38}{'seconds':>9}{'reads/pt':>10}{'writes/pt':>11}{'exports':>9}{'assessed':>10}"
    )
    for m in results:
        assessed = m.summary.assessed if m.summary else "-"
        print(
            f"{m.name:<38}{m.seconds:>9.2f}{m.reads / n:>10.3f}{m.writes / n:>11.3f}"
            f"{m.exports:>9}{assessed!s:>10}"
        )
    full, bare, writes, dry = results[0], results[2], results[3], results[4]
    ratio = full.seconds / bare.seconds
    goals = [
        (f"reads per patient {full.reads / n:.3f} < 0.5", full.reads / n < 0.5),
        (f"writes per patient {full.writes / n:.3f} < 0.1", full.writes / n < 0.1),
        (f"full sync / bare reads {ratio:.2f}x <= 1.5x", ratio <= 1.5),
    ]
    for text, ok in goals:
        print(f"{'met' if ok else 'NOT MET':>8}: {text}")
    print(
        f"    full sync / (bare reads + bare writes) {full.seconds / (bare.seconds + writes.seconds):.2f}x; "
        f"dry run / bare reads {dry.seconds / bare.seconds:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
