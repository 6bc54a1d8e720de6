"""How fast is ``fhir-cml sync`` against a FHIR server, next to merely reading the same data?

Starts the test FHIR server (tests/fhir_server, Medplum's engine), seeds it with N synthetic CML
patients (synthetic.py, shaped as EHRs send them: ~49 resources each), and measures in one run,
for each server behaviour asked for (``--modes``; tests/fhir_server/README.md):

  full sync       a first sync (every patient read, assessed, written and verified) with the
                  defaults (the writes in one batch per layer and group of patients)
  re-run          a second, incremental sync with nothing changed
  bare reads      the same read requests the full sync sent (its searches for the inputs, what
                  it reads of fhir-cml's own resources, and what it reads back), replayed by a
                  plain requests loop against the same data
  bare writes     the same write bundles, replayed the same way (what the server spends on the
                  writes - conditional creates, validation - whoever sends them)

and, against the server as it is: a ``--dry-run``, a full sync with ``--write-mode
transaction`` and one with ``--bulk``. The bare loops meet the same server behaviour as the
sync (against a rate-limited server they wait out its quota too).

HTTP requests per patient come from the server's own counters (/_admin/stats), reads and writes
apart. Next to the wall time, the CPU time each side spent (the server process, from /proc; this
process, all threads): on a shared machine the wall times vary with the neighbours' load, the
CPU times much less, and they say where the time goes. The goals: a full sync within 1.1 x the
bare reads and writes it needs, at most 0.25 read and 0.1 write requests per patient, and a
re-run with nothing changed under 5 % of a full run.

    python bench/sync_bench.py [--patients 1000] [--modes as-is,empty-bodies,batch-semantics,rate-limited]
                               [--rate-limit 10/1] [--concurrency 4] [--batch-size 50]
"""

from __future__ import annotations

import argparse
import gc
import io
import os
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

from fhir_cml.ehr.client import Exchange, FhirClient
from fhir_cml.ehr.fetch import FetchOptions
from fhir_cml.jobs import sync as sync_job
from fhir_cml.jobs.sync import Summary, SyncJob, SyncSettings
from fhir_cml.state import StateStore
from tests.support.fhir_server import FhirTestServer, start_fhir_server

AS_OF = __import__("datetime").date(2025, 6, 30)
WRITES = ("transaction", "batch", "create", "update", "patch", "delete")
EXPORT = ("export", "export-status", "export-file", "export-delete")
# The server behaviours a run can be measured against, and the sync settings that go with them.
MODES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "as-is": ({}, {}),
    "empty-bodies": ({"empty_minimal_bundles": True}, {}),
    "batch-semantics": ({"transactions_as_batches": True}, {"write_mode": "transaction"}),
    "rate-limited": ({"rate_limit": None}, {}),  # --rate-limit fills it in
}


@dataclass
class Measured:
    name: str
    seconds: float
    server_cpu: float
    client_cpu: float
    reads: int
    writes: int
    exports: int
    summary: Summary | None = None


class Clock:
    """Wall time, and the CPU time of the server process and of this process, from start()."""

    def __init__(self, server: FhirTestServer) -> None:
        self.pid = server.process.pid

    def start(self) -> None:
        self.wall, self.server, self.client = self._now()

    def stop(self) -> tuple[float, float, float]:
        wall, server, client = self._now()
        return wall - self.wall, server - self.server, client - self.client

    def _now(self) -> tuple[float, float, float]:
        return time.perf_counter(), server_cpu(self.pid), time.process_time()


