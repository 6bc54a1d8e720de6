"""The CDS Hooks service's tables: the cards issued, their feedback, and the JWT ids seen
(replay protection).

All live in the shared state store, so every worker process of the service (and every replica
on PostgreSQL) sees the same: a token accepted by one worker is refused by all others, and
feedback is taken for a card whichever worker issued it. A ``jti`` is kept until its token
expires (plus the leeway), a card's id (with its suggestions' ids, the service and the EHR it
was issued to) for ``card_days``; then they are purged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, Text, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from fhir_cml.state.schema import Base, utcnow
from fhir_cml.state.store import StateStore

MAX_JTI = 256
PURGE_EVERY = 60.0  # seconds between purges of expired rows, per process
CARD_DAYS = 30  # how long feedback is taken for a card


class CdsJwtId(Base):
    """A JWT id (``jti``) already accepted from an issuer, kept until the token expires."""

    __tablename__ = "cds_jwt_jti"

    issuer: Mapped[str] = mapped_column(String(512), primary_key=True)
    jti: Mapped[str] = mapped_column(String(MAX_JTI), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class CdsFeedback(Base):
    """One feedback item from an EHR: a card accepted (with suggestions) or overridden."""

    __tablename__ = "cds_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(64), index=True)
    card: Mapped[str] = mapped_column(String(128), index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # accepted | overridden
    accepted_suggestions: Mapped[dict[str, Any] | None]
    override_system: Mapped[str | None] = mapped_column(String(512))
    override_code: Mapped[str | None] = mapped_column(String(128))
    override_display: Mapped[str | None] = mapped_column(Text)
    user_comment: Mapped[str | None] = mapped_column(Text)
    outcome_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    issuer: Mapped[str | None] = mapped_column(String(512))
    tenant: Mapped[str | None] = mapped_column(String(256))


class CdsCard(Base):
    """A card the service issued: feedback is taken only for these, from the EHR it went to."""

    __tablename__ = "cds_card"

    card: Mapped[str] = mapped_column(String(64), primary_key=True)
    service: Mapped[str] = mapped_column(String(64))
    issuer: Mapped[str] = mapped_column(String(512))
    suggestions: Mapped[dict[str, Any] | None]
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


@dataclass(frozen=True, slots=True)
class IssuedCard:
    """A card as issued: its id and the ids of its suggestions."""

    card: str
    suggestions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Feedback:
    """One feedback item as received (validated by the web face)."""

    card: str
    outcome: str
    outcome_at: datetime
    accepted_suggestions: tuple[str, ...] = ()
    override_system: str | None = None
    override_code: str | None = None
    override_display: str | None = None
    user_comment: str | None = None


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    service: str
    card: str
    outcome: str
    outcome_at: datetime
    received_at: datetime
    accepted_suggestions: tuple[str, ...]
    override_code: str | None
    override_system: str | None
    user_comment: str | None
    issuer: str | None
    tenant: str | None


class CdsState:
    """The CDS tables on a :class:`StateStore` (thread-safe; one per process)."""

    def __init__(self, store: StateStore, clock: Any = time.monotonic) -> None:
        self.store = store
        self._clock = clock
        self._last_purge = float("-inf")
        self._lock = threading.Lock()

    def remember_jti(self, issuer: str, jti: str, expires_at: datetime, now: datetime) -> bool:
        """Records a token id; False when it was seen before (a replay).

        One ``INSERT ... ON CONFLICT DO NOTHING``: atomic across threads and processes.
        """
        if len(jti) > MAX_JTI or len(issuer) > 512:
            return False
        self._purge(now)
        with self.store.session() as session:
            dialect = session.get_bind().dialect.name
            module: Any = postgresql if dialect == "postgresql" else sqlite
            statement = (
                module.insert(CdsJwtId)
                .values(issuer=issuer, jti=jti, expires_at=expires_at)
                .on_conflict_do_nothing()
            )
            result = session.execute(statement)
            return int(getattr(result, "rowcount", 0) or 0) == 1

    def _purge(self, now: datetime) -> None:
        with self._lock:
            tick = self._clock()
            if tick - self._last_purge < PURGE_EVERY:
                return
            self._last_purge = tick
        with self.store.session() as session:
            session.execute(delete(CdsJwtId).where(CdsJwtId.expires_at < now))
            session.execute(delete(CdsCard).where(CdsCard.expires_at < now))

    def remember_cards(
        self,
        service: str,
        issuer: str,
        cards: Sequence[IssuedCard],
        now: datetime,
        days: int = CARD_DAYS,
    ) -> None:
        """Records the cards of one answer (one transaction), so that their feedback is taken."""
        if not cards:
            return
        self._purge(now)
        expires = now + timedelta(days=days)
        rows = [
            {
                "card": card.card,
                "service": service,
                "issuer": issuer,
                "suggestions": {"ids": list(card.suggestions)} if card.suggestions else None,
                "issued_at": now,
                "expires_at": expires,
            }
            for card in cards
        ]
        with self.store.session() as session:
            session.execute(insert(CdsCard), rows)  # one statement, no ORM objects

    def issued(
        self, service: str, issuer: str, cards: Sequence[str], now: datetime
    ) -> dict[str, IssuedCard]:
        """Of ``cards``, those this service issued to ``issuer`` and still takes feedback for."""
        wanted = sorted({c for c in cards if len(c) <= 64})
        if not wanted:
            return {}
        with self.store.session() as session:
            rows = session.scalars(
                select(CdsCard).where(
                    CdsCard.card.in_(wanted),
                    CdsCard.service == service,
                    CdsCard.issuer == issuer,
                    CdsCard.expires_at >= now,
                )
            )
            return {
                row.card: IssuedCard(row.card, tuple((row.suggestions or {}).get("ids", ())))
                for row in rows
            }

    def record_feedback(
        self,
        service: str,
        items: Sequence[Feedback],
        *,
        issuer: str | None = None,
        tenant: str | None = None,
    ) -> int:
        """Stores the items of one feedback request in one transaction; returns how many."""
        with self.store.session() as session:
            for item in items:
                session.add(
                    CdsFeedback(
                        service=service,
                        card=item.card,
                        outcome=item.outcome,
                        accepted_suggestions=(
                            {"ids": list(item.accepted_suggestions)}
                            if item.accepted_suggestions
                            else None
                        ),
                        override_system=item.override_system,
                        override_code=item.override_code,
                        override_display=item.override_display,
                        user_comment=item.user_comment,
                        outcome_at=item.outcome_at,
                        issuer=issuer,
                        tenant=tenant,
                    )
                )
        return len(items)

    def feedback(self, service: str | None = None, limit: int = 100) -> list[FeedbackRecord]:
        """The latest feedback, newest first."""
        with self.store.session() as session:
            query = select(CdsFeedback).order_by(CdsFeedback.id.desc()).limit(limit)
            if service:
                query = query.where(CdsFeedback.service == service)
            return [
                FeedbackRecord(
                    row.service,
                    row.card,
                    row.outcome,
                    row.outcome_at,
                    row.received_at,
                    tuple((row.accepted_suggestions or {}).get("ids", ())),
                    row.override_code,
                    row.override_system,
                    row.user_comment,
                    row.issuer,
                    row.tenant,
                )
                for row in session.scalars(query)
            ]
