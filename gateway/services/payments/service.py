"""The payment service: create (idempotent), the hosted page's card step, cancel, refund,
expiry of abandoned payments, the council's notification and the webhook outbox.

Every state change goes through lifecycle.check and queues its webhook event in the same
transaction. A success, and a refund, also make a notice to the council's connector pending
(PaymentReceiver, RefundReceiver; gateway/services/payments/notices.py); it is attempted at once
and retried by the background pass until the connector accepts it or it is given up on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

import structlog
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from connectors.protocol import (
    PaymentNotification,
    PaymentReceiver,
    RefundNotification,
    RefundReceiver,
)
from gateway.audit.log import audit
from gateway.config import PaymentsConfig
from gateway.errors import ProblemError
from gateway.routing.registry import ConnectorSet
from gateway.routing.table import RouteTable
from gateway.services.payments import lifecycle, notices, webhooks
from gateway.services.payments.cards import Card
from gateway.store.claims import claim
from gateway.store.engine import Database
from gateway.store.payment_models import (
    NOTIFY_DONE,
    NOTIFY_FAILED,
    NOTIFY_NONE,
    NOTIFY_PENDING,
    IdempotencyKeyRow,
    PaymentRow,
    RefundRow,
)

log = structlog.get_logger("gateway.payments")

MAX_AMOUNT_PENCE = 10_000_000  # £100,000, as GOV.UK Pay
# How long a claimed notification is this hub's before another may send it (a connector call
# that has not returned by then is taken to have failed).
NOTIFY_CLAIM = timedelta(minutes=2)
# The notification `pay` sends itself is claimed for its timeout and this much more: short, so a
# killed hub's payments reach the council soon.
NOTIFY_INLINE_MARGIN = 5


class PaymentError(ProblemError):
    """A payment refusal, answered as problem+json."""


@dataclass(frozen=True, slots=True)
class NewPayment:
    amount_pence: int
    reference: str
    council: str
    description: str
    return_url: str


def new_id(prefix: str = "") -> str:
    return prefix + secrets.token_hex(13)


def body_digest(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def read_new_payment(body: dict[str, Any]) -> NewPayment:
    """The create request's fields, checked (422 naming the field otherwise)."""

    def bad(field: str, detail: str) -> PaymentError:
        return PaymentError(422, "Invalid payment request", detail, field=field)

    amount = body.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise bad("amount", "'amount' must be a whole number of pence")
    if not 1 <= amount <= MAX_AMOUNT_PENCE:
        raise bad("amount", f"'amount' must be from 1 to {MAX_AMOUNT_PENCE} pence")
    fields: dict[str, str] = {}
    for name, limit in (("reference", 64), ("council", 64), ("description", 255)):
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            raise bad(name, f"'{name}' must be a non-empty string")
        if len(value) > limit:
            raise bad(name, f"'{name}' must be at most {limit} characters")
        fields[name] = value.strip()
    return_url = body.get("return_url")
    if not isinstance(return_url, str) or len(return_url) > 2000:
        raise bad("return_url", "'return_url' must be an http(s) URL")
    parts = urlsplit(return_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise bad("return_url", "'return_url' must be an absolute http(s) URL")
    return NewPayment(
        amount, fields["reference"], fields["council"], fields["description"], return_url
    )


def payment_json(row: PaymentRow) -> dict[str, Any]:
    """A payment as the API (and webhook events) show it; never a card number."""
    out: dict[str, Any] = {
        "payment_id": row.id,
        "amount": row.amount_pence,
        "reference": row.reference,
        "council": row.organisation,
        "description": row.description,
        "return_url": row.return_url,
        "state": row.state,
        "finished": row.state in lifecycle.FINAL_STATES,
        "created_date": row.created_at.isoformat(),
    }
    if row.finished_at is not None:
        out["finished_date"] = row.finished_at.isoformat()
    if row.card_last4:
        out["card_details"] = {
            "card_brand": row.card_brand,
            "last_digits_card_number": row.card_last4,
            "cardholder_name": row.cardholder_name,
        }
    if row.failure_code:
        out["failure"] = {"code": row.failure_code, "message": row.failure_message}
    if row.state == lifecycle.SUCCESS:
        out["refund_summary"] = {
            "amount_refunded": row.refunded_pence,
            "amount_available": row.amount_pence - row.refunded_pence,
        }
        out["council_notified"] = row.notify_state == NOTIFY_DONE
        if row.notify_state != NOTIFY_NONE:
            out["council_notification"] = notices.notice_json(row)
    return out


def refund_json(row: RefundRow) -> dict[str, Any]:
    out: dict[str, Any] = {
        "refund_id": row.id,
        "payment_id": row.payment_id,
        "amount": row.amount_pence,
        "state": row.state,
        "created_date": row.created_at.isoformat(),
    }
    if row.notify_state != NOTIFY_NONE:
        out["council_notification"] = notices.notice_json(row)
    return out


class PaymentService:
    def __init__(
        self,
        db: Database,
        config: PaymentsConfig,
        routes: RouteTable,
        connectors: ConnectorSet,
        clock: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.config = config
        self.routes = routes
        self.connectors = connectors
        self.clock = clock
        self.sender = webhooks.WebhookSender(
            db, config.webhooks, clock, timeout=config.webhook_timeout_seconds
        )
        self._give_up = timedelta(hours=config.notify_give_up_hours)
        self.wake = asyncio.Event()
        self._pass_lock = asyncio.Lock()
        self._stopping = False

    # --- councils and their connectors ---------------------------------------------------------

    def councils(self) -> set[str]:
        return {route.organisation for route in self.routes}

    def receiver_for(
        self, organisation: str, kind: notices.NoticeKind = notices.PAYMENT
    ) -> str | None:
        """The name of a connector serving the organisation that takes this kind of notice."""
        for route in self.routes:
            if route.organisation != organisation:
                continue
            found = self.connectors.get(route.connector)
            if found is not None and isinstance(found[0], kind.capability):
                return route.connector
        return None

    # --- create and read -----------------------------------------------------------------------

    async def create(
        self, caller: str, key: str | None, body: dict[str, Any]
    ) -> tuple[PaymentRow, bool]:
        """(payment, created): a repeat of a key with the same body gives the original."""
        request = read_new_payment(body)
        if request.council not in self.councils():
            raise PaymentError(
                422, "Unknown council", f"no council {request.council} is routed at this hub",
                field="council",
            )  # fmt: skip
        digest = body_digest(body)
        for _ in range(3):
            try:
                return await self._create_once(caller, key, digest, request)
            except IntegrityError:
                continue  # another request took the key at the same moment: look again
        raise PaymentError(409, "Conflict", "the Idempotency-Key is being used concurrently")

    async def _create_once(
        self, caller: str, key: str | None, digest: str, request: NewPayment
    ) -> tuple[PaymentRow, bool]:
        now = self.clock()
        async with self.db.transaction() as session:
            if key is not None:
                used = await session.get(IdempotencyKeyRow, (caller, key))
                if used is not None and used.expires_at <= now:
                    await session.delete(used)
                    await session.flush()
                    used = None
                if used is not None:
                    if used.body_sha256 != digest:
                        raise PaymentError(
                            409,
                            "Conflict",
                            "this Idempotency-Key was used with a different request body",
                            payment_id=used.payment_id,
                        )
                    original = await session.get(PaymentRow, used.payment_id)
                    if original is not None:
                        return original, False
                    await session.delete(used)
                    await session.flush()
            payment = PaymentRow(
                id=new_id(),
                caller=caller,
                organisation=request.council,
                reference=request.reference,
                description=request.description,
                amount_pence=request.amount_pence,
                return_url=request.return_url,
                state=lifecycle.CREATED,
                created_at=now,
                updated_at=now,
                refunded_pence=0,
                notify_state=NOTIFY_NONE,
                notify_attempts=0,
            )
            session.add(payment)
            if key is not None:
                session.add(
                    IdempotencyKeyRow(
                        caller=caller,
                        key=key,
                        body_sha256=digest,
                        payment_id=payment.id,
                        created_at=now,
                        expires_at=now + timedelta(hours=self.config.idempotency_hours),
                    )
                )
        audit("payments.created", payment=payment.id, council=request.council)
        return payment, True

    async def get(self, payment_id: str) -> PaymentRow | None:
        async with self.db.read() as session:
            return await session.get(PaymentRow, payment_id)

    async def refunds(self, payment_id: str) -> list[RefundRow]:
        async with self.db.read() as session:
            return list(
                (
                    await session.scalars(
                        select(RefundRow)
                        .where(RefundRow.payment_id == payment_id)
                        .order_by(RefundRow.created_at, RefundRow.id)
                    )
                ).all()
            )

    # --- state changes -------------------------------------------------------------------------

    def _abandoned(self, row: PaymentRow, now: datetime) -> bool:
        limit = timedelta(minutes=self.config.expiry_minutes)
        return row.state in lifecycle.OPEN_STATES and row.created_at + limit <= now

    def _move(self, session: AsyncSession, row: PaymentRow, target: str, now: datetime) -> None:
        lifecycle.check(row.state, target)
        row.state = target
        row.updated_at = now
        if target == lifecycle.STARTED:
            row.started_at = now
        if target in lifecycle.FINAL_STATES:
            row.finished_at = now
        if target == lifecycle.SUCCESS:
            connector = self.receiver_for(row.organisation)
            if connector is not None:
                row.notify_state = NOTIFY_PENDING
                row.notify_connector = connector
                # Claimed by the request that made it succeed (`pay` sends it at once), so a
                # background pass running meanwhile does not send it too; should this hub die
                # first, the claim soon runs out and any hub's pass sends it.
                row.notify_next_at = self._inline_claim(now)
        event = lifecycle.EVENTS.get(target)
        if event is not None:
            self._event(session, event, {"payment": payment_json(row)}, now)

    def _inline_claim(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.config.notify_timeout_seconds + NOTIFY_INLINE_MARGIN)

    def _event(
        self, session: AsyncSession, event_type: str, data: dict[str, Any], now: datetime
    ) -> None:
        if not self.config.webhooks:
            return
        event_id = new_id("evt_")
        payload = {"id": event_id, "type": event_type, "created": now.isoformat(), **data}
        webhooks.queue(session, self.config.webhooks, event_id, event_type, payload, now)

    async def _locked_payment(self, session: AsyncSession, payment_id: str) -> PaymentRow:
        row = await session.get(PaymentRow, payment_id, with_for_update=True)
        if row is None:
            raise PaymentError(404, "Not Found", "no such payment")
        return row

    async def start(self, payment_id: str) -> PaymentRow:
        """The hosted page was opened: created → started (expired first if abandoned)."""
        now = self.clock()
        async with self.db.transaction() as session:
            row = await self._locked_payment(session, payment_id)
            if self._abandoned(row, now):
                self._move(session, row, lifecycle.EXPIRED, now)
            elif row.state == lifecycle.CREATED:
                self._move(session, row, lifecycle.STARTED, now)
        self.wake.set()
        return row

    async def pay(self, payment_id: str, card: Card) -> PaymentRow:
        """The card was entered: the outcome its number stands for."""
        now = self.clock()
        async with self.db.transaction() as session:
            row = await self._locked_payment(session, payment_id)
            if self._abandoned(row, now):
                self._move(session, row, lifecycle.EXPIRED, now)
            else:
                if row.state == lifecycle.CREATED:
                    self._move(session, row, lifecycle.STARTED, now)
                if row.state != lifecycle.STARTED:
                    raise PaymentError(409, "Conflict", f"the payment is already {row.state}")
                outcome = card.outcome()
                row.card_brand = card.brand
                row.card_last4 = card.last4
                row.cardholder_name = card.cardholder_name
                row.failure_code = outcome.failure_code
                row.failure_message = outcome.message
                self._move(session, row, outcome.state, now)
        audit("payments.card", payment=row.id, state=row.state)
        if row.notify_state == NOTIFY_PENDING:
            await self.notify(row.id)
            row = await self.get(row.id) or row
        self.wake.set()
        return row

    async def cancel(self, payment_id: str) -> PaymentRow:
        now = self.clock()
        async with self.db.transaction() as session:
            row = await self._locked_payment(session, payment_id)
            if self._abandoned(row, now):
                self._move(session, row, lifecycle.EXPIRED, now)
            elif not lifecycle.can_move(row.state, lifecycle.CANCELLED):
                raise PaymentError(
                    409, "Conflict", f"a {row.state} payment cannot be cancelled", state=row.state
                )
            else:
                self._move(session, row, lifecycle.CANCELLED, now)
        self.wake.set()
        if row.state != lifecycle.CANCELLED:
            raise PaymentError(409, "Conflict", f"the payment is {row.state}", state=row.state)
        return row

    async def refund(
        self, payment_id: str, amount: Any, caller: str, expected_available: Any = None
    ) -> RefundRow:
        """Refund `amount` pence; with `expected_available` (GOV.UK Pay's
        refund_amount_available) only while that much is still refundable, so a council's retry
        of a refund that was made after all is refused rather than refunded twice."""
        _refund_pence("amount", amount)
        if expected_available is not None:
            _refund_pence("refund_amount_available", expected_available)
        now = self.clock()
        async with self.db.transaction() as session:
            row = await self._locked_payment(session, payment_id)
            if row.state != lifecycle.SUCCESS:
                raise PaymentError(
                    409, "Conflict", f"only a successful payment can be refunded ({row.state})"
                )
            available = row.amount_pence - row.refunded_pence
            if expected_available is not None and expected_available != available:
                raise PaymentError(
                    412,
                    "Refund amount available mismatch",
                    f"{available} pence can still be refunded, not {expected_available}: "
                    "a refund was made meanwhile (a retry of one that went through?)",
                    amount_available=available,
                )
            if amount > available:
                raise PaymentError(
                    422,
                    "Refund amount not available",
                    f"at most {available} pence can still be refunded",
                    amount_available=available,
                )
            refund = RefundRow(
                id=new_id("rfd_"),
                payment_id=row.id,
                amount_pence=amount,
                state="success",
                caller=caller,
                created_at=now,
                notify_state=NOTIFY_NONE,
            )
            connector = self.receiver_for(row.organisation, notices.REFUND)
            if connector is not None:
                # Told at once below, as a payment's success is; the claim covers that attempt.
                refund.notify_state = NOTIFY_PENDING
                refund.notify_connector = connector
                refund.notify_next_at = self._inline_claim(now)
            session.add(refund)
            row.refunded_pence += amount
            row.updated_at = now
            self._event(
                session,
                lifecycle.REFUND_SUCCEEDED,
                {"refund": refund_json(refund), "payment": payment_json(row)},
                now,
            )
        if refund.notify_state == NOTIFY_PENDING:
            await self.notify_refund(refund.id)
            async with self.db.read() as session:
                refund = await session.get(RefundRow, refund.id) or refund
        self.wake.set()
        return refund

    # --- background work ------------------------------------------------------------------------

    async def expire_abandoned(self) -> int:
        now = self.clock()
        cutoff = now - timedelta(minutes=self.config.expiry_minutes)
        async with self.db.transaction() as session:
            # Locked, skipping rows a card step holds: on PostgreSQL an unlocked read let this
            # pass overwrite a success committed meanwhile. A skipped row is either finished by
            # that step or expired by the next pass (or by the step itself, if abandoned).
            rows = (
                await session.scalars(
                    select(PaymentRow)
                    .where(
                        PaymentRow.state.in_(lifecycle.OPEN_STATES),
                        PaymentRow.created_at <= cutoff,
                    )
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                self._move(session, row, lifecycle.EXPIRED, now)
            await session.execute(
                delete(IdempotencyKeyRow).where(IdempotencyKeyRow.expires_at <= now)
            )
        return len(rows)

    async def notify(self, payment_id: str) -> bool:
        """Tell the council's connector about a success; True once it has accepted it."""
        return await self._tell(notices.PAYMENT, payment_id)

    async def notify_refund(self, refund_id: str) -> bool:
        """Tell the council's connector about a refund; True once it has accepted it."""
        return await self._tell(notices.REFUND, refund_id)

    async def _notification(
        self, row: PaymentRow | RefundRow
    ) -> PaymentNotification | RefundNotification | None:
        if isinstance(row, PaymentRow):
            if row.finished_at is None:
                return None
            return PaymentNotification(
                row.id, row.organisation, row.reference, row.amount_pence, row.finished_at
            )
        payment = await self.get(row.payment_id)
        if payment is None:
            return None
        return RefundNotification(
            row.id,
            payment.id,
            payment.organisation,
            payment.reference,
            row.amount_pence,
            row.created_at,
        )

    async def _tell(self, kind: notices.NoticeKind, row_id: str) -> bool:
        async with self.db.read() as session:
            row = cast(PaymentRow | RefundRow | None, await session.get(kind.model, row_id))
        if row is None or row.notify_state != NOTIFY_PENDING:
            return row is not None and row.notify_state == NOTIFY_DONE
        notification = await self._notification(row)
        if notification is None:
            return False
        found = self.connectors.get(row.notify_connector or "")
        error: str | None = None
        connector = found[0] if found is not None else None
        if found is None or not isinstance(connector, kind.capability):
            error = f"connector {row.notify_connector} is not running or takes no {kind.name}s"
        else:
            timeout = self.config.notify_timeout_seconds
            try:
                async with asyncio.timeout(timeout):
                    if isinstance(notification, PaymentNotification):
                        await cast(PaymentReceiver, connector).payment_received(
                            notification, found[1]
                        )
                    else:
                        await cast(RefundReceiver, connector).refund_received(
                            notification, found[1]
                        )
            except TimeoutError:
                error = f"the council's connector did not answer within {timeout:g}s"
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:1000]
        now = self.clock()
        async with self.db.transaction() as session:
            fresh = cast(
                PaymentRow | RefundRow | None,
                await session.get(kind.model, row_id, with_for_update=True),
            )
            if fresh is None or fresh.notify_state != NOTIFY_PENDING:
                return fresh is not None and fresh.notify_state == NOTIFY_DONE
            since = fresh.finished_at if isinstance(fresh, PaymentRow) else fresh.created_at
            gave_up = notices.settle(fresh, error, now, since or now, self._give_up)
            attempts = fresh.notify_attempts
        ids = {kind.name: row_id}
        if isinstance(notification, RefundNotification):
            ids["payment"] = notification.payment_id
        if gave_up:
            audit(
                f"{kind.events}_given_up", outcome="failed", attempts=attempts, error=error, **ids
            )
        elif error is not None:
            log.warning(f"{kind.events}_failed", error=error, **ids)
        return error is None

    async def renotify(self, payment_id: str) -> PaymentRow:
        """Send the council's notification again soon: one given up on, or one still retrying."""
        return cast(PaymentRow, await self._renotify(notices.PAYMENT, payment_id))

    async def renotify_refund(self, refund_id: str) -> RefundRow:
        """The same for a refund's notice."""
        return cast(RefundRow, await self._renotify(notices.REFUND, refund_id))

    async def _renotify(self, kind: notices.NoticeKind, row_id: str) -> PaymentRow | RefundRow:
        async with self.db.transaction() as session:
            row = cast(
                PaymentRow | RefundRow | None,
                await session.get(kind.model, row_id, with_for_update=True),
            )
            if row is None:
                raise PaymentError(404, "Not Found", f"no such {kind.name}")
            if row.notify_state not in (NOTIFY_PENDING, NOTIFY_FAILED):
                told = (
                    "has already accepted it" if row.notify_state == NOTIFY_DONE else "is not told"
                )
                raise PaymentError(
                    409, "Conflict", f"the council {told}: nothing to send for this {kind.name}"
                )
            row.notify_state = NOTIFY_PENDING
            row.notify_next_at = self.clock()
        audit(f"{kind.events}_requested", **{kind.name: row_id})
        self.wake.set()
        return row

    async def notify_due(self) -> int:
        """Send the payment and refund notices due again; how many this hub claimed."""
        sent = 0
        for kind in (notices.PAYMENT, notices.REFUND):
            model, now = kind.model, self.clock()
            async with self.db.read() as session:
                due = (
                    await session.execute(
                        select(model.id, model.notify_next_at).where(
                            model.notify_state == NOTIFY_PENDING, model.notify_next_at <= now
                        )
                    )
                ).all()
            if not due:
                continue
            # Of several hubs sharing the database, the one that claims a notice sends it.
            async with self.db.transaction() as session:
                claimed = await claim(
                    session,
                    model,
                    model.id,
                    model.notify_next_at,
                    [(row_id, next_at) for row_id, next_at in due],
                    now + NOTIFY_CLAIM,
                    model.notify_state == NOTIFY_PENDING,
                )
            for row_id, _ in due:
                if row_id in claimed:
                    await self._tell(kind, row_id)
            sent += len(claimed)
        return sent

    async def run_once(self) -> None:
        """One pass: expire abandoned payments, retry notifications, send due webhooks."""
        async with self._pass_lock:
            for step in (self.expire_abandoned, self.notify_due, self.sender.send_due):
                try:
                    await step()
                except Exception:
                    log.exception("payments.background_failed", step=step.__name__)

    async def run(self) -> None:
        """The background task: a pass every sender_interval_seconds, or at once when woken."""
        while not self._stopping:
            self.wake.clear()
            await self.run_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.config.sender_interval_seconds)

    def stop(self) -> None:
        """Let the background task finish its pass and end (see payment_services)."""
        self._stopping = True
        self.wake.set()

    async def aclose(self) -> None:
        await self.sender.aclose()


def _refund_pence(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PaymentError(
            422, "Invalid refund", f"'{name}' must be a positive whole number of pence"
        )
