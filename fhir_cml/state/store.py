"""The state store: embedded SQLite by default, PostgreSQL when a database URL says so.

One :class:`StateStore` per process, used from one thread (the sync job's coordinator); the
FHIR work runs on other threads and hands its results back. SQLite runs in WAL mode, so a
reader (``fhir-cml`` looking at the run log) never blocks the job.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from fhir_cml.errors import StateError, SyncAlreadyRunning
from fhir_cml.state.schema import (
    SCHEMA_VERSION,
    Base,
    StateMeta,
    SyncPatient,
    SyncReading,
    SyncRun,
    SyncServer,
    utcnow,
)

STATE_ENV = "FHIR_CML_STATE"
IN_CLAUSE = 500  # ids per IN (...) query: well below SQLite's and PostgreSQL's limits


def default_state_path() -> Path:
    """``$XDG_DATA_HOME/fhir-cml/state.sqlite3`` (``~/.local/share/...`` when unset)."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "fhir-cml" / "state.sqlite3"


def database_url(value: str | None) -> str:
    """A SQLAlchemy URL from ``--state``: a URL as is, a file path as SQLite, None the default.

    ``postgresql://`` and ``postgres://`` URLs are given the psycopg (3) driver.
    """
    if not value:
        value = os.environ.get(STATE_ENV) or str(default_state_path())
    if "://" not in value:
        path = Path(value).expanduser().resolve()
        return f"sqlite:///{path}"
    for prefix in ("postgresql://", "postgres://"):
        if value.startswith(prefix):
            return "postgresql+psycopg://" + value[len(prefix) :]
    return value


@dataclass(frozen=True, slots=True)
class PatientState:
    """A snapshot of a :class:`SyncPatient` row, safe to hand to worker threads."""

    patient_id: str
    status: str
    reason: str | None
    input_fingerprint: str | None
    assessment_fingerprint: str | None
    risk_assessment: str | None
    care_plan: str | None
    assessed_as_of: date | None
    recheck_on: date | None


@dataclass(frozen=True, slots=True)
class PatientUpdate:
    """What a run learnt about one patient; ``None`` fields keep the stored value."""

    patient_id: str
    status: str
    reason: str | None = None
    input_fingerprint: str | None = None
    assessment_fingerprint: str | None = None
    risk_assessment: str | None = None
    care_plan: str | None = None
    assessed_as_of: date | None = None
    recheck_on: date | None = None


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: int
    server: str
    status: str
    mode: str
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None
    since: datetime | None
    high_water_mark: datetime | None
    counts: dict[str, Any] | None
    message: str | None


