"""Tables of the state store (SQLAlchemy 2 declarative models).

Every face shares one :class:`Base`: a module that needs its own table (the SMART app's
sessions, the CDS service's feedback and JWT replay cache) declares a model on ``Base`` and
imports it before :meth:`fhir_cml.state.StateStore.create_all`. Table names are prefixed by
their owner (``sync_``, ``smart_``, ``cds_``) so they cannot collide.

Times are stored as UTC and come back timezone-aware, on SQLite as on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Integer, String, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA_VERSION = 1


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp kept in UTC; naive values are refused rather than guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the state store; use an aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """The declarative base of every state table."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime, dict[str, Any]: JSON}


class StateMeta(Base):
    """Key/value facts about the store itself, e.g. ``schema_version``."""

    __tablename__ = "state_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class SyncServer(Base):
    """One FHIR server (by normalised base URL): where the next incremental run starts."""

    __tablename__ = "sync_server"

    server: Mapped[str] = mapped_column(String(512), primary_key=True)
    # The server's clock at the start of the last successful run, less a safety overlap.
    high_water_mark: Mapped[datetime | None]
    last_success_run: Mapped[int | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SyncReading(Base):
    """What the last successful run of a scope read with: a digest of the settings that shape a
    reading (ruleset, guideline, rule configuration, conversion factor, translations) and its
    as-of date. A run whose settings differ, or whose as-of date is earlier, reads every patient
    again instead of only those with new data: their inputs did not change, their readings did.
    """

    __tablename__ = "sync_reading"

    server: Mapped[str] = mapped_column(String(512), primary_key=True)
    settings: Mapped[str] = mapped_column(String(64))
    as_of: Mapped[date]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SyncPatient(Base):
    """What was last read and written for one patient of one server.

    ``input_fingerprint`` covers the patient's inputs and the settings that shape the reading;
    an unchanged fingerprint means nothing to reassess. ``assessment_fingerprint`` and the two
    references name the suggestion last written (the one a changed assessment supersedes).
    ``status`` is ``ok``, ``skipped`` (``reason`` says why) or ``failed`` (``reason`` is the
    error, retried on the next run).
    """

    __tablename__ = "sync_patient"

    server: Mapped[str] = mapped_column(String(512), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    input_fingerprint: Mapped[str | None] = mapped_column(String(64))
    assessment_fingerprint: Mapped[str | None] = mapped_column(String(64))
    risk_assessment: Mapped[str | None] = mapped_column(String(256))
    care_plan: Mapped[str | None] = mapped_column(String(256))
    assessed_as_of: Mapped[date | None]
    recheck_on: Mapped[date | None]
    run_id: Mapped[int | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SyncRun(Base):
    """The run log: one row per ``fhir-cml sync``, with its outcome and counts."""

    __tablename__ = "sync_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    server: Mapped[str] = mapped_column(String(512), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    # running | ok | failed | interrupted
    status: Mapped[str] = mapped_column(String(16), default="running")
    mode: Mapped[str] = mapped_column(String(16))  # search | bulk
    dry_run: Mapped[bool] = mapped_column(default=False)
    since: Mapped[datetime | None]
    high_water_mark: Mapped[datetime | None]
    counts: Mapped[dict[str, Any] | None]
    message: Mapped[str | None] = mapped_column(Text)