def server_cpu(pid: int) -> float:
    """User and system CPU seconds of a process (Linux /proc; NaN elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    """Keeps the bodies of the batches and transactions it sends (the bytes sent, refused ones
    too), to replay them: no copy of the bundles is made while the sync is timed."""

    sent: list[bytes]

    def session(self) -> requests.Session:
        session = super().session()
        if self._record not in session.hooks["response"]:
            session.hooks["response"].append(self._record)
        return session

    def _record(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        request = response.request
        if request.method == "POST" and request.url == self.base_url:
            self.sent.append(request.body if isinstance(request.body, bytes) else b"")


def sync(
    server: FhirTestServer,
    state: Path,
    name: str,
    args: argparse.Namespace,
    urls: list[tuple[str, str, Any]] | None = None,
    bundles: list[bytes] | None = None,
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
    clock = Clock(server)
    gc.collect()
    gc.freeze()  # what the benchmark itself holds (generated data, recordings) is not the job's
    clock.start()
    summary = job.run()
    times = clock.stop()
    client.close()
    store.close()
    if summary.exit_code != 0:
        print("\n".join(summary.lines()), file=sys.stderr)
        raise SystemExit(f"{name}: the sync failed")
    return Measured(name, *times, *counts(server), summary)


def quota_sleep(response: requests.Response) -> bool:
    """Waits out a 429 as any client must (the RateLimit header's reset, else a second)."""
    if response.status_code != 429:
        return False
    reset = 1.0
    for item in response.headers.get("RateLimit", "").split(","):
        for part in item.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key == "t" and value.strip().isdigit():
                reset = float(value)
    time.sleep(reset)
    return True


def bare_writes(server: FhirTestServer, bundles: list[bytes]) -> Measured:
    """The recorded write bundles, one after the other (references rewritten as sent)."""
    server.reset_stats()
    session = requests.Session()
    headers = {
        "Content-Type": "application/fhir+json",
        "Accept": "application/fhir+json",
        "Prefer": "return=minimal",  # as the sync asks
    }
    clock = Clock(server)
    gc.collect()
    gc.freeze()
    clock.start()
    for body in bundles:  # refused ones too (the sync's probing of transaction sizes)
        response = session.post(server.base_url, data=body, headers=headers, timeout=300)
        while quota_sleep(response):
            response = session.post(server.base_url, data=body, headers=headers, timeout=300)
        if response.content:  # some servers answer return=minimal with nothing
            response.json()
    times = clock.stop()
    session.close()
    return Measured("bare writes (same bundles)", *times, *counts(server))


def bare_reads(server: FhirTestServer, urls: list[tuple[str, str, Any]]) -> Measured:
    """The recorded read requests, one after the other, with nothing done with the answers."""
    server.reset_stats()
    session = requests.Session()
    session.headers["Accept"] = "application/fhir+json"
    clock = Clock(server)
    gc.collect()
    gc.freeze()
    clock.start()
    for method, url, _ in urls:
        response = session.request(method, url, timeout=300)
        while quota_sleep(response):
            response = session.request(method, url, timeout=300)
        response.raise_for_status()
        response.json()
    times = clock.stop()
    session.close()
    return Measured("bare reads (same requests)", *times, *counts(server))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="keep Python's collector thresholds during the syncs (to measure what raising them "
        "does)",
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"server behaviours to measure against, comma-separated: {', '.join(MODES)}",
    )
    parser.add_argument(
        "--rate-limit", default="10/1", help="the rate-limited mode's quota: requests/seconds"
    )
    args = parser.parse_args(argv)
    if args.default_gc:
        sync_job.RUN_GC_THRESHOLD = gc.get_threshold()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown modes: {', '.join(unknown)}")

    load_before = os.getloadavg()
    server = start_fhir_server(args=["--export-polls", "1", "--export-retry-after", "1"])
    tables: list[tuple[str, list[Measured]]] = []
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
            for mode in modes:
                tables.append((mode, measure(server, work / mode, mode, args)))
    finally:
        server.stop()
    load_after = os.getloadavg()

    n = args.patients
    for mode, results in tables:
        behaviour = MODES[mode][0] or {}
        told = ", ".join(
            f"{k}={v if v is not None else args.rate_limit}" for k, v in behaviour.items()
        )
        print(f"\nserver: {mode}" + (f" ({told})" if told else ""))
        print(
            f"{'run':<38}{'seconds':>9}{'server CPU':>11}{'client CPU':>11}{'reads/pt':>10}"
            f"{'writes/pt':>11}{'exports':>9}{'assessed':>10}"
        )
        for m in results:
            assessed = m.summary.assessed if m.summary else "-"
            print(
                f"{m.name:<38}{m.seconds:>9.2f}{m.server_cpu:>11.2f}{m.client_cpu:>11.2f}"
                f"{m.reads / n:>10.3f}{m.writes / n:>11.3f}{m.exports:>9}{assessed!s:>10}"
            )
        full, rerun, bare, writes = results[0], results[1], results[2], results[3]
        ratio = full.seconds / (bare.seconds + writes.seconds)
        goals = [
            (f"reads per patient {full.reads / n:.3f} <= 0.25", full.reads / n <= 0.25),
            (f"writes per patient {full.writes / n:.3f} <= 0.1", full.writes / n <= 0.1),
            (f"full sync / (bare reads + bare writes) {ratio:.2f}x <= 1.1x", ratio <= 1.1),
            (
                f"re-run / full sync {rerun.seconds / full.seconds:.1%} < 5 %",
                rerun.seconds / full.seconds < 0.05,
            ),
        ]
        for text, ok in goals:
            print(f"{'met' if ok else 'NOT MET':>8}: {text}")
        quota = full.summary.quota_wait if full.summary else 0.0
        print(
            f"    server CPU: full sync {full.server_cpu:.2f}s, the same reads "
            f"{bare.server_cpu:.2f}s + the same writes {writes.server_cpu:.2f}s = "
            f"{bare.server_cpu + writes.server_cpu:.2f}s"
            + (f"; the sync waited {quota:.1f}s for the quota" if quota else "")
        )
    print(
        f"\nload average (1, 5, 15 min) before {', '.join(f'{x:.2f}' for x in load_before)}, "
        f"after {', '.join(f'{x:.2f}' for x in load_after)}; {os.cpu_count()} CPUs"
    )
    return 0


def measure(
    server: FhirTestServer, work: Path, mode: str, args: argparse.Namespace
) -> list[Measured]:
    """The runs of one server behaviour, each on freshly seeded data where it needs it."""
    behaviour, settings = MODES[mode]
    behaviour = {k: (v if v is not None else args.rate_limit) for k, v in behaviour.items()}
    work.mkdir(parents=True)

    def behave() -> None:
        seed(server, args.patients, args.seed)  # a reset: the behaviours are off again
        server.behave(**behaviour)
        server.reset_stats()

    results: list[Measured] = []
    urls: list[tuple[str, str, Any]] = []
    bundles: list[bytes] = []
    behave()
    results.append(
        sync(server, work / "state.sqlite3", "full sync", args, urls, bundles, **settings)
    )
    results.append(
        sync(server, work / "state.sqlite3", "re-run, nothing changed", args, **settings)
    )
    behave()
    results.append(bare_reads(server, urls))
    results.append(bare_writes(server, bundles))
    if mode != "as-is":
        return results
    behave()
    results.append(sync(server, work / "dry.sqlite3", "full sync, --dry-run", args, dry_run=True))
    behave()
    results.append(
        sync(
            server,
            work / "tx.sqlite3",
            "full sync, --write-mode transaction",
            args,
            write_mode="transaction",
        )
    )
    behave()
    results.append(sync(server, work / "bulk.sqlite3", "full sync, --bulk", args, bulk=True))
    return results


if __name__ == "__main__":
    sys.exit(main())
