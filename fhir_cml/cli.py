"""The ``fhir-cml`` command line.

Exit codes of ``fhir-cml assess``:
  0  every readable CML patient was assessed (data issues are reported, not failures)
  1  nothing could be assessed: no readable file, no FHIR resource, or no CML patient
  2  usage error (wrong option or value)
  3  internal error: an assessment raised, or fhir-cml built a resource that is not valid FHIR R4
Results go to stdout (or --output, put in place only once complete), patient by patient as they
are assessed; messages go to stderr and name the file, entry or patient.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

import click
import orjson

from fhir_cml import __version__
from fhir_cml.app.assessing import Assessed, assess_loaded, load_rule_config, why_nothing
from fhir_cml.domain import Assessment, Guideline, RuleConfig
from fhir_cml.domain.model import Issue
from fhir_cml.ehr.terminology import site_terminology
from fhir_cml.errors import ConfigurationError, OperationOutcomeError
from fhir_cml.fhir.inbound import LoadResult, MappingOptions, map_paths
from fhir_cml.jobs.options import concept_map_option, rules_config_option, terminology_server_option
from fhir_cml.jobs.stopping import sigterm_as_interrupt
from fhir_cml.reporting import LoadSummary, issue_message
from fhir_cml.reporting.stream import (
    ContractReport,
    JsonDocument,
    NdjsonLines,
    Sink,
    TextReport,
    encode,
)

if TYPE_CHECKING:
    from tqdm import tqdm

EXIT_OK: Final = 0
EXIT_NOTHING_READ: Final = 1
EXIT_INTERNAL: Final = 3
FORMATS: Final = ("text", "json", "bundle", "ndjson")
MAX_DEFAULT_JOBS: Final = 4  # a worker holds a partition, about 200 MB


class _Commands(click.Group):
    """Imports ``sync`` and ``survey`` (a database, HTTP and OAuth libraries: most of the
    start-up time) only when one of them is run or listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), "survey", "sync"})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "sync":
            from fhir_cml.jobs.sync_cli import sync

            return sync
        if cmd_name == "survey":
            from fhir_cml.jobs.survey_cli import survey

            return survey
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands)
@click.version_option(__version__, prog_name="fhir-cml")
def main() -> None:
    """CML response readings and care-plan suggestions from FHIR R4 data."""


