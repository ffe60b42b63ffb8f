"""Webhooks: payment events POSTed to configured URLs, signed, retried on a fixed schedule.

Each event is queued as one delivery per configured URL, in the same transaction as the change
that raised it (an outbox), and sent by the background sender. A request is

    POST <url>
    Content-Type: application/json
    Gateway-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes, keyed by the URL's secret>
    Gateway-Event-Id: <event id>          (the same on every attempt: deduplicate on it)
    Gateway-Delivery-Attempt: <1, 2, ...>

    {"id": "<event id>", "type": "payment.succeeded", "created": "<ISO 8601>", "payment": {...}}

Any 2xx answer is success. Otherwise (status, timeout, connection error) the attempt is recorded
and the next is scheduled 1 min, 5 min, 1 h, 1 day, then 2 days after the failed attempt; after the
sixth failure the delivery is marked failed. Delivery is at-least-once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import WebhookConfig
from gateway.store.claims import claim
from gateway.store.engine import Database
from gateway.store.payment_models import (
    DELIVERY_DELIVERED,
    DELIVERY_FAILED,
    DELIVERY_PENDING,
    WebhookAttemptRow,
    WebhookDeliveryRow,
)

log = structlog.get_logger("gateway.payments.webhooks")

SIGNATURE_HEADER = "Gateway-Signature"
# A claimed delivery is another hub's again this long after its send would have timed out.
CLAIM_MARGIN = timedelta(seconds=30)
RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=2),
)


def sign(secret: str, body: bytes) -> str:
    """The Gateway-Signature header value for a body."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, body: bytes, header: str) -> bool:
    """For receivers: does the header sign this body with this secret?"""
    return hmac.compare_digest(sign(secret, body), header.strip())


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")


def next_after(failures: int, attempted_at: datetime) -> datetime | None:
    """When to try again after this many failed attempts; None when the schedule is used up."""
    if failures > len(RETRY_SCHEDULE):
        return None
    return attempted_at + RETRY_SCHEDULE[failures - 1]


def queue(
    session: AsyncSession,
    hooks: Sequence[WebhookConfig],
    event_id: str,
    event_type: str,
    payload: dict[str, Any],
    now: datetime,
) -> None:
    """Add one delivery per configured URL (inside the caller's transaction)."""
    for hook in hooks:
        session.add(
            WebhookDeliveryRow(
                event_id=event_id,
                event_type=event_type,
                url=hook.url,
                payload=payload,
                state=DELIVERY_PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )


class WebhookSender:
    """Sends due deliveries; one pass at a time (the service serialises its passes)."""

    def __init__(
        self,
        db: Database,
        hooks: Sequence[WebhookConfig],
        clock: Callable[[], datetime],
        *,
        timeout: float = 10,
    ) -> None:
        self.db = db
        self.secrets = {h.url: h.secret for h in hooks}
        self.clock = clock
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send_due(self, limit: int = 100) -> int:
        """Attempt every delivery that is due and this hub claimed; how many were attempted."""
        now = self.clock()
        async with self.db.read() as session:
            due = (
                await session.scalars(
                    select(WebhookDeliveryRow)
                    .where(
                        WebhookDeliveryRow.state == DELIVERY_PENDING,
                        WebhookDeliveryRow.next_attempt_at <= now,
                    )
                    .order_by(WebhookDeliveryRow.next_attempt_at, WebhookDeliveryRow.id)
                    .limit(limit)
                )
            ).all()
        claimed = await self._claim(due, now)
        for delivery in claimed:
            await self._attempt(delivery)
        return len(claimed)

    async def _claim(
        self, due: Sequence[WebhookDeliveryRow], now: datetime
    ) -> list[WebhookDeliveryRow]:
        """The due deliveries this hub claimed (gateway.store.claims): no other hub sends them."""
        if not due:
            return []
        until = now + timedelta(seconds=self.timeout) + CLAIM_MARGIN
        async with self.db.transaction() as session:
            ids = await claim(
                session,
                WebhookDeliveryRow,
                WebhookDeliveryRow.id,
                WebhookDeliveryRow.next_attempt_at,
                [(d.id, d.next_attempt_at) for d in due],
                until,
                WebhookDeliveryRow.state == DELIVERY_PENDING,
            )
        return [d for d in due if d.id in ids]

    async def _attempt(self, delivery: WebhookDeliveryRow) -> None:
        number = delivery.attempts + 1
        body = encode(delivery.payload)
        secret = self.secrets.get(delivery.url)
        status: int | None = None
        error: str | None = None
        if secret is None:
            error = "the URL is no longer configured under [payments] webhooks"
        else:
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(secret, body),
                "Gateway-Event-Id": delivery.event_id,
                "Gateway-Delivery-Attempt": str(number),
            }
            if self._session is None:
                self._session = aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=self.timeout)
                )
            try:
                async with self._session.post(delivery.url, data=body, headers=headers) as resp:
                    status = resp.status
                    await resp.read()
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
        attempted_at = self.clock()
        next_at = None if error is None else next_after(number, attempted_at)
        async with self.db.transaction() as session:
            row = await session.get(WebhookDeliveryRow, delivery.id)
            if row is None or row.state != DELIVERY_PENDING:
                return
            row.attempts = number
            session.add(
                WebhookAttemptRow(
                    delivery_id=row.id,
                    number=number,
                    attempted_at=attempted_at,
                    status_code=status,
                    error=error,
                    next_attempt_at=next_at,
                )
            )
            if error is None:
                row.state = DELIVERY_DELIVERED
                row.delivered_at = attempted_at
                row.next_attempt_at = None
            elif next_at is None:
                row.state = DELIVERY_FAILED
                row.next_attempt_at = None
            else:
                row.next_attempt_at = next_at
        log.info(
            "payments.webhook_attempt",
            delivery=delivery.id,
            event_type=delivery.event_type,
            attempt=number,
            status=status,
            error=error,
        )


async def list_attempts(db: Database, limit: int = 500) -> list[dict[str, Any]]:
    """Every recorded attempt, newest first, with its delivery's event and URL."""
    async with db.read() as session:
        rows = (
            await session.execute(
                select(WebhookAttemptRow, WebhookDeliveryRow)
                .join(WebhookDeliveryRow, WebhookDeliveryRow.id == WebhookAttemptRow.delivery_id)
                .order_by(WebhookAttemptRow.id.desc())
                .limit(limit)
            )
        ).all()
    return [
        {
            "id": attempt.id,
            "delivery_id": delivery.id,
            "event_id": delivery.event_id,
            "event_type": delivery.event_type,
            "url": delivery.url,
            "attempt": attempt.number,
            "attempted_at": attempt.attempted_at.isoformat(),
            "status_code": attempt.status_code,
            "error": attempt.error,
            "next_attempt_at": (
                attempt.next_attempt_at.isoformat() if attempt.next_attempt_at else None
            ),
            "delivery_state": delivery.state,
        }
        for attempt, delivery in rows
    ]
