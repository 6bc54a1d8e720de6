"""The ``fhir-cml`` command line."""

from __future__ import annotations

import click

from fhir_cml import __version__
from fhir_cml.jobs.sync_cli import sync


@click.group()
@click.version_option(__version__, prog_name="fhir-cml")
def main() -> None:
    """CML response readings and care-plan suggestions from FHIR R4 data."""


main.add_command(sync)
