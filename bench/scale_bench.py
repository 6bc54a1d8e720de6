"""Registry scale: `fhir-cml assess` on Bulk Data exports of growing size, memory and speed.

For each size, writes a Bulk-shaped export (one NDJSON file per resource type, each patient's
resources spread over them, as servers deliver them; synthetic.py, written patient by patient,
never held in memory), then runs as separate processes, in turn:

  json.loads      every line of the export parsed by json.loads: the floor any reader pays
  orjson.loads    the same with orjson, the parser fhir-cml uses
  fhir-cml        `fhir-cml assess EXPORT --format json -o OUT` (the command a user runs)
  sync --bulk     with --sync: `fhir-cml sync --bulk --dry-run` against a server delivering
                  the same export (export_server.py: the export's files, empty searches)

each `--repeat` times (default 3; the three commands in turn, round after round, so that a
change in the machine's pace touches them alike), and prints, per command, the run of median
wall time: patients, input MB, wall seconds, patients/s, peak resident memory (the largest of
its runs: the sum over the process and its workers, sampled every 50 ms, and never below what
the kernel reports for the largest of them), the time relative to json.loads in the same run,
the CPU seconds (the process and its workers) and their ratio to json.loads's, and the load
average (1 minute, the higher of before and after the run). On a machine others use, the wall
times follow the load; the CPU ratio much less so (a loaded machine still slows every
instruction somewhat), but it says nothing of the workers sharing the cores.

    python bench/scale_bench.py [--sizes 1000,10000,100000] [--repeat N] [--dir DIR]
                                [--jobs N] [--sync] [--keep]

Exports are written under --dir (default: a directory in the system's temporary directory) and
removed afterwards unless --keep; an export of the right size found there is reused. 100,000
patients need about 8 GB for the export, as much again while fhir-cml partitions it, and 8 GB
for the JSON result (as large as its input); with --sync, 8 GB more for the sync's download of
the export.

The memory of forked workers is summed as each process reports it, so pages they still share
with the main process count twice: the figure is an upper bound.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from export_server import export_server
from synthetic import AS_OF, write_export

PYTHON = sys.executable
FHIR_CML = str(Path(PYTHON).with_name("fhir-cml"))

PARSE = """
import sys, glob, {module}
loads = {module}.loads
for name in sorted(glob.glob(sys.argv[1] + "/*.ndjson")):
    with open(name, "rb") as handle:
        for line in handle:
            loads(line)