class StateStore:
    """The sync state (and, through :class:`~fhir_cml.state.schema.Base`, other faces' tables)."""

    def __init__(self, url: str | None = None, *, echo: bool = False) -> None:
        self.url = database_url(url)
        try:
            if self.url.startswith("sqlite:///"):
                Path(self.url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(self.url, echo=echo, pool_pre_ping=True)
        except (SQLAlchemyError, ImportError, OSError) as err:
            raise StateError(f"cannot open the state store {self.safe_url}: {err}") from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def safe_url(self) -> str:
        """The URL without its password, for messages."""
        try:
            return self.engine.url.render_as_string(hide_password=True)
        except AttributeError:
            return self.url.split("@")[-1]

    def create_all(self) -> None:
        """Creates missing tables (of every model declared on ``Base``) and checks the version.

        Several processes (gunicorn workers, a sync started next to the service) may do this at
        once on a new database; the loser of that race sees "table already exists" or a duplicate
        version row, so it tries again and then finds everything in place.
        """
        attempts = 5
        for attempt in range(1, attempts + 1):
            try:
                self._create_all_once()
                return
            except SQLAlchemyError:
                if attempt == attempts:
                    with self._errors("create the state tables"):
                        raise
                time.sleep(0.05 * attempt)

    def _create_all_once(self) -> None:
        Base.metadata.create_all(self.engine)
        with self._sessions.begin() as session:
            row = session.get(StateMeta, "schema_version")
            if row is None:
                session.add(StateMeta(key="schema_version", value=str(SCHEMA_VERSION)))
            elif int(row.value) > SCHEMA_VERSION:
                raise StateError(
                    f"the state store {self.safe_url} was written by a newer fhir-cml "
                    f"(schema {row.value}, this one knows {SCHEMA_VERSION})"
                )

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction (committed on success), for other faces' tables."""
        with self._errors("use the state store"), self._sessions.begin() as session:
            yield session

    # --- sync: servers and runs --------------------------------------------------------------

    def high_water_mark(self, server: str) -> datetime | None:
        with self.session() as session:
            row = session.get(SyncServer, server)
            return row.high_water_mark if row else None

    def last_reading(self, server: str) -> tuple[str, date] | None:
        """(settings digest, as-of date) of the last successful run of ``server``, if any."""
        with self.session() as session:
            row = session.get(SyncReading, server)
            return (row.settings, row.as_of) if row else None

    def begin_run(self, server: str, *, mode: str, since: datetime | None, dry_run: bool) -> int:
        with self.session() as session:
            run = SyncRun(server=server, mode=mode, since=since, dry_run=dry_run)
            session.add(run)
            session.flush()
            return run.id

    def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        counts: dict[str, Any],
        message: str | None = None,
        high_water_mark: datetime | None = None,
        reading: tuple[str, date] | None = None,
    ) -> None:
        """Closes a run; an ``ok`` run that is not a dry run moves the server's mark forward
        and remembers what it read with (``reading``: settings digest and as-of date)."""
        with self.session() as session:
            run = session.get(SyncRun, run_id)
            if run is None:
                raise StateError(f"no run {run_id} in the state store")
            run.status = status
            run.finished_at = utcnow()
            run.counts = counts
            run.message = message
            run.high_water_mark = high_water_mark
            if status == "ok" and not run.dry_run and high_water_mark is not None:
                server = session.get(SyncServer, run.server)
                if server is None:
                    server = SyncServer(server=run.server)
                    session.add(server)
                server.high_water_mark = high_water_mark
                server.last_success_run = run_id
                server.updated_at = utcnow()
            if status == "ok" and not run.dry_run and reading is not None:
                row = session.get(SyncReading, run.server)
                if row is None:
                    row = SyncReading(server=run.server)
                    session.add(row)
                row.settings, row.as_of = reading
                row.updated_at = utcnow()

    def runs(self, server: str | None = None, limit: int = 20) -> list[RunRecord]:
        """The latest runs, newest first."""
        with self.session() as session:
            query = select(SyncRun).order_by(SyncRun.id.desc()).limit(limit)
            if server:
                query = query.where(SyncRun.server == server)
            return [_run(r) for r in session.scalars(query)]

    @contextmanager
    def run_lock(self, server: str) -> Iterator[None]:
        """Held by the one sync of ``server`` that may run on this store at a time.

        Without it a second run (a nightly job still going when the next starts) would take
        the first for a killed one, and both would write. The lock is the operating system's
        (a file lock next to a SQLite database) or PostgreSQL's (a session advisory lock), so
        a killed process never leaves it behind.
        """
        key = hashlib.sha256(f"fhir-cml sync {server}".encode()).digest()
        busy = SyncAlreadyRunning(
            f"another fhir-cml sync of {server} is running on the state store {self.safe_url}; "
            "this run did nothing (run it again when that one has finished)"
        )
        dialect = self.engine.dialect.name
        database = self.engine.url.database
        if dialect == "sqlite" and database and database != ":memory:":
            lock_path = Path(f"{database}.sync-{key[:8].hex()}.lock")
            try:
                handle = lock_path.open("a")
            except OSError as err:
                raise StateError(f"cannot create the lock file {lock_path}: {err}") from None
            with handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise busy from None
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        elif dialect == "postgresql":
            number = int.from_bytes(key[:8], "big", signed=True)
            with self._errors("lock the state store"):
                connection = self.engine.connect()
            try:
                with self._errors("lock the state store"):
                    locked = connection.scalar(
                        text("SELECT pg_try_advisory_lock(:key)"), {"key": number}
                    )
                    connection.commit()
                if not locked:
                    raise busy
                try:
                    yield
                finally:
                    try:
                        connection.scalar(text("SELECT pg_advisory_unlock(:key)"), {"key": number})
                        connection.commit()
                    except SQLAlchemyError:
                        connection.invalidate()  # the session ends, and the lock with it
            finally:
                connection.close()
        else:
            yield  # an in-memory database lives in one process

    def abandon_stale_runs(self, server: str) -> int:
        """Marks runs left ``running`` by a killed process as ``interrupted``; returns how many."""
        with self.session() as session:
            result = session.execute(
                update(SyncRun)
                .where(SyncRun.server == server, SyncRun.status == "running")
                .values(status="interrupted", finished_at=utcnow())
            )
            return int(getattr(result, "rowcount", 0) or 0)

    # --- sync: patients ----------------------------------------------------------------------

    def patients(
        self, server: str, patient_ids: Iterable[str] | None = None
    ) -> dict[str, PatientState]:
        """Stored state of the given patients (all of the server's when None)."""
        with self.session() as session:
            if patient_ids is None:
                rows = session.scalars(select(SyncPatient).where(SyncPatient.server == server))
                return {r.patient_id: _patient(r) for r in rows}
            found: dict[str, PatientState] = {}
            for chunk in _chunks(sorted(set(patient_ids)), IN_CLAUSE):
                rows = session.scalars(
                    select(SyncPatient).where(
                        SyncPatient.server == server, SyncPatient.patient_id.in_(chunk)
                    )
                )
                found.update({r.patient_id: _patient(r) for r in rows})
            return found

    def record_patients(self, server: str, run_id: int, updates: Iterable[PatientUpdate]) -> None:
        """Stores what a run learnt, in one database transaction."""
        by_id = {u.patient_id: u for u in updates}
        if not by_id:
            return
        now = utcnow()
        with self.session() as session:
            existing: dict[str, SyncPatient] = {}
            for chunk in _chunks(sorted(by_id), IN_CLAUSE):
                rows = session.scalars(
                    select(SyncPatient).where(
                        SyncPatient.server == server, SyncPatient.patient_id.in_(chunk)
                    )
                )
                existing.update({r.patient_id: r for r in rows})
            for patient_id, change in by_id.items():
                row = existing.get(patient_id)
                if row is None:
                    row = SyncPatient(server=server, patient_id=patient_id)
                    session.add(row)
                row.status = change.status
                row.reason = change.reason
                row.run_id = run_id
                row.updated_at = now
                for name in (
                    "input_fingerprint",
                    "assessment_fingerprint",
                    "risk_assessment",
                    "care_plan",
                    "assessed_as_of",
                    "recheck_on",
                ):
                    value = getattr(change, name)
                    if value is not None:
                        setattr(row, name, value)

    # --- helpers -----------------------------------------------------------------------------

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except StateError:
            raise
        except SQLAlchemyError as err:
            detail = str(getattr(err, "orig", None) or err).splitlines()[0]
            raise StateError(f"cannot {doing} ({self.safe_url}): {detail}") from None


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    # The busy timeout first: switching to WAL takes a lock another process may be holding.
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _patient(row: SyncPatient) -> PatientState:
    return PatientState(
        row.patient_id,
        row.status,
        row.reason,
        row.input_fingerprint,
        row.assessment_fingerprint,
        row.risk_assessment,
        row.care_plan,
        row.assessed_as_of,
        row.recheck_on,
    )


def _run(row: SyncRun) -> RunRecord:
    return RunRecord(
        row.id,
        row.server,
        row.status,
        row.mode,
        row.dry_run,
        row.started_at,
        row.finished_at,
        row.since,
        row.high_water_mark,
        row.counts,
        row.message,
    )
