"""Load on the service: the patient-view hook next to /healthz, in the same run.

Starts the real service (gunicorn on loopback, ``--workers`` sync workers, its own SQLite state
store), warms it up, then runs two wrk processes at the same time for ``--duration`` seconds:

  healthz   GET /healthz                                     (the trivial endpoint)
  hook      POST /cds-services/cml-monitoring with prefetch  (a typical example patient)

Before that, each endpoint is measured alone with one connection for ``--idle`` seconds: the
cost of one request with no queue in front of it.

Every hook request carries its own JWT: the EHR here signs a pool of tokens (ES384 by default,
distinct ``jti`` each) before the run, and wrk hands out one per request, so the replay cache
works as in production (one insert per request, shared by the workers). Reported: requests/s,
p50/p90/p99 latency, errors (non-2xx and socket errors), the RSS of the gunicorn master and
workers after the warm-up and at the end (sampled every 2 s in between).

    .venv/bin/python bench/service_bench.py [--duration 30] [--connections 4] [--workers 2]

wrk comes from Debian (``apt-get install wrk``); the script installs it when run as root.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.cds import SigningEhr, example_resources, patient_view  # noqa: E402
from tests.support.service import ServiceProcess, run_service  # noqa: E402

PUBLIC = "https://cml.example.org"
ISS = "https://ehr.example.org"
HOOK = "/cds-services/cml-monitoring"
LUA = ROOT / "bench" / "wrk_report.lua"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=30, help="seconds of load")
    parser.add_argument("--connections", type=int, default=4, help="per endpoint")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--tokens", type=int, default=40_000, help="size of the JWT pool")
    parser.add_argument("--idle", type=int, default=5, help="seconds per endpoint alone (0: skip)")
    parser.add_argument("--alg", default="ES384", choices=["ES384", "RS384"])
    parser.add_argument(
        "--patient", type=Path, default=ROOT / "examples" / "01-optimal-responder.json"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    binary = ensure_wrk()

    ehr = SigningEhr.make(ISS, alg=args.alg)
    resources = example_resources(json.loads(args.patient.read_text()))
    patient = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    body = json.dumps(patient_view(resources, patient))
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
        f"{time.perf_counter() - started:.1f} s; "
        f"request body {len(body):,} bytes ({patient})",
        file=sys.stderr,
    )
    env = {
        "FHIR_CML_PUBLIC_BASE_URL": PUBLIC,
        "FHIR_CML_STATE": str(work / "state.sqlite3"),
        "FHIR_CML_CDS_ISSUERS": json.dumps([{"iss": ISS, "jwks": ehr.jwks}]),
        "FHIR_CML_LOG_LEVEL": "WARNING",
    }
    with run_service(env, workers=args.workers) as service:
        for _ in range(200):  # warm-up: imports, caches, first allocations
            token = ehr.token(f"{PUBLIC}{HOOK}")
            response = requests.post(
                service.url + HOOK,
                data=body,
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
                timeout=10,
            )
            assert response.status_code == 200, response.text
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
    shutil.rmtree(work, ignore_errors=True)

    hook, trivial = results["hook"], results["healthz"]
    exhausted = hook["requests"] >= args.tokens
    report = {
        "duration_s": args.duration,
        "connections_per_endpoint": args.connections,
        "workers": args.workers,
        "alg": args.alg,
        "patient": patient,
        "endpoints": results,
        "alone": idle,
        "p50_ratio": hook["p50_us"] / trivial["p50_us"],
        "rss_kib_start": sum(before.values()),
        "rss_kib_end": sum(after.values()),
        "rss_kib_samples": samples,
        "token_pool_exhausted": exhausted,
    }
    print("| run | endpoint | requests/s | p50 ms | p90 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    rows = [("alone, 1 connection", n, r) for n, r in idle.items()]
    rows += [
        (f"together, {args.connections}+{args.connections} connections", n, r)
        for n, r in results.items()
    ]
    for run, name, r in rows:
        print(
            f"| {run} | {name} | {r['rps']:,.0f} | {r['p50_us'] / 1000:.2f} "
            f"| {r['p90_us'] / 1000:.2f} | {r['p99_us'] / 1000:.2f} | {r['error_count']} |"
        )
    print(
        f"\nhook p50 / healthz p50 = {report['p50_ratio']:.2f} (goal <= 3); "
        f"RSS {report['rss_kib_start'] / 1024:.1f} MiB after warm-up -> "
        f"{report['rss_kib_end'] / 1024:.1f} MiB at the end "
        f"(samples: min {min(samples) / 1024:.1f}, median {statistics.median(samples) / 1024:.1f}, "
        f"max {max(samples) / 1024:.1f} MiB); {len(pids)} processes"
    )
    if exhausted:
        print("the token pool ran out before the end: raise --tokens", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    failed = exhausted or any(r["error_count"] for r in [*results.values(), *idle.values()])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