@main.command(name="assess")
@click.argument(
    "inputs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="INPUT..."
)
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    metavar="YYYY-MM-DD",
    help="Date of the assessment (YYYY-MM-DD); results dated later are left out. Default: today.",
)
@click.option(
    "--guideline",
    type=click.Choice([g.value for g in Guideline]),
    default=Guideline.ELN2020.value,
    show_default=True,
    help="Milestones to read responses against.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text for people, json for programs, bundle for a FHIR transaction to POST, ndjson for "
    "the same as one transaction Bundle per patient and line (POST each line).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the result to FILE instead of stdout (put in place once complete).",
)
@click.option(
    "--conversion-factor",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="The laboratory's IS conversion factor for non-IS BCR::ABL1 results that carry none.",
)
@concept_map_option
@terminology_server_option
@rules_config_option
@click.option(
    "--max-file-size",
    type=click.FloatRange(min=0, min_open=True),
    default=64.0,
    show_default=True,
    help="Largest JSON file (or NDJSON line) to read, in MB.",
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Where input over 64 MB is partitioned by patient while it is read (needs about its "
    "size free). Default: the system's temporary directory.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="A progress bar on stderr. Default: when stderr is a terminal.",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help=f"Worker processes for input over 64 MB (each holds about 200 MB). Default: the CPUs "
    f"available, at most {MAX_DEFAULT_JOBS}.",
)
def assess_command(
    inputs: tuple[Path, ...],
    as_of: datetime | None,
    guideline: str,
    fmt: str,
    output: Path | None,
    conversion_factor: float | None,
    concept_maps: tuple[Path, ...],
    terminology_server: str | None,
    rules_config: Path | None,
    max_file_size: float,
    work_dir: Path | None,
    progress: bool | None,
    jobs: int | None,
) -> None:
    """Assess every CML patient in INPUT (FHIR Bundles, resources, NDJSON, or directories).

    Input of any size is read in bounded memory, and the result is written patient by patient.
    """
    day = as_of.date() if as_of is not None else date.today()
    chosen = Guideline(guideline)
    rules = _rules(rules_config)
    now = datetime.now(UTC)
    remote = None
    if terminology_server:
        from fhir_cml.ehr.client import FhirClient  # HTTP libraries: imported only when used

        remote = FhirClient(terminology_server)
    terminology, problems = site_terminology(list(concept_maps), remote)
    for problem in problems:
        _say(f"warning: {problem}")
    said = len(problems)
    options = MappingOptions(
        now=now,
        conversion_factor=conversion_factor,
        max_json_bytes=int(max_file_size * 1024 * 1024),
        terminology=terminology,
    )
    bars = _Bars(sys.stderr.isatty() if progress is None else progress)
    sink = _sink(output)
    report = _report(fmt, sink, day, chosen, now)

    spool: Path | None = None  # what a worker lays out goes to a file here, then to the output

    def work(part: LoadResult) -> _Done:
        """A part's patients assessed and rendered (in a worker process for large input)."""
        assert spool is not None
        return _Done.of(part, assess_loaded(part, day, chosen, rules), report, spool)

    totals = LoadResult([], [])
    found = failed = data_issues = 0
    parts = map_paths(
        list(inputs),
        options,
        work,
        # A terminology server is asked from this process, which reports what it answers.
        jobs=1 if remote is not None else jobs or _default_jobs(),
        work_dir=work_dir,
        progress=bars,
    )
    try:
        spool = Path(tempfile.mkdtemp(prefix="fhir-cml-output-", dir=work_dir))
        # Stopped by SIGTERM or Ctrl-C: the workers ended, the partitions and the output's
        # partial file removed.
        with sigterm_as_interrupt(), closing(parts):
            for part, done in parts:
                for problem in problems[said:]:  # met while translating (the terminology server)
                    bars.say(f"warning: {problem}")
                said = len(problems)
                for issue in part.issues:
                    bars.say(_issue_text(issue))
                totals.add(part)
                found += done.patients
                for patient, error in done.failed:
                    bars.say(f"internal error: {patient}: assessment failed: {error}")
                failed += len(done.failed)
                if done.invalid is not None:
                    raise OperationOutcomeError(
                        done.invalid[0], outcome=done.invalid[1], status=500
                    )
                for item in done.rendered:
                    report.add(item)
                if done.spooled is not None and isinstance(report, _Spooling):
                    pieces, count = Path(done.spooled[0]), done.spooled[1]
                    report.add_pieces(pieces, count)
                    pieces.unlink()
                data_issues += done.data_issues
                bars.assessed(done.patients)
    except OperationOutcomeError as exc:
        sink.abort()
        bars.close()
        _say(f"internal error: fhir-cml built invalid FHIR (a bug): {exc.message}")
        click.echo(json.dumps(exc.outcome, indent=2), err=True)
        sys.exit(EXIT_INTERNAL)
    except OSError as exc:  # the work directory full or unwritable, the output unwritable
        sink.abort()
        bars.close()
        where = f" ({exc.filename})" if exc.filename else ""
        _say(f"error: {exc.strerror or exc}{where}")
        sys.exit(EXIT_NOTHING_READ)
    except BaseException:
        sink.abort()
        bars.close()
        raise
    finally:
        if spool is not None:
            shutil.rmtree(spool, ignore_errors=True)
    bars.close()
    if not found:
        sink.abort()
        _say(f"error: nothing to assess: {why_nothing(totals)}")
        sys.exit(EXIT_NOTHING_READ)
    summary = LoadSummary(
        files=totals.files,
        resources=totals.resources,
        unreadable=totals.unreadable,
        skipped=totals.skipped_patients,
    )
    report.finish(summary, totals.issues)
    written = found - failed
    _say(
        f"assessed {written} patient{'s' if written != 1 else ''} as of "
        f"{day.isoformat()} ({chosen.label}); {totals.skipped_patients} without CML evidence "
        f"skipped; {data_issues} data issue{'s' if data_issues != 1 else ''} "
        "reported in the output" + (f"; written to {output}" if output else "")
    )
    sys.exit(EXIT_INTERNAL if failed else EXIT_OK)


@dataclass
class _Done:
    """What became of a part's patients, as it comes back from a worker (it pickles)."""

    patients: int
    rendered: list[Any] = field(default_factory=list)
    data_issues: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    invalid: tuple[str, dict[str, Any] | None] | None = None  # a resource built invalid

    spooled: tuple[str, int] | None = None  # a file of laid-out items, and how many

    @classmethod
    def of(cls, part: LoadResult, assessed: Assessed, report: _Report, spool: Path) -> _Done:
        """Rendered, and laid out for the output where the report can (into a file under
        ``spool``: written once, copied by the kernel, rather than sent between processes)."""
        done = cls(len(part.records), failed=[(p, repr(exc)) for p, exc in assessed.failed])
        if not isinstance(report, _Spooling):  # laid out in the main process (the text)
            for assessment in assessed.assessments:
                done.rendered.append(report.render(assessment))
                done.data_issues += len(assessment.issues)
            return done
        handle, name = tempfile.mkstemp(dir=spool, suffix=".part")
        items = 0
        with os.fdopen(handle, "wb") as out:
            for assessment in assessed.assessments:
                try:
                    piece, count = report.piece(report.render(assessment))
                except OperationOutcomeError as exc:
                    done.invalid = (exc.message, exc.outcome)
                    break
                out.write(piece)  # written at once: its memory serves the next
                items += count
                done.data_issues += len(assessment.issues)
        if items:
            done.spooled = (name, items)
        else:
            os.unlink(name)
        return done


class _Report(Protocol):
    def render(self, assessment: Assessment) -> Any: ...

    def add(self, rendered: Any) -> None: ...

    def finish(self, summary: LoadSummary, issues: Sequence[Issue]) -> None: ...


@runtime_checkable
class _Spooling(_Report, Protocol):
    """A report whose items a worker can lay out apart from the others."""

    def piece(self, rendered: Any) -> tuple[bytes, int]:
        """What ``rendered`` adds to the output, and how many items."""
        ...

    def add_pieces(self, pieces: Path, count: int) -> None: ...


class _Transactions:
    """Three conditional creates per patient, each patient's checked against the FHIR models
    before it is written: in one transaction Bundle, or one Bundle per line (``ndjson``)."""

    def __init__(self, sink: Sink, now: datetime, ndjson: bool) -> None:
        # The FHIR resources are built only here: `assess` in the other formats starts without
        # their modules (imported once, not for each patient).
        from fhir_cml.fhir.outbound import transaction_bundle, validate
        from fhir_cml.fhir.outbound.provenance import instant

        self.build, self.validate = transaction_bundle, validate
        self.now = now
        self.lines = NdjsonLines(sink) if ndjson else None
        self.bundle = JsonDocument(
            sink,
            {"resourceType": "Bundle", "type": "transaction", "timestamp": instant(now)},
            "entry",
        )

    def render(self, assessment: Assessment) -> list[bytes]:
        bundle = self.build([assessment], self.now)
        self.validate(bundle)  # every resource in it, against the FHIR R4 (R4B) models
        if self.lines is not None:
            return [orjson.dumps(bundle)]
        return [encode(entry) for entry in bundle["entry"]]

    def add(self, rendered: list[bytes]) -> None:
        for item in rendered:
            if self.lines is not None:
                self.lines.add_encoded(item)
            else:
                self.bundle.add_encoded(item)

    def piece(self, rendered: list[bytes]) -> tuple[bytes, int]:
        lay_out = self.lines.piece if self.lines is not None else JsonDocument.piece
        return b"".join(lay_out(item) for item in rendered), len(rendered)

    def add_pieces(self, pieces: Path, count: int) -> None:
        if self.lines is not None:
            self.lines.add_pieces(pieces, count)
        else:
            self.bundle.add_pieces(pieces, count)

    def finish(self, summary: LoadSummary, issues: Sequence[Issue]) -> None:
        if self.lines is not None:
            self.lines.finish()
        else:
            self.bundle.finish({})


def _report(fmt: str, sink: Sink, day: date, guideline: Guideline, now: datetime) -> _Report:
    if fmt in ("bundle", "ndjson"):
        return _Transactions(sink, now, ndjson=fmt == "ndjson")
    if fmt == "json":
        return ContractReport(sink, as_of=day, guideline=guideline)
    return TextReport(sink, as_of=day, guideline=guideline)


def _default_jobs() -> int:
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(available, MAX_DEFAULT_JOBS))


