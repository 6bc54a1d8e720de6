"""Command-line options shared by several commands, in a module light enough for all of them."""

from __future__ import annotations

from pathlib import Path

import click

# The site's ConceptMaps, an option of assess, sync and survey alike.
concept_map_option = click.option(
    "--concept-map",
    "concept_maps",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="The site's ConceptMap (JSON file, Bundle or directory): local codes and units to the "
    "ones fhir-cml reads. Repeatable.",
)
rules_config_option = click.option(
    "--rules-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The site's rule settings: a JSON object of the values it changes (e.g. its "
    "laboratory's trough conditions, monitoring intervals); see docs/rules.md.",
)
terminology_server_option = click.option(
    "--terminology-server",
    metavar="URL",
    help="Translate local codes and units with ConceptMap/$translate on this server (the FHIR "
    "server's own credentials when it is the same URL).",
)
