"""Load on the service: the patient-view hook next to /healthz, in the same run; and the hook
without prefetch against a slow and a hanging EHR.

Starts the test FHIR server (the EHR) with a synthetic CML patient of 40+ results, builds the
patient-view prefetch by running the service's templates against it (what an EHR sends: Bundles
as its FHIR engine renders them, about 38 kB), then the real service (gunicorn on loopback with
``fhir_cml.web.gunicorn_config``, ``--workers`` sync workers, its own SQLite state store).

Part 1, after a warm-up: each endpoint alone with one connection for ``--idle`` seconds, then two
wrk processes at the same time for ``--duration`` seconds:

  healthz   GET /healthz                                        (the trivial endpoint)
  hook      POST /cds-services/cml-monitoring with the prefetch (the realistic call)

Every hook request carries its own JWT: the EHR here signs a pool of tokens (ES384 by default,
distinct ``jti`` each) before the run, and wrk hands out one per request, so the replay cache
works as in production (one insert per request, shared by the workers). Reported: requests/s,
p50/p90/p99 latency, errors (non-2xx and socket errors), the RSS of the gunicorn master and
workers after the warm-up and at the end (sampled every 2 s in between).

Part 2: the hook without prefetch (``fhirServer`` and ``fhirAuthorization``; the service reads
the eight templates itself), ``--slow-connections`` at a time for ``--slow-duration`` seconds,
against the EHR made slow (``--slow-ms`` per request: the reads run at once, so the call is done
well within the deadline) and then hanging (``--hang-ms``: the call is answered at its deadline
with a card naming what is missing), while /healthz is probed every 0.1 s. Reported: the hook's
latency against ``FHIR_CML_CDS_DEADLINE`` (``--deadline``), what the answers said, and the
share of probes answered.

    .venv/bin/python bench/service_bench.py [--duration 30] [--connections 4] [--workers 2]

wrk comes from Debian (``apt-get install wrk``); the script installs it when run as root. The
test FHIR server needs its Node packages (``./scripts/test`` installs them).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.synthetic import patient_resources  # noqa: E402
from tests.support.cds import (  # noqa: E402
    SigningEhr,
    fhir_authorization,
    hook_request,
    server_prefetch,
)
from tests.support.fhir_server import FhirTestServer, start_fhir_server  # noqa: E402
from tests.support.service import ServiceProcess, run_service  # noqa: E402

PUBLIC = "https://cml.example.org"
ISS = "https://ehr.example.org"
HOOK = "/cds-services/cml-monitoring"
LUA = ROOT / "bench" / "wrk_report.lua"
GUNICORN_CONFIG = ("-c", "python:fhir_cml.web.gunicorn_config")


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk (apt-get install wrk)", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False)
        if not shutil.which("wrk"):
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
        found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is needed: apt-get install wrk")
    return found


def rss_kib(pids: list[int]) -> dict[int, int]:
    out = {}
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[pid] = int(line.split()[1])
        except FileNotFoundError:
            continue
    return out


def processes(service: ServiceProcess) -> list[int]:
    return [service.process.pid, *service.worker_pids()]


def wrk(
    binary: str, url: str, duration: int, connections: int, *args: str
) -> subprocess.Popen[str]:
    command = [
        binary,
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
        "--",
        *args,
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def summary(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = process.communicate()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        sys.exit(f"wrk failed ({process.returncode}):\n{out}\n{err}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["error_count"] = sum(result["errors"].values())
    return result


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def slow_ehr_run(
    url: str, ehr: SigningEhr, body: dict[str, Any], duration: float, connections: int
) -> dict[str, Any]:
    """Hook calls without prefetch from ``connections`` threads for ``duration`` seconds, and
    /healthz probed every 0.1 s meanwhile."""
    stop = time.monotonic() + duration
    calls: list[tuple[float, str]] = []
    probes: list[tuple[float, bool]] = []
    lock = threading.Lock()

    def caller() -> None:
        session = requests.Session()
        while time.monotonic() < stop:
            token = ehr.token(f"{PUBLIC}{HOOK}")
            started = time.perf_counter()
            try:
                response = session.post(
                    url + HOOK,
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=30,
                )
                kind = _answer_kind(response)
            except requests.RequestException:
                kind = "error"
            with lock:
                calls.append((time.perf_counter() - started, kind))

    def prober() -> None:
        session = requests.Session()
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                ok = session.get(url + "/healthz", timeout=5).status_code == 200
            except requests.RequestException:
                ok = False
            probes.append((time.perf_counter() - started, ok))
            time.sleep(max(0.0, 0.1 - (time.perf_counter() - started)))

    threads = [threading.Thread(target=caller) for _ in range(connections)]
    threads.append(threading.Thread(target=prober))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = [c[0] for c in calls]
    kinds: dict[str, int] = {}
    for _, kind in calls:
        kinds[kind] = kinds.get(kind, 0) + 1
    answered = [p[0] for p in probes if p[1]]
    return {
        "calls": len(calls),
        "p50_s": statistics.median(seconds) if seconds else float("nan"),
        "p99_s": percentile(seconds, 0.99),
        "max_s": max(seconds) if seconds else float("nan"),
        "answers": kinds,
        "probes": len(probes),
        "probes_answered": len(answered),
        "probe_p50_s": statistics.median(answered) if answered else float("nan"),
        "probe_p99_s": percentile(answered, 0.99),
    }


def _answer_kind(response: requests.Response) -> str:
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    cards = response.json().get("cards") or []
    if not cards:
        return "no card"
    summary = str(cards[0].get("summary", ""))
    if summary.startswith("CML: no reading") or "could not check" in summary:
        return "says what is missing"
    return "reading"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=30, help="seconds of load")
    parser.add_argument("--connections", type=int, default=4, help="per endpoint")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--tokens", type=int, default=40_000, help="size of the JWT pool")
    parser.add_argument("--idle", type=int, default=5, help="seconds per endpoint alone (0: skip)")
    parser.add_argument("--alg", default="ES384", choices=["ES384", "RS384"])
    parser.add_argument("--seed", type=int, default=0, help="the synthetic patient (0: 46 results)")
    parser.add_argument("--deadline", type=float, default=3.0, help="FHIR_CML_CDS_DEADLINE, s")
    parser.add_argument("--slow-ms", type=int, default=1000, help="the slow EHR's delay")
    parser.add_argument("--hang-ms", type=int, default=60_000, help="the hanging EHR's delay")
    parser.add_argument("--slow-duration", type=int, default=20, help="seconds per EHR (0: skip)")
    parser.add_argument("--slow-connections", type=int, help="hook calls at a time (workers)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    binary = ensure_wrk()

    ehr = SigningEhr.make(ISS, alg=args.alg)
    fhir = start_fhir_server()
    try:
        report = run(args, binary, ehr, fhir)
    finally:
        fhir.stop()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    sys.exit(1 if report["failed"] else 0)


def run(
    args: argparse.Namespace, binary: str, ehr: SigningEhr, fhir: FhirTestServer
) -> dict[str, Any]:
    resources = patient_resources(args.seed, random.Random(args.seed), "minimal")
    fhir.load(resources)
    patient = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    results_count = sum(1 for r in resources if r["resourceType"] == "Observation")
    body = json.dumps(
        hook_request(
            "patient-view", patient, server_prefetch(fhir.base_url, "cml-monitoring", patient)
        )
    )
    work = Path(tempfile.mkdtemp(prefix="fhir-cml-bench-"))
    (work / "body.json").write_text(body)
    started = time.perf_counter()
    idle_tokens = 1000 * args.idle
    for name, count in (("tokens.txt", args.tokens), ("idle-tokens.txt", idle_tokens)):
        with (work / name).open("w") as out:
            for _ in range(count):
                out.write(ehr.token(f"{PUBLIC}{HOOK}", lifetime=3600) + "\n")
    print(
        f"signed {args.tokens + idle_tokens} {args.alg} tokens in "
        f"{time.perf_counter() - started:.1f} s; request body {len(body):,} bytes "
        f"({patient}: {results_count} results, prefetch rendered by the test FHIR server)",
        file=sys.stderr,
    )
    env = {
        "FHIR_CML_PUBLIC_BASE_URL": PUBLIC,
        "FHIR_CML_STATE": str(work / "state.sqlite3"),
        "FHIR_CML_CDS_ISSUERS": json.dumps([{"iss": ISS, "jwks": ehr.jwks}]),
        "FHIR_CML_CDS_FHIR_SERVERS": fhir.base_url,
        "FHIR_CML_CDS_DEADLINE": str(args.deadline),
        "FHIR_CML_LOG_LEVEL": "WARNING",
    }
    load_before = os.getloadavg()
    with run_service(env, workers=args.workers, extra=GUNICORN_CONFIG) as service:
        for _ in range(200):  # warm-up: imports, caches, first allocations
            token = ehr.token(f"{PUBLIC}{HOOK}")
            response = requests.post(
                service.url + HOOK,
                data=body,
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
                timeout=10,
            )
            assert response.status_code == 200, response.text
            assert _answer_kind(response) == "reading", response.text
            requests.get(service.url + "/healthz", timeout=10)
        idle: dict[str, Any] = {}
        if args.idle:
            idle["healthz"] = summary(wrk(binary, service.url + "/healthz", args.idle, 1, "GET"))
            idle["hook"] = summary(
                wrk(
                    binary,
                    service.url + HOOK,
                    args.idle,
                    1,
                    "POST",
                    str(work / "body.json"),
                    str(work / "idle-tokens.txt"),
                )
            )
        pids = processes(service)
        before = rss_kib(pids)
        runs = {
            "healthz": wrk(
                binary, service.url + "/healthz", args.duration, args.connections, "GET"
            ),
            "hook": wrk(
                binary,
                service.url + HOOK,
                args.duration,
                args.connections,
                "POST",
                str(work / "body.json"),
                str(work / "tokens.txt"),
            ),
        }
        samples = []
        while any(p.poll() is None for p in runs.values()):
            samples.append(sum(rss_kib(pids).values()))
            time.sleep(2)
        results = {name: summary(p) for name, p in runs.items()}
        after = rss_kib(pids)
        load_during = os.getloadavg()
        slow: dict[str, Any] = {}
        if args.slow_duration:
            without = hook_request("patient-view", patient)
            without["fhirServer"] = fhir.base_url
            without["fhirAuthorization"] = fhir_authorization("bench", "patient/*.rs")
            for label, delay in (("slow", args.slow_ms), ("hanging", args.hang_ms)):
                fhir.delay(delay)
                slow[label] = slow_ehr_run(
                    service.url,
                    ehr,
                    without,
                    args.slow_duration,
                    args.slow_connections or args.workers,
                )
                slow[label]["delay_ms"] = delay
                fhir.reset()  # no delay; requests still waiting are dropped
                fhir.load(resources)
    shutil.rmtree(work, ignore_errors=True)

    hook, trivial = results["hook"], results["healthz"]
    exhausted = hook["requests"] >= args.tokens
    report: dict[str, Any] = {
        "duration_s": args.duration,
        "connections_per_endpoint": args.connections,
        "workers": args.workers,
        "alg": args.alg,
        "patient": patient,
        "results": results_count,
        "body_bytes": len(body),
        "load_average_before": load_before,
        "load_average_after_part_1": load_during,
        "endpoints": results,
        "alone": idle,
        "p50_ratio": hook["p50_us"] / trivial["p50_us"],
        "rss_kib_start": sum(before.values()),
        "rss_kib_end": sum(after.values()),
        "rss_kib_samples": samples,
        "token_pool_exhausted": exhausted,
        "deadline_s": args.deadline,
        "without_prefetch": slow,
    }
    print(
        f"machine load (1/5/15 min) before: {load_before[0]:.2f} {load_before[1]:.2f} "
        f"{load_before[2]:.2f}; after part 1: {load_during[0]:.2f} {load_during[1]:.2f} "
        f"{load_during[2]:.2f} ({os.cpu_count()} CPUs)\n"
    )
    print("| run | endpoint | requests/s | p50 ms | p90 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    rows = [("alone, 1 connection", n, r) for n, r in idle.items()]
    rows += [
        (f"together, {args.connections}+{args.connections} connections", n, r)
        for n, r in results.items()
    ]
    for run_label, name, r in rows:
        print(
            f"| {run_label} | {name} | {r['rps']:,.0f} | {r['p50_us'] / 1000:.2f} "
            f"| {r['p90_us'] / 1000:.2f} | {r['p99_us'] / 1000:.2f} | {r['error_count']} |"
        )
    print(
        f"\nhook p50 / healthz p50 = {report['p50_ratio']:.2f} (goal <= 3); "
        f"RSS {report['rss_kib_start'] / 1024:.1f} MiB after warm-up -> "
        f"{report['rss_kib_end'] / 1024:.1f} MiB at the end "
        f"(samples: min {min(samples) / 1024:.1f}, median {statistics.median(samples) / 1024:.1f}, "
        f"max {max(samples) / 1024:.1f} MiB); {len(pids)} processes"
    )
    over = 0
    if slow:
        print(
            f"\nWithout prefetch (the service reads 8 templates; deadline {args.deadline:g} s), "
            f"{args.slow_connections or args.workers} calls at a time, /healthz probed every 0.1 s:"
        )
        print(
            "\n| EHR | calls | p50 s | p99 s | max s | answers | /healthz answered | probe p99 s |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for label, r in slow.items():
            answers = ", ".join(f"{k} {v}" for k, v in sorted(r["answers"].items()))
            print(
                f"| {label} ({r['delay_ms']} ms a request) | {r['calls']} | {r['p50_s']:.2f} "
                f"| {r['p99_s']:.2f} | {r['max_s']:.2f} | {answers} "
                f"| {r['probes_answered']}/{r['probes']} | {r['probe_p99_s']:.2f} |"
            )
            over += sum(
                v for k, v in r["answers"].items() if k not in ("reading", "says what is missing")
            )
    if exhausted:
        print("the token pool ran out before the end: raise --tokens", file=sys.stderr)
    report["failed"] = bool(
        exhausted or over or any(r["error_count"] for r in [*results.values(), *idle.values()])
    )
    return report


if __name__ == "__main__":
    main()
