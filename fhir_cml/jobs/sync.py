"""``fhir-cml sync``: assess a FHIR server's CML patients and write the suggestions back.

One run:

1. **Who.** The CML population (searches by Condition, TKI statement or BCR::ABL1 result),
   a Group's members, or the patients named. Incrementally (the default after the first
   successful run) only those of them with an input updated since the last run's high-water
   mark, plus those whose last attempt failed and those due for a periodic re-reading (the next
   PCR falls due, or ``recheck_days`` passed: conclusions also change with time).
2. **Read** them in batches (one search per resource type for a batch), on a thread pool.
3. **Compare**: a patient whose inputs have the same fingerprint as at the last successful
   reading is left alone.
4. **Assess** the others (inbound mapping, then the domain's ``assess``) and **write back**
   (see :mod:`fhir_cml.ehr.writeback`): conditional creates, superseding the previous
   suggestion; several patients per transaction.
5. **Remember** per patient what was read and written (the state store), then move the
   high-water mark to the server's clock at the start of the run (less ``since_overlap``).

Killed at any point, a run leaves the mark where it was; the next run reads the same window
again, finds the patients done by their fingerprints, and finishes the others. Nothing is
written twice: every create is conditional on its identifier, and each plan starts from what
the server holds.

Log lines carry counts and event names, never patient ids or data; the per-patient details go
to the state store and, on request, to a JSON report.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import IO, Any, Literal

from tqdm import tqdm

from fhir_cml.app import (
    DEEP,
    Hint,
    Plan,
    TransactionLimit,
    WriteMode,
    WriteOutcome,
    WriteSettings,
)
from fhir_cml.app import plan as plan_writes
from fhir_cml.app import write as write_plans
from fhir_cml.domain import RULESET_VERSION, Assessment, Guideline, assess
from fhir_cml.domain.config import DEFAULT_CONFIG, RuleConfig
from fhir_cml.domain.vocabulary import IssueCode, Severity
from fhir_cml.ehr.bulk import BulkOptions, ExportResult, export
from fhir_cml.ehr.client import FhirClient
from fhir_cml.ehr.fetch import (
    INPUT_TYPES,
    FetchOptions,
    Population,
    batches,
    changed_patients,
    fetch_patients,
    find_population,
    group_members,
    input_fingerprint,
    patient_id_of,
)
from fhir_cml.errors import ConfigurationError, FhirClientError, FhirCmlError
from fhir_cml.fhir.inbound import MappingOptions, records_from_resources, stream_paths
from fhir_cml.fhir.inbound.conceptmaps import translations_used
from fhir_cml.state import PatientState, PatientUpdate, StateStore

log = logging.getLogger("fhir_cml.sync")

Status = Literal["assessed", "skipped", "failed"]
UNCHANGED = "inputs unchanged"
NO_EVIDENCE = "no CML evidence"
NOT_FOUND = "not found on the server"
EXIT_OK, EXIT_PATIENTS_FAILED, EXIT_RUN_FAILED, EXIT_INTERRUPTED = 0, 1, 3, 130
# Cyclic GC thresholds while a run lasts (see _fewer_collections); Python's are (700, 10, 10).
RUN_GC_THRESHOLD = (50_000, 20, 20)


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """What ``fhir-cml sync`` was asked to do."""

    fhir_base: str
    as_of: date
    since: datetime | None = None
    full: bool = False
    patients: tuple[str, ...] = ()
    group: str | None = None
    dry_run: bool = False
    concurrency: int = 4
    bulk: bool = False
    population: tuple[Population, ...] = (Population.CONDITION,)
    guideline: Guideline = Guideline.ELN2020
    conversion_factor: float | None = None
    fetch: FetchOptions = field(default_factory=FetchOptions)
    bulk_options: BulkOptions = field(default_factory=BulkOptions)
    bulk_dir: Path | None = None
    recheck_days: int = 30
    write_mode: WriteMode = "auto"
    transaction_size: int | None = None
    since_overlap: timedelta = timedelta(minutes=5)
    rules: RuleConfig = DEFAULT_CONFIG
    claim_profiles: bool = False
    # The site's ConceptMaps (their content digest) and terminology server: a change starts a
    # new high-water mark, so the next run reads everyone and the fingerprints pick out the
    # patients whose codes the change touches.
    translations: str = ""

    def check(self) -> None:
        if self.full and self.since is not None:
            raise ConfigurationError("--since and --full exclude each other")
        if self.patients and self.group:
            raise ConfigurationError("--patient and --group exclude each other")
        if self.bulk and self.patients:
            raise ConfigurationError("--bulk exports populations; drop it to sync single patients")
        if self.concurrency < 1:
            raise ConfigurationError("--concurrency must be at least 1")
        if self.since is not None and self.since.tzinfo is None:
            raise ConfigurationError("--since needs a time zone (e.g. 2025-06-30T00:00:00Z)")

    @property
    def scope(self) -> str:
        """What the high-water mark belongs to: the server and how the population is found."""
        base = self.fhir_base.rstrip("/")
        maps = f"#maps={self.translations}" if self.translations else ""
        if self.group:
            return f"{base}#group={self.group}{maps}"
        return f"{base}#population={','.join(sorted(p.value for p in self.population))}{maps}"

    @property
    def server(self) -> str:
        return self.fhir_base.rstrip("/")

    @property
    def reading(self) -> tuple[str, ...]:
        """Settings a reading depends on: part of every input fingerprint, so that a run with
        another as-of date (an earlier one too), guideline, ruleset or rule configuration
        reassesses rather than taking the inputs for unchanged."""
        factor = "" if self.conversion_factor is None else repr(self.conversion_factor)
        return (
            RULESET_VERSION,
            self.guideline.value,
            factor,
            f"as-of {self.as_of.isoformat()}",
            f"rules {self.rules!r}",
        )


@dataclass(slots=True)
class PatientResult:
    """What a run did with one patient (kept off the logs: it names the patient)."""

    patient_id: str
    status: Status
    reason: str | None = None
    error_kind: str | None = None
    input_fingerprint: str | None = None
    read: bool = True
    plan: Plan | None = None
    write: WriteOutcome | None = None
    assessment: Assessment | None = None
    issues: int = 0

    @property
    def wrote(self) -> bool:
        return self.write is not None and self.write.wrote


@dataclass(slots=True)
class Summary:
    """The end-of-run numbers, and the exit code a scheduler acts on."""

    mode: str
    dry_run: bool
    since: datetime | None
    seen: int = 0
    read: int = 0
    assessed: int = 0
    changed: int = 0
    written: int = 0
    superseded: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    messages: Counter[str] = field(default_factory=Counter)
    data_issues: int = 0
    requests_read: int = 0
    requests_write: int = 0
    seconds: float = 0.0
    quota_wait: float = 0.0
    high_water_mark: datetime | None = None
    fatal: str | None = None
    interrupted: bool = False

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.fatal:
            return EXIT_RUN_FAILED
        return EXIT_PATIENTS_FAILED if self.failed else EXIT_OK

    @property
    def status(self) -> str:
        if self.interrupted:
            return "interrupted"
        if self.fatal:
            return "failed"
        return "partial" if self.failed else "ok"

    def counts(self) -> dict[str, Any]:
        return {
            "seen": self.seen,
            "read": self.read,
            "assessed": self.assessed,
            "changed": self.changed,
            "written": self.written,
            "superseded": self.superseded,
            "skipped": dict(self.skipped),
            "errors": dict(self.errors),
            "data_issues": self.data_issues,
            "requests": {"read": self.requests_read, "write": self.requests_write},
            "seconds": round(self.seconds, 3),
            "quota_wait_seconds": round(self.quota_wait, 1),
        }

    def lines(self) -> list[str]:
        """The summary as people read it (no patient data)."""
        since = self.since.isoformat() if self.since else "the beginning (full run)"
        head = "Dry run (nothing written)" if self.dry_run else "Sync"
        out = [
            f"{head} {self.status}: {self.mode} mode, changes since {since}, "
            f"{self.seconds:.1f}s, {self.requests_read} read and "
            f"{self.requests_write} write requests.",
            f"  patients seen      {self.seen}",
            f"  read               {self.read}",
            f"  assessed           {self.assessed}",
            f"  changed            {self.changed}"
            + (
                f" ({self.superseded} superseding an earlier suggestion)" if self.superseded else ""
            ),
            f"  {'would write' if self.dry_run else 'written':<19}{self.written}",
            f"  skipped            {sum(self.skipped.values())}" + _reasons(self.skipped),
            f"  errors             {self.failed}" + _reasons(self.errors),
        ]
        if self.data_issues:
            out.append(f"  data issues        {self.data_issues} (in the assessments' notes)")
        if self.quota_wait:
            out.append(
                f"  waited for quota   {self.quota_wait:.1f}s (the server's rate limit; "
                "--quota-wait bounds it)"
            )
        for message, n in self.messages.most_common(5):
            out.append(f"  error: {message}" + (f" ({n} patients)" if n > 1 else ""))
        if self.fatal:
            out.append(f"  the run could not complete: {self.fatal}")
        if self.interrupted:
            out.append("  interrupted: run it again to finish; nothing will be written twice")
        elif self.failed:
            out.append("  the patients that failed are retried on the next run")
        return out


class SyncJob:
    """One run of ``fhir-cml sync`` against one server."""

    def __init__(
        self,
        settings: SyncSettings,
        client: FhirClient,
        store: StateStore,
        *,
        out: IO[str] | None = None,
        progress: bool | None = None,
        report: Path | None = None,
    ) -> None:
        settings.check()
        self.settings = settings
        self.client = client
        self.store = store
        self.out = out or sys.stdout
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.report = report
        self.mapping = MappingOptions(
            now=datetime.now(UTC), conversion_factor=settings.conversion_factor
        )
        self.prior: dict[str, PatientState] = {}
        # What the report says per patient (kept only when a report is asked for: assessments
        # and built resources are dropped as soon as they are recorded, so memory does not grow
        # with the population).
        self.report_items: list[dict[str, Any]] = []
        self.run_id = 0
        self.limit = TransactionLimit(settings.transaction_size)
        self.writing = WriteSettings(
            mode=settings.write_mode, claim_profiles=settings.claim_profiles, fetch=settings.fetch
        )
        self.after_kill = False
        self._requests = Counter[str]()
        client.on_exchange.append(lambda e: self._requests.update(["write" if e.write else "read"]))

    # --- the run -----------------------------------------------------------------------------

    def run(self) -> Summary:
        """Runs the sync; :class:`SyncAlreadyRunning` when another one of the server is going."""
        with self.store.run_lock(self.settings.server), _fewer_collections():
            return self._run()

    def _run(self) -> Summary:
        s = self.settings
        started = time.perf_counter()
        self.store.create_all()
        stale = self.store.abandon_stale_runs(s.scope)
        if stale:
            log.info("event=stale-runs count=%d note=earlier runs were killed", stale)
        # After a killed run, what it wrote half-way is nowhere in the state store: every patient
        # written this time has all of its assessments read, so that nothing is left behind.
        self.after_kill = stale > 0
        since = None if s.full or s.patients else (s.since or self.store.high_water_mark(s.scope))
        changed = self._reading_changed()
        if since is not None and changed:
            log.info("event=settings-changed note=%s; every patient is read again", changed)
            since = None
        summary = Summary("bulk" if s.bulk else "search", s.dry_run, since)
        run_id = self.run_id = self.store.begin_run(
            s.scope, mode=summary.mode, since=since, dry_run=s.dry_run
        )
        log.info(
            "event=start mode=%s dry_run=%s incremental=%s concurrency=%d",
            summary.mode,
            s.dry_run,
            since is not None,
            s.concurrency,
        )
        mark: datetime | None = None
        try:
            if s.bulk and since is None:
                mark = self._bulk_full(summary)
            else:
                mark = self._search(summary, since)
        except KeyboardInterrupt:
            summary.interrupted = True
        except FhirCmlError as err:
            summary.fatal = str(err)
            log.error("event=run-failed error=%s", type(err).__name__)
        except Exception as err:
            summary.fatal = f"internal error ({type(err).__name__}: {str(err)[:200]})"
            log.exception("event=internal-error error=%s", type(err).__name__)
        finally:
            summary.seconds = time.perf_counter() - started
            summary.requests_read = self._requests["read"]
            summary.requests_write = self._requests["write"]
            summary.quota_wait = self.client.quota_waited
            if summary.status in ("ok", "partial") and not s.patients:
                summary.high_water_mark = mark
            self.store.finish_run(
                run_id,
                status=summary.status,
                counts=summary.counts(),
                message=summary.fatal,
                high_water_mark=summary.high_water_mark,
                reading=(self.settings_digest, s.as_of) if not s.patients else None,
            )
            log.info(
                "event=finish status=%s seen=%d assessed=%d written=%d failed=%d seconds=%.1f",
                summary.status,
                summary.seen,
                summary.assessed,
                summary.written,
                summary.failed,
                summary.seconds,
            )
            self._write_report(summary)
        return summary

    def _search(self, summary: Summary, since: datetime | None) -> datetime:
        """Population, changes and inputs by search (also the incremental half of --bulk)."""
        s = self.settings
        mark = self._mark_from(datetime.now(UTC))
        if s.patients:
            candidates = list(dict.fromkeys(s.patients))
        else:
            population: set[str] | None
            if s.group:
                population = set(group_members(self.client, s.group))
            elif s.bulk:
                population = None  # decided by the inbound mapping, as for a full export
            else:
                population = find_population(self.client, s.population, s.fetch)
            mark = self._mark_from(self.client.server_time() or datetime.now(UTC))
            if since is None:
                candidates = sorted(population or ())
            else:
                if s.bulk:
                    changed, mark = self._bulk_changes(since)
                else:
                    changed = changed_patients(self.client, since, s.fetch)
                prior = self.store.patients(s.server)
                wanted = changed | {pid for pid, p in prior.items() if self._retry(p)}
                if population is not None:
                    wanted = (wanted | {pid for pid in population if pid not in prior}) & population
                candidates = sorted(wanted)
        self.prior = self.store.patients(s.server, candidates)
        summary.seen = len(candidates)
        log.info("event=candidates count=%d", len(candidates))
        chunks = list(batches(candidates, s.fetch))
        self._run_chunks(summary, chunks, lambda chunk: self._fetch(chunk))
        return mark

    def _bulk_full(self, summary: Summary) -> datetime:
        """Everything from one export; the inbound mapping decides who has CML.

        The export is read in parts of whole patients (docs/scale.md), each synced before the
        next is read, so memory does not grow with the population.
        """
        s = self.settings
        progress = _BulkProgress(self.progress)
        try:
            with self._export() as (directory, result):
                if result.errors:
                    summary.messages[f"export errors: {result.error_summary()}"] += 1
                for part in stream_paths([directory], self.mapping, progress=progress):
                    resources = {
                        key.removeprefix("Patient/"): group
                        for key, group in part.resources_by_patient.items()
                    }
                    candidates = sorted(resources)
                    summary.seen += len(candidates) + part.skipped_patients
                    summary.read += part.skipped_patients
                    summary.skipped[NO_EVIDENCE] += part.skipped_patients
                    progress.update(part.skipped_patients)
                    self.prior = self.store.patients(s.server, candidates)
                    log.info("event=candidates count=%d source=export", len(candidates))
                    chunks = list(batches(candidates, s.fetch))
                    self._run_chunks(
                        summary,
                        chunks,
                        partial(_taken, resources),
                        progress.bar,
                    )
        finally:
            progress.close()
        return self._mark_from(result.transaction_time)

    def _bulk_changes(self, since: datetime) -> tuple[set[str], datetime]:
        """Patients named by the resources of an export ``_since`` the mark."""
        changed: set[str] = set()
        with self._export(since) as (_directory, result):
            for path in result.files:
                with path.open("rb") as handle:
                    for line in handle:
                        if line.strip():
                            resource = json.loads(line)
                            pid = (
                                resource.get("id")
                                if resource.get("resourceType") == "Patient"
                                else patient_id_of(resource)
                            )
                            if isinstance(pid, str):
                                changed.add(pid)
        return changed, self._mark_from(result.transaction_time)

    # --- chunks on the pool ------------------------------------------------------------------

    def _run_chunks(
        self,
        summary: Summary,
        chunks: Sequence[list[str]],
        source: Callable[[list[str]], dict[str, list[dict[str, Any]]]],
        shared_bar: tqdm[Any] | None = None,
    ) -> None:
        total = sum(len(c) for c in chunks)
        bar = shared_bar or tqdm(
            total=total, unit="patient", disable=not self.progress, file=sys.stderr
        )
        done = 0
        last_log = time.monotonic()
        queue: Iterator[list[str]] = iter(chunks)
        window = max(2 * self.settings.concurrency, 2)
        with ThreadPoolExecutor(self.settings.concurrency, "fhir-cml-sync") as pool:
            running: dict[Future[list[PatientResult]], list[str]] = {}
            try:
                for chunk in _take(queue, window):
                    running[pool.submit(self._chunk, chunk, source)] = chunk
                while running:
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        chunk = running.pop(future)
                        results = future.result()
                        self._record(summary, results)
                        done += len(chunk)
                        bar.update(len(chunk))
                        for more in _take(queue, 1):
                            running[pool.submit(self._chunk, more, source)] = more
                    if not self.progress and time.monotonic() - last_log > 5:
                        last_log = time.monotonic()
                        self._log_progress(summary, done, total)
            except BaseException:
                for future in running:
                    future.cancel()
                # Chunks already reading or writing finish; record what they did.
                for future, _chunk in list(running.items()):
                    if not future.cancelled():
                        with contextlib.suppress(BaseException):  # the first error is raised
                            self._record(summary, future.result())
                raise
            finally:
                if bar is not shared_bar:
                    bar.close()
        self._log_progress(summary, done, total)

    def _chunk(
        self,
        chunk: list[str],
        source: Callable[[list[str]], dict[str, list[dict[str, Any]]]],
    ) -> list[PatientResult]:
        """Read, compare, assess, write one batch of patients (on a worker thread).

        A bug met on the way costs this batch, not the run: its patients are reported failed
        (and retried next time) with the error's type, and the traceback goes to the log.
        """
        try:
            return self._chunk_work(chunk, source)
        except Exception as err:
            log.exception("event=internal-error error=%s", type(err).__name__)
            reason = f"internal error ({type(err).__name__}); see the log"
            return [_failure(pid, reason, "internal error") for pid in chunk]

    def _chunk_work(
        self,
        chunk: list[str],
        source: Callable[[list[str]], dict[str, list[dict[str, Any]]]],
    ) -> list[PatientResult]:
        try:
            inputs = source(chunk)
        except FhirClientError as err:
            return [
                _failure(pid, f"reading failed: {err.message}", _kind(err, "read")) for pid in chunk
            ]
        results: dict[str, PatientResult] = {}
        to_assess: list[str] = []
        for pid in chunk:
            resources = inputs.get(pid) or []
            fingerprint = input_fingerprint(*self._fingerprinted(resources))
            result = PatientResult(pid, "skipped", input_fingerprint=fingerprint)
            results[pid] = result
            if not resources:
                result.reason = NOT_FOUND
                result.read = False
            elif self._unchanged(pid, fingerprint):
                result.reason = UNCHANGED
            else:
                to_assess.append(pid)
        assessments = self._assess(to_assess, inputs, results)
        if assessments:
            self._write(assessments, results)
        return [results[pid] for pid in chunk]

    def _fingerprinted(
        self, resources: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
        """What the fingerprint covers: with the site's ConceptMaps, the resources as translated
        and a digest of the translations they use (docs/inbound.md, "Local codes and units")."""
        terminology = self.mapping.terminology
        if terminology is None:
            return resources, self.settings.reading
        seen, digest = translations_used(resources, terminology)
        return seen, (*self.settings.reading, *((f"translations:{digest}",) if digest else ()))

    def _fetch(self, chunk: list[str]) -> dict[str, list[dict[str, Any]]]:
        found = fetch_patients(self.client, chunk, self.settings.fetch)
        return {pid: inputs.resources for pid, inputs in found.items()}

    def _assess(
        self,
        patient_ids: list[str],
        inputs: dict[str, list[dict[str, Any]]],
        results: dict[str, PatientResult],
    ) -> list[Assessment]:
        if not patient_ids:
            return []
        loaded = records_from_resources(
            [r for pid in patient_ids for r in inputs[pid]], self.mapping
        )
        records = {r.patient: r for r in loaded.records}
        unreadable = {
            i.resource: i.message
            for i in loaded.issues
            if i.resource and i.code is IssueCode.UNREADABLE and i.severity is Severity.ERROR
        }
        assessments = []
        for pid in patient_ids:
            key = f"Patient/{pid}"
            result = results[pid]
            record = records.get(key)
            if record is None:
                if key in unreadable:
                    _fail(result, "the patient's data could not be read", "unreadable data")
                else:
                    result.reason = NO_EVIDENCE
                continue
            try:
                assessment = assess(
                    record, self.settings.as_of, self.settings.guideline, self.settings.rules
                )
            except Exception as err:  # a rule bug for one patient must not stop the others
                _fail(result, f"the assessment failed ({type(err).__name__})", "assessment error")
                continue
            result.status = "assessed"
            result.assessment = assessment
            result.issues = len(assessment.issues)
            assessments.append(assessment)
        return assessments

    def _write(self, assessments: list[Assessment], results: dict[str, PatientResult]) -> None:
        recorded = datetime.now(UTC)
        try:
            hints = {_pid(a.patient): self._hint(_pid(a.patient)) for a in assessments}
            plans = plan_writes(
                self.client, assessments, recorded, settings=self.writing, hints=hints
            )
        except FhirClientError as err:
            for a in assessments:
                _fail(
                    results[_pid(a.patient)],
                    f"reading the current suggestions failed: {err.message}",
                    _kind(err, "read"),
                )
            return
        for plan in plans:
            results[plan.patient_id].plan = plan
        if self.settings.dry_run:
            return
        for outcome in write_plans(self.client, plans, settings=self.writing, limit=self.limit):
            result = results[outcome.patient_id]
            result.write = outcome
            if not outcome.ok:
                _fail(
                    result, outcome.error or "the write failed", outcome.error_kind or "write error"
                )

    # --- bookkeeping (main thread) -----------------------------------------------------------

    def _record(self, summary: Summary, results: list[PatientResult]) -> None:
        updates: list[PatientUpdate] = []
        for r in results:
            if self.report is not None:
                self.report_items.append(_report_item(r))
            if r.read:
                summary.read += 1
            if r.status == "skipped":
                summary.skipped[r.reason or "other"] += 1
                if r.reason == NO_EVIDENCE:
                    updates.append(
                        PatientUpdate(r.patient_id, "skipped", NO_EVIDENCE, r.input_fingerprint)
                    )
                continue
            if r.assessment is not None:
                summary.assessed += 1
                summary.data_issues += r.issues
            if r.plan is not None and r.plan.changes:
                summary.changed += 1
                if r.plan.action == "supersede":
                    summary.superseded += 1
                if self.settings.dry_run:
                    summary.written += 1
                    print(r.plan.describe(), file=self.out)
            if r.status == "failed":
                summary.errors[r.error_kind or "error"] += 1
                summary.messages[_message(r.reason)] += 1
                updates.append(PatientUpdate(r.patient_id, "failed", r.reason))
                continue
            if r.wrote:
                summary.written += 1
            if r.assessment is not None and r.plan is not None:
                updates.append(self._success(r))
        if updates and not self.settings.dry_run:
            self.store.record_patients(self.settings.server, self.run_id, updates)

    def _success(self, r: PatientResult) -> PatientUpdate:
        assert r.assessment is not None
        assert r.plan is not None
        write = r.write
        return PatientUpdate(
            r.patient_id,
            "ok",
            None,
            r.input_fingerprint,
            r.plan.fingerprint,
            write.risk_assessment if write else None,
            (write.care_plan if write else None) or r.plan.current,
            self.settings.as_of,
            self._recheck_on(r.assessment),
        )

    @property
    def settings_digest(self) -> str:
        """The settings part of :attr:`reading` (all but the as-of date), hashed."""
        settings = [part for part in self.settings.reading if not part.startswith("as-of ")]
        return hashlib.sha256("\n".join(settings).encode()).hexdigest()

    def _reading_changed(self) -> str | None:
        """Why every patient must be read again although their inputs did not change: other
        reading settings than the last successful run's, or an earlier as-of date (a later one
        is the nightly case: the re-check dates cover what time changes)."""
        last = self.store.last_reading(self.settings.scope)
        if last is None:
            return None
        settings, as_of = last
        if settings != self.settings_digest:
            return "the reading settings differ from the last run's"
        if self.settings.as_of < as_of:
            return f"the as-of date is earlier than the last run's ({as_of.isoformat()})"
        return None

    def _hint(self, pid: str) -> Hint:
        """Which earlier assessments of a patient to look for on the server: the one last
        written, when the state store knows it and the run before was not killed; otherwise
        all of them (the patient is new here, failed, or was being written when killed), and
        for a failed or killed write the proposals it may have left behind too."""
        prior = self.prior.get(pid)
        if prior is None and not self.after_kill:
            return Hint(deep=True, interrupted=False)
        if self.after_kill or prior is None or prior.status != "ok":
            return DEEP
        known = prior.assessment_fingerprint
        return Hint((known,) if known else (), deep=False)

    def _recheck_on(self, assessment: Assessment) -> date:
        """When time alone may change the reading: the next PCR overdue, or ``recheck_days``."""
        as_of = self.settings.as_of
        limit = as_of + timedelta(days=self.settings.recheck_days)
        due = assessment.monitoring.next_pcr_due
        if due is not None and not assessment.monitoring.overdue:
            overdue_from = due + timedelta(days=self.settings.rules.overdue_grace_days + 1)
            if as_of < overdue_from < limit:
                return overdue_from
        return limit

    def _unchanged(self, pid: str, fingerprint: str) -> bool:
        prior = self.prior.get(pid)
        return (
            prior is not None
            and prior.input_fingerprint == fingerprint
            and prior.status in ("ok", "skipped")
            and not self._retry(prior)
        )

    def _retry(self, prior: PatientState) -> bool:
        if prior.status == "failed":
            return True
        return prior.recheck_on is not None and prior.recheck_on <= self.settings.as_of

    def _mark_from(self, moment: datetime) -> datetime:
        return moment - self.settings.since_overlap

    @contextlib.contextmanager
    def _export(self, since: datetime | None = None) -> Iterator[tuple[Path, ExportResult]]:
        """An export of the inputs into ``--bulk-dir``, or a temporary directory removed after."""
        s = self.settings
        directory = s.bulk_dir or Path(tempfile.mkdtemp(prefix="fhir-cml-export-"))
        try:
            yield (
                directory,
                export(
                    self.client,
                    directory,
                    types=(*INPUT_TYPES, "Medication"),
                    since=since,
                    group=s.group,
                    options=s.bulk_options,
                ),
            )
        finally:
            if s.bulk_dir is None:
                shutil.rmtree(directory, ignore_errors=True)

    def _log_progress(self, summary: Summary, done: int, total: int) -> None:
        if self.progress:
            return
        log.info(
            "event=progress done=%d total=%d assessed=%d written=%d skipped=%d failed=%d",
            done,
            total,
            summary.assessed,
            summary.written,
            sum(summary.skipped.values()),
            summary.failed,
        )

    def _write_report(self, summary: Summary) -> None:
        """The per-patient details, for the operator who asked (``--report``)."""
        if self.report is None:
            return
        document = {
            "status": summary.status,
            "exit_code": summary.exit_code,
            "summary": summary.counts(),
            "high_water_mark": summary.high_water_mark.isoformat()
            if summary.high_water_mark
            else None,
            "patients": self.report_items,
        }
        self.report.write_text(json.dumps(document, indent=2) + "\n")


def _taken(
    resources: dict[str, list[dict[str, Any]]], chunk: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """A chunk's resources, let go of by the part as they are handed over."""
    return {pid: resources.pop(pid, []) for pid in chunk}