def _sink(output: Path | None) -> Sink:
    if output is None:
        return Sink(stream=sys.stdout.buffer)
    try:
        return Sink(output)
    except OSError as exc:
        raise click.FileError(str(output), hint=exc.strerror or str(exc)) from exc


class _Bars:
    """Progress on stderr for long inputs: partitioning (MB), then patients, with rate and ETA.

    Quiet when off (stderr not a terminal, or --no-progress); input read in one part (up to
    64 MB, a few seconds) shows none.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: tqdm[Any] | None = None

    def partitioning(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm  # only where a bar is drawn

            self.bar = tqdm(
                total=total,
                desc="partitioning",
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
            )
        self.bar.update(done - self.bar.n)

    def partitioned(self, patients: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        self.close()
        self.bar = tqdm(total=patients, desc="assessing", unit=" patients", file=sys.stderr)

    def assessed(self, patients: int) -> None:
        if self.bar is not None:
            self.bar.update(patients)

    def say(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(f"fhir-cml: {message}", file=sys.stderr)
        else:
            _say(message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _rules(path: Path | None) -> RuleConfig:
    """The site's rule settings; a file that cannot be used is a usage error (exit 2)."""
    try:
        return load_rule_config(path)
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None


def _issue_text(issue: Issue) -> str:
    message = issue_message(issue)
    where = f"{issue.resource}: " if issue.resource and issue.resource not in message else ""
    return f"{issue.severity.value}: {where}{message}"


def _say(message: str) -> None:
    click.echo(f"fhir-cml: {message}", err=True)


@main.command(name="serve")
@click.option(
    "--demo",
    is_flag=True,
    help="Serve the SMART app over the bundled example patients, without an EHR (no settings "
    "needed).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
def serve_command(demo: bool, host: str, port: int) -> None:
    """Serve the web face (FHIR operation, CDS Hooks, SMART app) on a development server.

    Settings come from FHIR_CML_* as for gunicorn; --demo needs none. Production runs
    gunicorn 'fhir_cml:create_app()'.
    """
    from fhir_cml.errors import ConfigurationError, StateError
    from fhir_cml.web.smart.serve import make

    try:
        server = make(demo=demo, host=host, port=port)
    except (ConfigurationError, StateError) as err:
        _say(f"error: {err}")
        sys.exit(2)
    except OSError as err:
        _say(f"error: cannot listen on {host}:{port}: {err.strerror or err}")
        sys.exit(2)
    click.echo(f"fhir-cml: {'demo' if demo else 'serving'} at {server.url} (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
