"""Joined-up transactions: a journey (one citizen request) and its legs (routed submissions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models import Base, UTCDateTime

# Journey states: in progress until every leg (and any compensation) is final.
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
COMPLETED_WITH_COMPENSATION = "completed_with_compensation"
FAILED = "failed"
FINAL_JOURNEY_STATES = (COMPLETED, COMPLETED_WITH_COMPENSATION, FAILED)
# Only ever in a test-in-live answer: a journey checked, never stored or run.
CHECKED_NOT_PROCESSED = "checked_not_processed"

# Leg states. 'skipped': never started because an earlier leg failed.
PENDING = "pending"
SUBMITTED = "submitted"
SUCCEEDED = "succeeded"
LEG_FAILED = "failed"
COMPENSATED = "compensated"
SKIPPED = "skipped"
ACTIVE_LEG_STATES = (PENDING, SUBMITTED)


class Journey(Base):
    __tablename__ = "journeys"

    correlation_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # the journey definition, e.g. change-of-address
    class_: Mapped[str] = mapped_column("class", String(40))  # the DSP class that carries it
    sender_id: Mapped[str] = mapped_column(String(64))
    auth_method: Mapped[str] = mapped_column(String(16))
    auth_level: Mapped[float] = mapped_column(Float, default=0)
    channel: Mapped[str] = mapped_column(String(8))  # "dsp" | "api"
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(32), default=IN_PROGRESS)
    explanation: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_journeys_state", "state"),
        Index("ix_journeys_sender", "sender_id"),
    )


class JourneyLeg(Base):
    __tablename__ = "journey_legs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    journey_id: Mapped[str] = mapped_column(
        ForeignKey("journeys.correlation_id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer)  # main legs 0.., compensations 100..
    name: Mapped[str] = mapped_column(String(40))
    class_: Mapped[str] = mapped_column("class", String(40))
    organisation: Mapped[str] = mapped_column(String(64))
    policy: Mapped[str] = mapped_column(String(16))  # required | retry | compensate
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    compensates: Mapped[int | None] = mapped_column(Integer)  # position of the leg it undoes
    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    correlation_id: Mapped[str | None] = mapped_column(String(32))  # the current attempt's
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    outcome: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_journey_legs_journey", "journey_id", "position", unique=True),)
