"""The ``fhir-cml`` command line.

Exit codes of ``fhir-cml assess``:
  0  every readable CML patient was assessed (data issues are reported, not failures)
  1  nothing could be assessed: no readable file, no FHIR resource, or no CML patient
  2  usage error (wrong option or value)
  3  internal error: an assessment raised, or fhir-cml built a resource that is not valid FHIR R4
Results go to stdout (or --output); messages go to stderr and name the file, entry or patient.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

import click

from fhir_cml import __version__
from fhir_cml.app.assessing import assess_loaded, load_rule_config, why_nothing
from fhir_cml.domain import Assessment, Guideline, RuleConfig
from fhir_cml.domain.model import Issue
from fhir_cml.ehr.client import FhirClient
from fhir_cml.ehr.terminology import site_terminology
from fhir_cml.errors import ConfigurationError, OperationOutcomeError
from fhir_cml.fhir.inbound import MappingOptions, load_paths
from fhir_cml.fhir.outbound import transaction_bundle, validate
from fhir_cml.jobs.survey_cli import survey
from fhir_cml.jobs.sync_cli import (
    concept_map_option,
    rules_config_option,
    sync,
    terminology_server_option,
)
from fhir_cml.reporting import LoadSummary, issue_message, to_contract, to_text

EXIT_OK: Final = 0
EXIT_NOTHING_READ: Final = 1
EXIT_INTERNAL: Final = 3
FORMATS: Final = ("text", "json", "bundle")


@click.group()
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
    help="text for people, json for programs, bundle for a FHIR transaction to POST.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the result to FILE instead of stdout.",
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
) -> None:
    """Assess every CML patient in INPUT (FHIR Bundles, resources, NDJSON, or directories)."""
    day = as_of.date() if as_of is not None else date.today()
    chosen = Guideline(guideline)
    rules = _rules(rules_config)
    now = datetime.now(UTC)
    remote = FhirClient(terminology_server) if terminology_server else None
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
    loaded = load_paths(list(inputs), options)
    for problem in problems[said:]:  # met while translating (the terminology server)
        _say(f"warning: {problem}")
    for issue in loaded.issues:
        _say(_issue_text(issue))
    if not loaded.records:
        _say(f"error: nothing to assess: {why_nothing(loaded)}")
        sys.exit(EXIT_NOTHING_READ)

    assessed = assess_loaded(loaded, day, chosen, rules)
    for patient, exc in assessed.failed:
        _say(f"internal error: {patient}: assessment failed: {exc!r}")
    assessments, failed = assessed.assessments, len(assessed.failed)
    summary = LoadSummary(
        files=loaded.files,
        resources=loaded.resources,
        unreadable=loaded.unreadable,
        skipped=loaded.skipped_patients,
    )
    try:
        text = _render(fmt, assessments, day, chosen, summary, loaded.issues, now)
    except OperationOutcomeError as exc:
        _say(f"internal error: fhir-cml built invalid FHIR (a bug): {exc.message}")
        click.echo(json.dumps(exc.outcome, indent=2), err=True)
        sys.exit(EXIT_INTERNAL)
    _write(text, output)
    data_issues = sum(len(a.issues) for a in assessments)
    _say(
        f"assessed {len(assessments)} patient{'s' if len(assessments) != 1 else ''} as of "
        f"{day.isoformat()} ({chosen.label}); {loaded.skipped_patients} without CML evidence "
        f"skipped; {data_issues} data issue{'s' if data_issues != 1 else ''} reported in the output"
        + (f"; written to {output}" if output else "")
    )
    sys.exit(EXIT_INTERNAL if failed else EXIT_OK)


def _render(
    fmt: str,
    assessments: Sequence[Assessment],
    day: date,
    guideline: Guideline,
    summary: LoadSummary,
    issues: Sequence[Issue],
    now: datetime,
) -> str:
    if fmt == "bundle":
        bundle = transaction_bundle(assessments, now)
        validate(bundle)  # every resource in it, against the FHIR R4 (R4B) models
        return _json(bundle)
    if fmt == "json":
        return _json(
            to_contract(
                assessments, as_of=day, guideline=guideline, load_summary=summary, issues=issues
            )
        )
    return to_text(assessments, as_of=day, guideline=guideline, load_summary=summary, issues=issues)


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


def _json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _write(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise click.FileError(str(output), hint=exc.strerror or str(exc)) from exc


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


main.add_command(sync)
main.add_command(survey)
