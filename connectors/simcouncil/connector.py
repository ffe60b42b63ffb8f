"""The simulated council back office as a hub connector: View Council Tax and apply for SPD."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace

from lxml import etree

from connectors.protocol import (
    API_VERSION,
    BusinessError,
    ConnectorContext,
    Failed,
    KnownFactsRequest,
    KnownFactsResult,
    MailMessage,
    Outcome,
    PaymentNotification,
    RefundNotification,
    Response,
    Transaction,
)
from connectors.simcouncil import known_facts, move_in, move_out, spd, til, view
from connectors.simcouncil.councils import CouncilInfo, council
from connectors.simcouncil.dates import council_today
from connectors.simcouncil.model import Property
from connectors.simcouncil.service import ACCOUNT_KEY, Service, Situation, application_name
from connectors.simcouncil.store import CouncilStore, Delivery, Write
from connectors.simcouncil.validation import Rejected, ResponseInvalid, check_response, read_request
from connectors.simcouncil.xmlbody import text

SERVICES: dict[str, Service] = {
    s.class_: s for s in (view.SERVICE, spd.SERVICE, move_out.CLOSE, move_out.REOPEN, move_in.OPEN)
}


class SimulatedCouncilConnector:
    """One demo council's back office, keeping its own SQLite store under the data directory."""

    name = "simulated-council"
    api_version = API_VERSION

    def __init__(self, ctx: ConnectorContext) -> None:
        code = ctx.options.get("council")
        if not isinstance(code, str) or not code:
            raise ValueError("the simulated-council connector needs a 'council' option (GSS code)")
        self.council: CouncilInfo = council(code)
        self.ctx = ctx
        self.store = CouncilStore(ctx.data_dir / f"{code}.sqlite", self.council)
        self._started = False
        self._start_lock = asyncio.Lock()

    async def start(self) -> None:
        """Open (and on first use create and seed) the council's store."""
        async with self._start_lock:
            if not self._started:
                await self.store.open()
                self._started = True

    async def aclose(self) -> None:
        async with self._start_lock:
            if self._started:
                await self.store.close()
                self._started = False

    async def handle(self, tx: Transaction, ctx: ConnectorContext) -> Outcome:
        """Answer one transaction; a redelivered correlation id gets the first answer again."""
        base, test_in_live = _split_class(tx)
        service = SERVICES.get(base)
        if service is None:
            served = ", ".join(sorted(SERVICES))
            return Failed(f"class {base} is not served by {self.council.name} (serves {served})")
        await self.start()
        if not test_in_live:
            earlier = await self.store.recorded(tx.correlation_id)
            if earlier is not None:
                if earlier.class_ != base:
                    return Failed(
                        f"correlation id {tx.correlation_id} was answered before for class "
                        f"{earlier.class_}, not {base}"
                    )
                return earlier.outcome
        try:
            request = read_request(tx.body, service.request)
        except Rejected as exc:
            return BusinessError(exc.errors, self._application)
        now = ctx.clock()
        situation = Situation(
            council=self.council,
            today=council_today(now),
            now=now,
            correlation_id=tx.correlation_id,
            gateway_test=tx.gateway_test,
            keys_ref=tx.keys.get(ACCOUNT_KEY),
        )
        if base == move_in.CLASS:
            # What an open depends on besides the request: the reference it would take and
            # whether the property already has an account (a race is caught by the UNIQUE uprn).
            situation = replace(
                situation,
                next_account_ref=await self.store.next_account_ref(),
                uprn_account=await self.store.account_for_uprn(move_in.requested_uprn(request)),
            )
        try:
            if test_in_live:
                return await self._test_in_live(service, request, situation)
            return await self._process(service, request, situation, tx)
        except ResponseInvalid as exc:
            ctx.log.error(f"simulated council built an invalid reply: {exc}")
            return Failed(f"the back office built an invalid reply: {exc}")

    async def check_known_facts(
        self, request: KnownFactsRequest, ctx: ConnectorContext
    ) -> KnownFactsResult:
        """Enrolment: do these facts match an account this council holds? (its own store)"""
        if request.organisation != self.council.code:
            return KnownFactsResult(
                False, reason=f"{self.council.name} is not organisation {request.organisation}"
            )
        if request.class_ not in SERVICES:
            served = ", ".join(sorted(SERVICES))
            return KnownFactsResult(
                False,
                reason=f"{self.council.name} offers no enrolment for class {request.class_} "
                f"(it serves {served})",
            )
        await self.start()
        ref = str(request.facts.get(ACCOUNT_KEY) or "").strip().upper()
        account = await self.store.account(ref) if ref else None
        return known_facts.check(request.facts, account)

    async def payment_received(
        self, notification: PaymentNotification, ctx: ConnectorContext
    ) -> None:
        """Payments: a card payment taken by the hub, recorded once against the account."""
        from connectors.simcouncil import payments

        if notification.organisation != self.council.code:
            raise ValueError(f"{self.council.name} is not organisation {notification.organisation}")
        await self.start()
        await payments.record(self.store, notification)

    async def refund_received(
        self, notification: RefundNotification, ctx: ConnectorContext
    ) -> None:
        """Refunds: money given back on a payment, recorded once as a negative payment."""
        from connectors.simcouncil import payments

        if notification.organisation != self.council.code:
            raise ValueError(f"{self.council.name} is not organisation {notification.organisation}")
        await self.start()
        await payments.record_refund(self.store, notification)

    async def receive_mail(self, message: MailMessage, ctx: ConnectorContext) -> None:
        """Secure mail: a citizen's reply, kept once by message id in the council's post room."""
        from connectors.simcouncil.mailbox import Mailbox

        if message.organisation != self.council.code:
            raise ValueError(f"{self.council.name} is not organisation {message.organisation}")
        mailbox = getattr(self, "mailbox", None)
        if mailbox is None:
            mailbox = self.mailbox = Mailbox(self.ctx.data_dir / f"{self.council.code}-mail.sqlite")
        await mailbox.record(message)

    @property
    def _application(self) -> str:
        return application_name(self.council)

    async def _process(
        self, service: Service, request: etree._Element, situation: Situation, tx: Transaction
    ) -> Outcome:
        def decide(account: Property | None, spd_number: int) -> Write:
            decision = service.decide(request, account, replace(situation, spd_number=spd_number))
            if isinstance(decision.reply, BusinessError):
                return Write(decision.reply)
            # Checked inside the store's transaction: an invalid reply rolls the change back too.
            body = check_response(decision.reply, service.response)
            return Write(
                Response(body),
                decision.updated,
                decision.application,
                decision.status,
                decision.opened,
            )

        delivery = Delivery(
            correlation_id=tx.correlation_id,
            class_=service.class_,
            body_sha256=hashlib.sha256(tx.body).hexdigest(),
            gateway_test=tx.gateway_test,
            at=situation.now,
        )
        recorded = await self.store.apply_once(delivery, situation.keys_ref, decide)
        if not recorded.fresh and recorded.body_sha256 != delivery.body_sha256:
            self.ctx.log.warning(
                f"correlation id {tx.correlation_id} redelivered with a different body; "
                "answering as the first time"
            )
        return recorded.outcome

    async def _test_in_live(
        self, service: Service, request: etree._Element, situation: Situation
    ) -> Outcome:
        # Every check a live submission gets, against the live account, but nothing is written.
        account = await self.store.account(situation.keys_ref) if situation.keys_ref else None
        decision = service.decide(request, account, situation)
        if isinstance(decision.reply, BusinessError):
            return decision.reply
        check_response(decision.reply, service.response)
        # From the reply, not the request: an open's request has no account yet, and its receipt
        # names the reference the account would have taken (not reserved: nothing is written).
        receipt = til.receipt(service.class_, text(decision.reply, "AccountRef"))
        return Response(check_response(receipt, til.RECEIPT))


def _split_class(tx: Transaction) -> tuple[str, bool]:
    """The base class and whether this is test in live (flag set, or a -TIL suffix left on)."""
    if tx.class_.endswith(til.SUFFIX):
        return tx.class_.removesuffix(til.SUFFIX), True
    return tx.class_, tx.test_in_live