class _BulkProgress:
    """A full --bulk run's bars: the export partitioned (MB), then its patients."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: tqdm[Any] | None = None

    def partitioning(self, done: int, total: int) -> None:
        if self.enabled and self.bar is None:
            self.bar = tqdm(
                total=total, desc="partitioning", unit="B", unit_scale=True, file=sys.stderr
            )
        if self.bar is not None:
            self.bar.update(done - self.bar.n)

    def partitioned(self, patients: int) -> None:
        self.close()
        if self.enabled:
            self.bar = tqdm(total=patients, unit="patient", file=sys.stderr)

    def update(self, patients: int) -> None:
        if self.bar is not None and patients:
            self.bar.update(patients)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _report_item(r: PatientResult) -> dict[str, Any]:
    item: dict[str, Any] = {"patient": r.patient_id, "status": r.status}
    if r.reason:
        item["reason"] = r.reason
    if r.plan is not None:
        item["action"] = r.plan.action
        item["assessment"] = r.plan.fingerprint
        if r.plan.superseded:
            item["supersedes"] = list(r.plan.superseded)
    if r.write is not None:
        item["created"] = r.write.created
        item["updated"] = r.write.updated
        if r.write.outcome:
            item["outcome"] = r.write.outcome
    return item


def _fail(result: PatientResult, reason: str, kind: str) -> None:
    result.status = "failed"
    result.reason = reason
    result.error_kind = kind


def _failure(pid: str, reason: str, kind: str) -> PatientResult:
    result = PatientResult(pid, "skipped", read=False)
    _fail(result, reason, kind)
    return result


def _kind(err: FhirClientError, doing: str) -> str:
    name = type(err).__name__.removeprefix("Fhir").removesuffix("Error").lower() or "client"
    return f"{doing}: {name}" + (f" (HTTP {err.status})" if name in ("http", "server") else "")


def _message(reason: str | None) -> str:
    return (reason or "error")[:300]


def _pid(key: str) -> str:
    return key.removeprefix("Patient/")


def _reasons(counter: Counter[str]) -> str:
    if not counter:
        return ""
    return " (" + ", ".join(f"{reason}: {n}" for reason, n in counter.most_common()) + ")"


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Collects reference cycles less often while a run lasts.

    The batches in flight hold tens of thousands of parsed resources, and each full collection
    scans all of them (and everything else alive), although parsed JSON, records and built
    resources hold no cycles: with Python's default thresholds the collector took 15-25 % of
    the client's CPU time in a 1000-patient sync. Reference counting still frees them as soon
    as a batch is done; cycles (there are few) are still collected, less often.
    """
    before = gc.get_threshold()
    gc.set_threshold(*RUN_GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _take(items: Iterator[list[str]], n: int) -> Iterable[list[str]]:
    for _ in range(n):
        item = next(items, None)
        if item is None:
            return
        yield item
