"""The SMART app's tables: launch sessions (with the EHR's tokens) and clinicians' decisions.

One row per launch: a browser with two patients open in two tabs has two rows, each with its
own patient, tokens and CSRF token. A row is keyed by the SHA-256 of the launch id (carried in
the page's URL) and bound to the browser by the SHA-256 of its cookie; both are needed to use it,
and a copy of the database hands out neither. Tokens never reach the browser. Sessions live in
the shared state store (SQLite by default, PostgreSQL when configured), so every worker process
and replica of the service sees the same ones. The policy (what expires when, which cookie) is
the web face's (:mod:`fhir_cml.web.smart.sessions`); this module only stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

from sqlalchemy import Integer, String, Text, and_, delete, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from fhir_cml.state.schema import Base, utcnow
from fhir_cml.state.store import StateStore


class SmartSession(Base):
    """One launch's session: ``pending`` while the EHR signs the user in, then ``active``
    (``demo`` in demo mode, without an EHR: one per browser)."""

    __tablename__ = "smart_launch"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the launch id
    browser: Mapped[str] = mapped_column(String(64), index=True)  # SHA-256 of the cookie value
    kind: Mapped[str] = mapped_column(String(16))  # pending | active | demo
    iss: Mapped[str | None] = mapped_column(String(1024))
    launch: Mapped[str | None] = mapped_column(Text)
    standalone: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str | None] = mapped_column(String(128))  # OAuth state, NULL once used
    code_verifier: Mapped[str | None] = mapped_column(String(128))
    authorize_endpoint: Mapped[str | None] = mapped_column(String(1024))
    token_endpoint: Mapped[str | None] = mapped_column(String(1024))
    issuer: Mapped[str | None] = mapped_column(String(1024))  # the OpenID issuer, when known
    access_token: Mapped[str | None] = mapped_column(Text)
    refresh_token: Mapped[str | None] = mapped_column(Text)
    token_expires_at: Mapped[datetime | None]
    scope: Mapped[str | None] = mapped_column(Text)
    patient: Mapped[str | None] = mapped_column(String(128))
    fhir_user: Mapped[str | None] = mapped_column(String(1024))
    user_name: Mapped[str | None] = mapped_column(String(256))  # the fhirUser's name, when read
    patient_name: Mapped[str | None] = mapped_column(String(256))  # as the page last showed it
    as_of: Mapped[date | None]
    csrf_token: Mapped[str] = mapped_column(String(64))
    flash: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)  # the absolute limit


class SmartDecision(Base):
    """A clinician's answer to a proposal: accepted (written to the EHR) or dismissed, and why."""

    __tablename__ = "smart_decision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    iss: Mapped[str] = mapped_column(String(1024), index=True)
    patient: Mapped[str] = mapped_column(String(128), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # accepted | dismissed
    reason: Mapped[str | None] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(Text)
    recommendations: Mapped[dict[str, Any] | None]
    result: Mapped[dict[str, Any] | None]
    user: Mapped[str | None] = mapped_column(String(1024))
    at: Mapped[datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A snapshot of a :class:`SmartSession` row (``id`` is the hashed key)."""

    id: str
    browser: str
    kind: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    iss: str | None = None
    launch: str | None = None
    standalone: bool = False
    state: str | None = None
    code_verifier: str | None = None
    authorize_endpoint: str | None = None
    token_endpoint: str | None = None
    issuer: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    token_expires_at: datetime | None = None
    scope: str | None = None
    patient: str | None = None
    fhir_user: str | None = None
    user_name: str | None = None
    patient_name: str | None = None
    as_of: date | None = None
    flash: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    kind: str
    fingerprint: str
    at: datetime
    reason: str | None
    comment: str | None
    recommendations: tuple[str, ...]
    result: dict[str, Any] | None
    user: str | None
    user_name: str | None = None

    @property
    def user_label(self) -> str:
        """Who decided, in words: the name, else the reference."""
        if self.user_name:
            return self.user_name
        return "/".join(self.user.rstrip("/").split("/")[-2:]) if self.user else ""


_SESSION_FIELDS = tuple(f.name for f in fields(SessionRecord))


class SmartState:
    """The SMART tables on a :class:`StateStore` (thread-safe: each call is one transaction)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    # --- sessions ----------------------------------------------------------------------------

    def add_session(self, record: SessionRecord) -> None:
        with self.store.session() as session:
            session.add(SmartSession(**{name: getattr(record, name) for name in _SESSION_FIELDS}))

    def get_session(self, key: str) -> SessionRecord | None:
        with self.store.session() as session:
            row = session.get(SmartSession, key)
            return _record(row) if row is not None else None

    def update_session(self, key: str, **values: Any) -> bool:
        """Sets columns of one session; False when it no longer exists."""
        unknown = set(values) - set(_SESSION_FIELDS)
        if unknown:
            raise ValueError(f"no such session fields: {', '.join(sorted(unknown))}")
        with self.store.session() as session:
            result = session.execute(
                update(SmartSession).where(SmartSession.id == key).values(**values)
            )
            return int(getattr(result, "rowcount", 0) or 0) == 1

    def take_flash(self, key: str) -> dict[str, Any] | None:
        """The message left for the next page view, removed as it is read."""
        with self.store.session() as session:
            row = session.get(SmartSession, key)
            if row is None or row.flash is None:
                return None
            flash = dict(row.flash)
            row.flash = None
            return flash

    def take_pending(self, browser: str, state: str) -> SessionRecord | None:
        """The browser's pending sign-in that sent ``state``, its state marked used; None when
        there is none or the state was used already. The state is cleared by one conditional
        UPDATE, so two callbacks racing cannot both have it."""
        with self.store.session() as session:
            key = session.scalar(
                select(SmartSession.id).where(
                    SmartSession.browser == browser,
                    SmartSession.kind == "pending",
                    SmartSession.state == state,
                )
            )
            if key is None:
                return None
            result = session.execute(
                update(SmartSession)
                .where(SmartSession.id == key, SmartSession.state == state)
                .values(state=None)
            )
            if int(getattr(result, "rowcount", 0) or 0) != 1:
                return None
            row = session.get(SmartSession, key)
            return _record(row) if row is not None else None

    def browser_sessions(self, browser: str, kind: str | None = None) -> list[SessionRecord]:
        """The browser's sessions (of one kind), oldest first."""
        with self.store.session() as session:
            query = select(SmartSession).where(SmartSession.browser == browser)
            if kind is not None:
                query = query.where(SmartSession.kind == kind)
            rows = session.scalars(query.order_by(SmartSession.created_at, SmartSession.id))
            return [_record(row) for row in rows]

    def delete_session(self, key: str) -> None:
        with self.store.session() as session:
            session.execute(delete(SmartSession).where(SmartSession.id == key))

    def purge(self, now: datetime, idle_since: datetime) -> int:
        """Deletes sessions past their absolute limit, and signed-in ones idle since before
        ``idle_since`` (a pending sign-in has only its absolute limit)."""
        with self.store.session() as session:
            result = session.execute(
                delete(SmartSession).where(
                    or_(
                        SmartSession.expires_at <= now,
                        and_(
                            SmartSession.kind != "pending",
                            SmartSession.last_seen_at < idle_since,
                        ),
                    )
                )
            )
            return int(getattr(result, "rowcount", 0) or 0)

    # --- decisions ---------------------------------------------------------------------------

    def record_decision(
        self,
        *,
        iss: str,
        patient: str,
        fingerprint: str,
        kind: str,
        recommendations: Sequence[str],
        reason: str | None = None,
        comment: str | None = None,
        result: dict[str, Any] | None = None,
        user: str | None = None,
        user_name: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """Records a decision; the decider's name is kept beside the suggestion codes (the
        ``recommendations`` JSON), so stores made before it was recorded need no new column."""
        with self.store.session() as session:
            session.add(
                SmartDecision(
                    iss=iss,
                    patient=patient,
                    fingerprint=fingerprint,
                    kind=kind,
                    reason=reason,
                    comment=comment,
                    recommendations={"codes": list(recommendations), "user_name": user_name},
                    result=result,
                    user=user,
                    at=at or utcnow(),
                )
            )

    def decisions(self, iss: str, patient: str, limit: int = 20) -> list[DecisionRecord]:
        """The patient's latest decisions at this EHR, newest first."""
        with self.store.session() as session:
            rows = session.scalars(
                select(SmartDecision)
                .where(SmartDecision.iss == iss, SmartDecision.patient == patient)
                .order_by(SmartDecision.id.desc())
                .limit(limit)
            )
            return [
                DecisionRecord(
                    row.kind,
                    row.fingerprint,
                    row.at,
                    row.reason,
                    row.comment,
                    tuple((row.recommendations or {}).get("codes", ())),
                    row.result,
                    row.user,
                    (row.recommendations or {}).get("user_name"),
                )
                for row in rows
            ]


def _record(row: SmartSession) -> SessionRecord:
    return SessionRecord(**{name: getattr(row, name) for name in _SESSION_FIELDS})
