"""The ``fhir-cml sync`` command: options, logging, and exit codes for schedulers.

Exit codes: 0 all patients done; 1 some patients failed (they are retried next run); 2 a usage
or configuration error (nothing was done); 3 the run could not complete (server unreachable,
state store unusable); 130 interrupted.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import click
import requests

from fhir_cml.app import load_rule_config
from fhir_cml.domain import Guideline
from fhir_cml.ehr.auth import (
    DEFAULT_SCOPE,
    SmartBackendAuth,
    load_signing_key,
    server_credentials,
)
from fhir_cml.ehr.client import BearerToken, FhirClient, RetryPolicy
from fhir_cml.ehr.fetch import FetchOptions, Population
from fhir_cml.ehr.terminology import search_codes, site_terminology, terminology_key
from fhir_cml.ehr.writeback import WriteMode
from fhir_cml.errors import ConfigurationError, FhirClientError, FhirCmlError
from fhir_cml.fhir.inbound.conceptmaps import Terminology
from fhir_cml.jobs.options import (
    concept_map_option,
    rules_config_option,
    terminology_server_option,
)
from fhir_cml.jobs.sync import EXIT_RUN_FAILED, SyncJob, SyncSettings
from fhir_cml.state import StateStore

EXIT_USAGE = 2
LOG_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


def _instant(value: str | None) -> datetime | None:
    if value is None:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date or time (e.g. 2025-06-30 or 2025-06-30T22:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        if "T" in text or " " in text:
            raise click.BadParameter("a time needs a time zone, e.g. 2025-06-30T22:00:00Z")
        moment = moment.replace(tzinfo=UTC)
    return moment


@click.command("sync")
@click.option(
    "--fhir-base",
    envvar="FHIR_CML_FHIR_BASE",
    required=True,
    metavar="URL",
    help="The FHIR R4 base URL of the EHR (env FHIR_CML_FHIR_BASE).",
)
@click.option(
    "--since",
    metavar="TIMESTAMP",
    help="Only patients with inputs updated since then (default: the last "
    "successful run's high-water mark).",
)
@click.option("--full", is_flag=True, help="Read every patient of the population again.")
@click.option(
    "--patient", "patients", multiple=True, metavar="ID", help="Only this patient (repeatable)."
)
@click.option("--group", metavar="ID", help="The members of this Group instead of the population.")
@click.option("--dry-run", is_flag=True, help="Write nothing; print what would be written.")
@click.option("--as-of", metavar="DATE", help="Assess as of this date (default: today, UTC).")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Batches of patients worked on at once.",
)
@click.option("--bulk", is_flag=True, help="Read with Bulk Data $export instead of searches.")
@click.option(
    "--bulk-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the export's NDJSON files here (default: a temporary directory).",
)
@click.option(
    "--state",
    envvar="FHIR_CML_STATE",
    metavar="URL|PATH",
    help="State store: a SQLite file, or a database URL such as "
    "postgresql://user@host/db (env FHIR_CML_STATE; default "
    "~/.local/share/fhir-cml/state.sqlite3).",
)
@click.option(
    "--token",
    envvar="FHIR_CML_TOKEN",
    metavar="TOKEN",
    help="A bearer token to send (env FHIR_CML_TOKEN).",
)
@click.option(
    "--client-id",
    envvar="FHIR_CML_CLIENT_ID",
    help="SMART Backend Services client id (env FHIR_CML_CLIENT_ID).",
)
@click.option(
    "--private-key",
    envvar="FHIR_CML_PRIVATE_KEY",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The client's private key: PEM or JWK(S) (env FHIR_CML_PRIVATE_KEY).",
)
@click.option(
    "--key-id",
    help="The key's kid as registered with the EHR (default: its JWK kid or RFC 7638 thumbprint).",
)
@click.option(
    "--alg",
    type=click.Choice(["RS384", "ES384", "RS256", "ES256", "RS512", "ES512"]),
    help="Signing algorithm (default: RS384 for RSA keys, ES384 for P-384 keys).",
)
@click.option(
    "--token-url",
    envvar="FHIR_CML_TOKEN_URL",
    help="The token endpoint (default: discovered from {base}/.well-known/smart-configuration).",
)
@click.option(
    "--scope",
    default=DEFAULT_SCOPE,
    show_default=False,
    help="Scopes to ask for (default: read the inputs, write the suggestions).",
)
@click.option(
    "--population",
    multiple=True,
    type=click.Choice([p.value for p in Population]),
    help="How to find CML patients: by Condition (default), TKI MedicationStatement or "
    "MedicationRequest, "
    "BCR::ABL1 Observation; repeat to combine.",
)
@click.option(
    "--guideline",
    type=click.Choice([g.value for g in Guideline]),
    default=Guideline.ELN2020.value,
    show_default=True,
)
@click.option(
    "--conversion-factor",
    type=float,
    help="The clinic's IS conversion factor for non-IS BCR::ABL1 results.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 500),
    default=50,
    show_default=True,
    help="Patients per search and per write transaction.",
)
@click.option(
    "--page-size",
    type=click.IntRange(1, 10000),
    default=1000,
    show_default=True,
    help="_count of the searches.",
)
@click.option(
    "--write-mode",
    type=click.Choice(["auto", "transaction", "batch"]),
    default="auto",
    show_default=True,
    help="How each step of the write is sent for a group of patients (the readings, then the "
    "suggestions, then the Provenances and the superseding): batch (auto is the same), or "
    "transaction, for servers that take transactions only.",
)
@click.option(
    "--transaction-size",
    type=click.IntRange(1, 500),
    help="Patients per write request (default: --batch-size; lowered by itself when the "
    "server refuses big bundles).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(1),
    default=120.0,
    show_default=True,
    help="Seconds to wait for an answer to one request.",
)
@click.option(
    "--retries",
    type=click.IntRange(0, 20),
    default=5,
    show_default=True,
    help="Retries of a request that is safe to repeat.",
)
@click.option(
    "--claim-profiles/--no-claim-profiles",
    envvar="FHIR_CML_CLAIM_PROFILES",
    default=False,
    show_default=True,
    help="Name fhir-cml's profiles in meta.profile of what is written. Only for servers that "
    "hold the profiles: such a server refuses a profile it cannot read (then the client also "
    "needs system/StructureDefinition.rs, added to the default scopes).",
)
@click.option(
    "--quota-wait",
    type=click.FloatRange(0),
    default=900.0,
    show_default=True,
    help="Seconds the run may wait in all for the server's rate limit (429, RateLimit header).",
)
@click.option(
    "--recheck-days",
    type=click.IntRange(1),
    default=30,
    show_default=True,
    help="Re-read unchanged patients after this many days (conclusions age).",
)
@concept_map_option
@terminology_server_option
@rules_config_option
@click.option(
    "--medication-records",
    "extra_types",
    multiple=True,
    type=click.Choice(["MedicationDispense", "MedicationAdministration"]),
    help="Read these records of the TKI too, where the site keeps them (repeatable).",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the per-patient outcome (ids included) to this JSON file.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar (default: when stderr is a terminal; log lines otherwise).",
)
@click.pass_context
def sync(
    ctx: click.Context,
    fhir_base: str,
    since: str | None,
    full: bool,
    patients: tuple[str, ...],
    group: str | None,
    dry_run: bool,
    as_of: str | None,
    concurrency: int,
    bulk: bool,
    bulk_dir: Path | None,
    state: str | None,
    token: str | None,
    client_id: str | None,
    private_key: Path | None,
    key_id: str | None,
    alg: str | None,
    token_url: str | None,
    scope: str,
    population: tuple[str, ...],
    guideline: str,
    conversion_factor: float | None,
    batch_size: int,
    page_size: int,
    timeout: float,
    retries: int,
    claim_profiles: bool,
    quota_wait: float,
    recheck_days: int,
    write_mode: str,
    transaction_size: int | None,
    concept_maps: tuple[Path, ...],
    terminology_server: str | None,
    rules_config: Path | None,
    extra_types: tuple[str, ...],
    report: Path | None,
    progress: bool | None,
) -> None:
    """Assess the server's CML patients and write RiskAssessment and CarePlan suggestions back.

    Incremental and resumable: run it every night; it reads what changed, writes each
    suggestion once, supersedes the previous one when the reading changes, and exits non-zero
    when a patient failed (it is retried on the next run).
    """
    show_bar = sys.stderr.isatty() if progress is None else progress
    _configure_logging(show_bar)
    try:
        settings = SyncSettings(
            fhir_base=fhir_base,
            as_of=date.fromisoformat(as_of) if as_of else datetime.now(UTC).date(),
            since=_instant(since),
            full=full,
            patients=patients,
            group=group,
            dry_run=dry_run,
            concurrency=concurrency,
            bulk=bulk,
            bulk_dir=bulk_dir,
            population=tuple(Population(p) for p in population) or (Population.CONDITION,),
            guideline=Guideline(guideline),
            rules=load_rule_config(rules_config),
            conversion_factor=conversion_factor,
            fetch=FetchOptions(
                batch_size=batch_size, page_size=page_size, extra_types=tuple(extra_types)
            ),
            recheck_days=recheck_days,
            write_mode=_write_mode(write_mode),
            claim_profiles=claim_profiles,
            transaction_size=transaction_size,
        )
        settings.check()
        client = FhirClient(
            settings.fhir_base,
            timeout=(10.0, timeout),
            retry=RetryPolicy(attempts=retries, quota_budget=quota_wait),
            pool_size=max(4, settings.concurrency),
        )
        if claim_profiles and scope == DEFAULT_SCOPE:
            scope += " system/StructureDefinition.rs"  # servers read claimed profiles as us
        client.auth = _authenticate(
            client, token, client_id, private_key, key_id, alg, token_url, scope
        )
        store = StateStore(state)
    except (ValueError, ConfigurationError) as err:
        click.echo(f"fhir-cml sync: {err}", err=True)
        ctx.exit(EXIT_USAGE)
    except FhirCmlError as err:
        click.echo(f"fhir-cml sync: {err}", err=True)
        ctx.exit(EXIT_RUN_FAILED)
    problems: list[str] = []
    terminology = None
    if concept_maps or terminology_server:
        terminology, problems = _terminology(client, concept_maps, terminology_server)
        codes = search_codes(terminology, settings.fetch.observation_codes)
        settings = replace(
            settings,
            translations=terminology_key(terminology),
            fetch=replace(settings.fetch, observation_codes=codes),
        )
    job = SyncJob(settings, client, store, progress=show_bar, report=report)
    if terminology is not None:
        job.mapping = replace(job.mapping, terminology=terminology)
    said = len(problems)
    try:
        summary = job.run()
    except FhirCmlError as err:  # the state store failed: nothing can be remembered
        click.echo(f"fhir-cml sync: {err}", err=True)
        ctx.exit(EXIT_RUN_FAILED)
    finally:
        client.close()
        store.close()
    for line in summary.lines():
        click.echo(line)
    for problem in problems[said:]:  # met while translating (the terminology server)
        click.echo(f"fhir-cml sync: {problem}", err=True)
    ctx.exit(summary.exit_code)


def _authenticate(
    client: FhirClient,
    token: str | None,
    client_id: str | None,
    private_key: Path | None,
    key_id: str | None,
    alg: str | None,
    token_url: str | None,
    scope: str,
) -> requests.auth.AuthBase | None:
    """A fixed token, or SMART Backend Services (client id and private key), or nothing."""
    if token and (client_id or private_key):
        raise ConfigurationError("give either --token or --client-id/--private-key, not both")
    if token:
        return BearerToken(token)
    if not client_id and not private_key:
        return None
    if not (client_id and private_key):
        raise ConfigurationError("SMART Backend Services needs both --client-id and --private-key")
    key = load_signing_key(private_key, kid=key_id, alg=alg)
    try:
        auth = server_credentials(
            client, token=None, client_id=client_id, key=key, token_url=token_url, scope=scope
        )
    except FhirClientError as err:
        raise ConfigurationError(f"SMART discovery failed: {err.message}") from None
    if isinstance(auth, SmartBackendAuth):
        auth.token()  # fail at start-up, not in the middle of the run
    return auth


def _write_mode(value: str) -> WriteMode:
    if value == "batch":
        return "batch"
    return "transaction" if value == "transaction" else "auto"


def _configure_logging(progress: bool) -> None:
    """Structured lines on stderr; with a progress bar, only warnings (the bar tells the rest)."""
    root = logging.getLogger("fhir_cml")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
    root.setLevel(logging.WARNING if progress else logging.INFO)


def _terminology(
    client: FhirClient, concept_maps: tuple[Path, ...], server: str | None
) -> tuple[Terminology | None, list[str]]:
    """The site's ConceptMaps and terminology server; problems loading them go to stderr."""
    remote = None
    if server is not None:
        same = server.rstrip("/") == client.base_url
        remote = client if same else FhirClient(server, timeout=client.timeout)
    terminology, problems = site_terminology(list(concept_maps), remote)
    for problem in problems:
        click.echo(f"fhir-cml sync: {problem}", err=True)
    return terminology, problems