"""


@dataclass
class Run:
    name: str
    seconds: float
    cpu: float  # user and system seconds of the process and its workers
    peak_mb: float
    load: tuple[float, float]  # load average (1 min) before and after
    runs: int = 1  # of which this is the median


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=None, help="fhir-cml's --jobs (its default)")
    parser.add_argument(
        "--sync", action="store_true", help="also `fhir-cml sync --bulk --dry-run` on each export"
    )
    parser.add_argument("--keep", action="store_true", help="keep the exports and results")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each command; the median is reported"
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    base = args.dir or Path(tempfile.mkdtemp(prefix="fhir-cml-scale-"))
    base.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(base).free / 1e9
    print(f"exports in {base} ({free:.0f} GB free); {os.cpu_count()} CPUs", flush=True)
    rows: list[tuple[int, float, Run]] = []
    # The command as installed: its modules compiled, as pip does (a checkout run with
    # PYTHONDONTWRITEBYTECODE would compile every module at each start, 0.35 s here).
    import fhir_cml

    subprocess.run(
        [PYTHON, "-m", "compileall", "-q", str(Path(fhir_cml.__file__).parent)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        for patients in sizes:
            export = base / f"export-{patients}"
            size = _export(export, patients, args.seed)
            _read_through(export)  # every run below then finds it in the page cache alike
            out = base / f"result-{patients}.json"
            command = [FHIR_CML, "assess", str(export), "--format", "json", "-o", str(out)]
            command += ["--as-of", AS_OF.isoformat()]
            if args.jobs:
                command += ["--jobs", str(args.jobs)]
            commands = (
                ("json.loads", [PYTHON, "-c", PARSE.format(module="json"), str(export)]),
                ("orjson.loads", [PYTHON, "-c", PARSE.format(module="orjson"), str(export)]),
                ("fhir-cml assess", command),
            )
            runs: dict[str, list[Run]] = {name: [] for name, _ in commands}
            for _ in range(max(1, args.repeat)):
                for name, argv in commands:
                    # Each run starts as the first: replacing the last run's output would cost
                    # the kernel its removal (50 ms at 1,000 patients, more as it grows).
                    out.unlink(missing_ok=True)
                    runs[name].append(_run(name, argv))
            rows += [(patients, size, _median(found)) for found in runs.values()]
            if args.sync:
                with export_server(export) as fhir_base:
                    sync = [FHIR_CML, "sync", "--bulk", "--dry-run", "--fhir-base", fhir_base]
                    sync += ["--state", str(base / "state.sqlite3"), "--full"]
                    sync += ["--as-of", AS_OF.isoformat()]
                    rows.append((patients, size, _run("fhir-cml sync --bulk", sync)))
            if not args.keep:
                shutil.rmtree(export, ignore_errors=True)
                out.unlink(missing_ok=True)
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    _table(rows)
    return 0


def _export(directory: Path, patients: int, seed: int) -> float:
    """The export's size in MB, written unless a complete one of that size is there."""
    if _patients_in(directory / "manifest.json") != patients:
        shutil.rmtree(directory, ignore_errors=True)
        started = time.perf_counter()
        resources, _ = write_export(directory, patients, seed)
        print(
            f"  {patients:>7,} patients: {resources:,} resources written in "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
    return sum(p.stat().st_size for p in directory.glob("*.ndjson")) / 1e6


def _read_through(directory: Path) -> None:
    """Reads the export once, so that the first run timed does not pay for the disk alone."""
    for path in sorted(directory.glob("*.ndjson")):
        with path.open("rb") as handle:
            while handle.read(1 << 24):
                pass


def _patients_in(manifest: Path) -> int | None:
    """The Patient count a complete export's manifest gives (it is written last)."""
    try:
        outputs = json.loads(manifest.read_text())["output"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return next((o.get("count") for o in outputs if o.get("type") == "Patient"), None)


def _median(runs: list[Run]) -> Run:
    """The run of median wall time, with the highest memory of them all."""
    middle = sorted(runs, key=lambda run: run.seconds)[(len(runs) - 1) // 2]
    peak = max(run.peak_mb for run in runs)
    return Run(middle.name, middle.seconds, middle.cpu, peak, middle.load, len(runs))


def _run(name: str, command: list[str]) -> Run:
    """Wall time and peak memory of one process and its workers."""
    load = os.getloadavg()[0]
    peak = [0]
    done = threading.Event()
    # Messages to a file, not a pipe: a pipe nobody reads until the end could fill and stall it.
    with tempfile.TemporaryFile() as messages:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=messages)
        sampler = threading.Thread(target=_sample, args=(process.pid, peak, done), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            messages.seek(0)
            errors = messages.read().decode(errors="replace")
            raise SystemExit(f"{name} failed ({process.returncode}):\n{errors[-2000:]}")
    peak_kb = max(peak[0], usage.ru_maxrss)  # ru_maxrss: the largest single process, in KB
    cpu = usage.ru_utime + usage.ru_stime  # its workers too, once it has waited for them
    run = Run(name, seconds, cpu, peak_kb / 1024, (load, os.getloadavg()[0]))
    print(
        f"  {run.name:<20} {run.seconds:8.1f} s {run.cpu:8.1f} s CPU {run.peak_mb:7.0f} MB "
        f"(load {run.load[0]:.1f} -> {run.load[1]:.1f})",
        flush=True,
    )
    return run


_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
_TREE_EVERY = 5  # samples between two looks for the process's workers (a walk of /proc)


def _sample(pid: int, peak: list[int], done: threading.Event) -> None:
    """Every 50 ms, the resident memory of the process and its workers: the workers are looked
    for every 250 ms only, as a walk of /proc costs 20 times a reading of their memory (the
    sampler would otherwise take 6 % of a core from the runs it measures)."""
    tree = [pid]
    for n in itertools.count():
        if done.wait(0.05):
            return
        if n % _TREE_EVERY == 0:
            tree = _tree(pid)
        peak[0] = max(peak[0], sum(_rss_kb(member) for member in tree))


def _tree(root: int) -> list[int]:
    """A process and its descendants, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                # pid (comm) state ppid ...: comm may hold spaces, so read after its ")"
                ppid = int(handle.read().rpartition(b")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * _PAGE_KB
    except (OSError, ValueError, IndexError):
        return 0  # ended meanwhile


def _table(rows: list[tuple[int, float, Run]]) -> None:
    floors = {patients: run for patients, _, run in rows if run.name == "json.loads"}
    print()
    print(
        "| patients | input MB | run | runs | wall s | patients/s | peak RSS MB | x json.loads "
        "| CPU s | CPU x json.loads | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for patients, size, run in rows:
        floor = floors[patients]
        print(
            f"| {patients:,} | {size:,.0f} | {run.name} | {run.runs} | {run.seconds:.1f} | "
            f"{patients / run.seconds:,.0f} | {run.peak_mb:,.0f} | "
            f"{run.seconds / floor.seconds:.2f} | {run.cpu:.1f} | {run.cpu / floor.cpu:.2f} | "
            f"{max(run.load):.1f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
