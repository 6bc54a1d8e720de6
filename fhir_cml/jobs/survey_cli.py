"""``fhir-cml survey``: what an EHR sends and how much of it fhir-cml reads, for onboarding.

Reads a FHIR server (``--fhir-base``, with the same authentication options as ``fhir-cml sync``)
or a Bulk Data export directory, and writes ``survey.html`` (self-contained), ``survey.json`` and
``conceptmap-draft.json`` into ``--output-dir``. Counts, codes and units only: no patient
identifier or value is written or printed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import click

from fhir_cml.ehr.client import FhirClient
from fhir_cml.ehr.survey import survey_resources
from fhir_cml.errors import ConfigurationError, FhirCmlError
from fhir_cml.fhir.inbound import MappingOptions
from fhir_cml.fhir.inbound.conceptmaps import concept_maps_from
from fhir_cml.fhir.inbound.loader import Reader
from fhir_cml.fhir.survey import survey as survey_of
from fhir_cml.jobs.options import concept_map_option
from fhir_cml.jobs.sync_cli import _authenticate, sync
from fhir_cml.reporting.survey import render_survey

EXIT_USAGE: Final = 2
EXIT_FAILED: Final = 1
# The authentication options are sync's own (the same names, help and environment variables).
AUTH_OPTIONS: Final = ("token", "client_id", "private_key", "key_id", "alg", "token_url", "scope")


@click.command(name="survey")
@click.argument(
    "export_dir", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option("--fhir-base", metavar="URL", help="The FHIR server to survey.")
@click.option(
    "--output-dir",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("fhir-cml-survey"),
    show_default=True,
    help="Where survey.html, survey.json and conceptmap-draft.json are written.",
)
@concept_map_option
@click.pass_context
def survey(
    ctx: click.Context,
    /,
    export_dir: Path | None,
    fhir_base: str | None,
    output_dir: Path,
    concept_maps: tuple[Path, ...],
    **auth: Any,
) -> None:
    """Survey EXPORT_DIR (a Bulk Data export) or --fhir-base: what is sent, what is read."""
    if (export_dir is None) == (fhir_base is None):
        click.echo("fhir-cml survey: give EXPORT_DIR or --fhir-base (one of them)", err=True)
        ctx.exit(EXIT_USAGE)
    terminology = concept_maps_from(concept_maps) if concept_maps else None
    for problem in terminology.problems if terminology else ():
        click.echo(f"fhir-cml survey: {problem}", err=True)
    try:
        if export_dir is not None:
            reader = Reader()
            resources = [entry.resource for entry in reader.read_path(export_dir)]
            problems = [issue.message for issue in reader.issues]
        else:
            assert fhir_base is not None
            with FhirClient(fhir_base) as client:
                client.auth = _authenticate(client, *(auth[name] for name in AUTH_OPTIONS))
                resources, problems = survey_resources(client)
    except ConfigurationError as err:
        click.echo(f"fhir-cml survey: {err}", err=True)
        ctx.exit(EXIT_USAGE)
    except FhirCmlError as err:
        click.echo(f"fhir-cml survey: {err}", err=True)
        ctx.exit(EXIT_FAILED)
    for problem in problems:
        click.echo(f"fhir-cml survey: {problem}", err=True)
    data = survey_of(resources, MappingOptions(now=datetime.now(UTC), terminology=terminology))
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "survey.json").write_text(_json(data), "utf-8")
    (output_dir / "conceptmap-draft.json").write_text(_json(data["draftConceptMap"]), "utf-8")
    (output_dir / "survey.html").write_text(render_survey(data), "utf-8")
    click.echo(
        f"fhir-cml survey: {data['patients']['cml']} CML patients, {data['resources']} resources, "
        f"{data['read']} read; written to {output_dir}/survey.html, survey.json and "
        "conceptmap-draft.json"
    )


def _json(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# sync's authentication options, shared rather than repeated.
survey.params.extend(p for p in sync.params if p.name in AUTH_OPTIONS)
