"""The DSP engine: one envelope in, one reply envelope out; transport-free.

Every GovTalkFault raised on the way becomes an error reply here and only here; anything else
becomes a 1000 so a client retries rather than sees a broken connection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import structlog
from lxml import etree

from connectors.protocol import Identity
from gateway.audit.log import audit, audit_with_commit
from gateway.config import Config, RouteConfig
from gateway.govtalk import replies
from gateway.govtalk.errors import GovTalkError, GovTalkFault
from gateway.govtalk.irmark import body_with_namespaces, find_body, find_body_irmark
from gateway.govtalk.listing import StatusRecord, parse_list_filter, status_report
from gateway.govtalk.model import Envelope, Function, MessageDetails, Qualifier
from gateway.govtalk.parse import gateway_timestamp, parse
from gateway.govtalk.serialise import serialise
from gateway.identity.authenticate import Authenticator
from gateway.limits import AuthGuard
from gateway.observability import dsp_message
from gateway.routing.dispatcher import Dispatcher
from gateway.routing.outcomes import errors_from_json
from gateway.routing.table import RouteTable
from gateway.store import submissions as store
from gateway.store.engine import Database
from gateway.store.models import ERROR, LEASED, PENDING_STATES, QUEUED, RESPONSE, Submission
from gateway.store.row_codec import make

log = structlog.get_logger("gateway.dsp")

LIST_LIMIT = 1000
_ONE_SECOND = timedelta(seconds=1)
_TICK = timedelta(microseconds=1)
STATUS_BY_STATE = {
    QUEUED: "SUBMISSION_ACKNOWLEDGE",
    LEASED: "SUBMISSION_ACKNOWLEDGE",
    RESPONSE: "SUBMISSION_RESPONSE",
    ERROR: "SUBMISSION_ERROR",
}


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the client reaches this hub: derived from the request's host or configuration."""

    base_url: str

    @property
    def poll(self) -> str:
        return f"{self.base_url}/poll"

    @property
    def submission(self) -> str:
        return f"{self.base_url}/submission"


def _opening(message: MessageDetails) -> str:
    """The class of a submission or data request: it opens a conversation, so carries no
    CorrelationID (fault 1020 if it does)."""
    if message.correlation_id:
        raise GovTalkFault.of(1020, class_=message.class_)
    return message.class_


def _envelope_body(envelope: Envelope) -> bytes | None:
    """The envelope Body as an IRmark is computed over it, when the payload carries one."""
    if (
        envelope.body is None
        or envelope.document is None
        or find_body_irmark(envelope.body) is None
    ):
        return None
    body = find_body(envelope.document)
    return None if body is None else etree.tostring(body_with_namespaces(body), encoding="utf-8")


def new_submission(
    route: RouteConfig,
    *,
    correlation_id: str,
    class_: str,
    base_class: str,
    identity: Identity | None,
    keys: dict[str, str],
    request_body: bytes,
    now: datetime,
    transaction_id: str | None = None,
    gateway_test: bool = False,
    test_in_live: bool = False,
    envelope_body: bytes | None = None,
    lease: tuple[str, timedelta] | None = None,
    backdated_to: datetime | None = None,
) -> Submission:
    """A new routed submission row: queued for the dispatcher, or, given lease (owner, length),
    leased by the caller from the start (a synchronous route; if the caller dies mid-call the
    lease runs out and the background dispatcher delivers it instead).

    The DSP and the joined-up transactions (gateway/journeys) both make their rows here."""
    values = dict(
        correlation_id=correlation_id,
        class_=class_,
        base_class=base_class,
        organisation=route.organisation,
        connector=route.connector,
        sender_id=identity.user_id if identity else None,
        # The types the store gives back (a str, a float): the dispatcher may deliver this very
        # object, and a redelivery read from the store must send a back office the same JSON.
        auth_method=str(identity.auth_method) if identity else "none",
        auth_level=float(identity.auth_level) if identity else 0.0,
        transaction_id=transaction_id,
        keys=keys,
        gateway_test=gateway_test,
        test_in_live=test_in_live,
        request_body=request_body,
        envelope_body=envelope_body,
        received_at=now,
        backdated_to=backdated_to,
        state=LEASED if lease else QUEUED,
        attempts=1 if lease else 0,
        next_attempt_at=now,
        lease_owner=lease[0] if lease else None,
        lease_until=now + lease[1] if lease else None,
    )
    return make(Submission, values)


# Refusals that count towards a lockout: bad credentials or signature, Keys not enrolled.
AUTHENTICATION_FAILURES = frozenset({1002, 1040, 1046})


@dataclass(slots=True)
class _Caller:
    """Where one message came from, and whom its credentials proved it to be, if anyone."""

    remote: str | None
    verified: str | None = None


class DocumentSubmission:
    def __init__(
        self,
        *,
        config: Config,
        db: Database,
        routes: RouteTable,
        authenticator: Authenticator,
        dispatcher: Dispatcher,
        clock: Callable[[], datetime],
        guard: AuthGuard | None = None,
    ) -> None:
        self._config = config
        self._db = db
        self._routes = routes
        self._auth = authenticator
        self._dispatcher = dispatcher
        self._clock = clock
        self._guard = guard

    # -- entry points -------------------------------------------------------------------------

    async def handle(
        self,
        raw: bytes,
        endpoints: Endpoints,
        *,
        client_certificate: bytes | None = None,
        remote: str | None = None,
    ) -> bytes:
        """Answer one message; protocol failures are replies, never exceptions.

        client_certificate is the DER the client presented at the TLS layer, if any; remote is
        the peer's address, for the authentication-failure lockout.
        """
        envelope: Envelope | None = None
        sender: str | None = None
        caller = _Caller(remote)
        try:
            envelope = parse(raw, max_depth=self._config.limits.max_xml_depth)
            dsp_message(envelope.message)  # metrics and the request span (gateway/observability)
            sender = envelope.sender_id
            reply = await self._route_message(envelope, endpoints, client_certificate, caller)
            # Only credentials the hub checked clear a sender's count: a poll's SenderDetails are
            # not checked, and clearing on them would let a guesser interleave polls forever.
            if self._guard is not None and caller.verified:
                await self._guard.succeeded(caller.verified)
        except GovTalkFault as fault:
            if self._guard is not None and fault.first.number in AUTHENTICATION_FAILURES:
                await self._guard.failed(sender, remote, self._clock())
            reply = self._error(fault, envelope, endpoints)
        except Exception:
            log.exception("dsp.internal_error")
            reply = self._error(GovTalkFault.of(1000), envelope, endpoints)
        try:
            return serialise(reply)
        except ValueError:
            # A stored text XML cannot carry (written before the dispatcher cleaned them, or by
            # another writer): still a GovTalk answer, not an HTTP 500.
            log.exception("dsp.reply_not_serialisable")
            return serialise(self._error(GovTalkFault.of(1000), envelope, endpoints))

    def too_large(self, size: int | None, endpoints: Endpoints) -> bytes:
        """The 2001 reply for a body over the cap, built without parsing anything."""
        limit = self._config.server.max_body_bytes
        shown = f" ({size} bytes)" if size is not None else ""
        fault = GovTalkFault.of(
            2001, f"The document{shown} is larger than the {limit} bytes allowed"
        )
        return self.refusal(fault, endpoints)

    def refusal(self, fault: GovTalkFault, endpoints: Endpoints) -> bytes:
        """An error reply for a message refused before it is read (size, rate)."""
        return serialise(self._error(fault, None, endpoints))

    async def _route_message(
        self,
        envelope: Envelope,
        endpoints: Endpoints,
        client_certificate: bytes | None,
        caller: _Caller,
    ) -> Envelope:
        message = envelope.message
        qualifier, function = message.qualifier, message.function or Function.SUBMIT.value
        structlog.contextvars.bind_contextvars(
            class_=message.class_, qualifier=qualifier, function=function
        )
        if message.correlation_id:
            structlog.contextvars.bind_contextvars(correlation_id=message.correlation_id)
        if qualifier == Qualifier.REQUEST and function == Function.SUBMIT:
            return await self._submit(envelope, endpoints, client_certificate, caller)
        if qualifier == Qualifier.POLL and function == Function.SUBMIT:
            return await self._poll(envelope, endpoints)
        if qualifier == Qualifier.REQUEST and function == Function.DELETE:
            return await self._delete(envelope, endpoints)
        if qualifier == Qualifier.REQUEST and function == Function.LIST:
            return await self._list(envelope, endpoints, client_certificate, caller)
        raise GovTalkFault.of(
            1001,
            f"Qualifier '{qualifier}' with Function '{function}' is not a message the gateway accepts",
            class_=message.class_,
        )

    # -- submission ----------------------------------------------------------------------------

    async def _submit(
        self,
        envelope: Envelope,
        endpoints: Endpoints,
        client_certificate: bytes | None,
        caller: _Caller,
    ) -> Envelope:
        message = envelope.message
        class_ = _opening(message)
        if envelope.body is None:
            raise GovTalkFault.of(1042, class_=class_)
        route = self._routes.resolve(
            message.base_class, envelope.organisation, reply_class=class_
        ).serving(message.gateway_test)
        identity = (
            None
            if route.credentials == "ignore"
            else await self._identify(envelope, class_, client_certificate, caller)
        )
        self._authorise(route, identity, envelope)
        now = self._clock()
        # Only on the test service: a live submission's GatewayTimestamp is the Gateway's to set.
        backdated_to = (
            gateway_timestamp(message.gateway_timestamp, class_=class_)
            if message.gateway_test and message.gateway_timestamp
            else None
        )
        correlation_id = replies.new_correlation_id()
        sync = route.mode == "sync"
        # Handed straight to this process's dispatcher when it has a free slot; queued otherwise.
        direct = not sync and self._dispatcher.reserve(route.connector)
        submission = new_submission(
            route,
            correlation_id=correlation_id,
            class_=class_,
            base_class=message.base_class,
            identity=identity,
            keys=envelope.keys_dict,
            request_body=etree.tostring(envelope.body, encoding="utf-8"),
            now=now,
            transaction_id=message.transaction_id,
            gateway_test=message.gateway_test,
            test_in_live=message.test_in_live,
            envelope_body=_envelope_body(envelope),
            lease=(self._dispatcher.owner, self._dispatcher.lease) if sync or direct else None,
            backdated_to=backdated_to,
        )
        # The receipt's audit record commits with the submission: a hub killed straight after the
        # acknowledgement still has both.
        received, announce = audit_with_commit(
            "dsp.received",
            actor=identity.user_id if identity else None,
            correlation_id=correlation_id,
            auth_method=identity.auth_method if identity else "none",
            auth_level=identity.auth_level if identity else 0,
            class_=class_,
            organisation=route.organisation,
            sync=sync,
            body=submission.request_body,
            **({"backdated_to": backdated_to.isoformat()} if backdated_to else {}),
        )
        try:
            await store.insert(self._db, submission, audited=received)
        except BaseException:
            if direct:
                self._dispatcher.release(route.connector)
            raise
        structlog.contextvars.bind_contextvars(correlation_id=correlation_id)
        announce()
        interval = route.poll_interval
        if sync:
            try:
                final = await self._dispatcher.process(submission)
                record = await store.get(self._db, correlation_id)
            except Exception:
                # Committed, so the client must get its CorrelationID whatever failed since: a
                # refusal would have it resubmit a transaction the lease will still deliver.
                log.exception("dsp.sync_answer_failed")
                final = record = None
            if final is not None and record is not None:
                return self._answer(record, interval, endpoints)
        elif direct:
            self._dispatcher.start(submission)
        else:
            self._dispatcher.wake()
            interval = self._dispatcher.pacing.interval(interval, route.connector, now)
        return replies.acknowledgement(
            class_=class_,
            correlation_id=correlation_id,
            transaction_id=message.transaction_id,
            endpoint=endpoints.poll,
            poll_interval=interval,
            timestamp=backdated_to or now,
            gateway_test=message.gateway_test,
        )

    async def _identify(
        self,
        envelope: Envelope,
        class_: str,
        client_certificate: bytes | None,
        caller: _Caller,
    ) -> Identity | None:
        """The sender, from the envelope's credentials and/or the TLS client certificate, unless
        it or the caller's address is locked out; noted in `caller` for the lockout's count.

        Only here: polls and deletes check no credentials, so a lockout (which anyone can bring
        on a SenderID) must not stop its owner collecting answers already acknowledged."""
        if self._guard is not None:
            locked = await self._guard.locked(envelope.sender_id, caller.remote, self._clock())
            if locked is not None:
                raise GovTalkFault.of(1046, locked.text(), class_=class_)
        identity = await self._checked_sender(envelope, class_, client_certificate)
        caller.verified = identity.user_id if identity is not None else None
        return identity

    async def _checked_sender(
        self, envelope: Envelope, class_: str, client_certificate: bytes | None
    ) -> Identity | None:
        """A certificate presented at the TLS layer is always checked (a revoked one is refused
        even beside a good password); when both name a user they must name the same one."""
        identity = await self._auth.authenticate(envelope, class_)
        if client_certificate is None:
            return identity
        by_certificate = await self._auth.authenticate_tls(client_certificate, envelope, class_)
        if identity is not None and identity.user_id != by_certificate.user_id:
            raise GovTalkFault.of(
                1046,
                "Authentication failure: the envelope's credentials and the client certificate "
                "belong to different users",
                class_=class_,
            )
        if identity is not None and identity.auth_level >= by_certificate.auth_level:
            return identity
        return by_certificate

    def _authorise(self, route: RouteConfig, identity: Identity | None, envelope: Envelope) -> None:
        class_ = envelope.message.class_
        if route.auth_level < 1:
            return
        if identity is None:
            raise GovTalkFault.of(
                1046,
                f"Class '{route.class_}' requires authentication (level {route.auth_level:g}): "
                "supply SenderDetails/IDAuthentication",
                class_=class_,
            )
        if route.auth_level >= 2 and identity.auth_level < 2:
            raise GovTalkFault.of(
                1046,
                f"Class '{route.class_}' requires a certificate (level {route.auth_level:g}): "
                "use mutual TLS or a W3Csigned envelope",
                class_=class_,
            )
        if not route.keys_required:
            # A hub service for any signed-on citizen (a joined-up transaction checks the
            # enrolments its legs need itself).
            return
        keys = envelope.keys_dict
        for enrolment in identity.enrolments:
            if (
                enrolment.class_ == route.class_
                and enrolment.organisation == route.organisation
                and dict(enrolment.keys) == keys
            ):
                return
        shown = ", ".join(f"{k}={v}" for k, v in sorted(keys.items())) or "no Keys"
        raise GovTalkFault.of(
            1046,
            f"Authentication failure: {identity.user_id} is not enrolled for Class "
            f"'{route.class_}' at '{route.organisation}' with {shown}",
            class_=class_,
        )

    # -- poll and delete ----------------------------------------------------------------------

    async def _record(self, envelope: Envelope, *, missing: str) -> Submission:
        message = envelope.message
        if not message.correlation_id:
            raise GovTalkFault.of(1035, missing, class_=message.class_)
        record = await store.get(self._db, message.correlation_id)
        if record is None:
            raise GovTalkFault.of(
                2000,
                f"No record for CorrelationID {message.correlation_id}: "
                "it was deleted, purged or never existed",
                class_=message.class_,
            )
        if record.class_ != message.class_:
            raise GovTalkFault.of(
                1001,
                f"Class '{message.class_}' does not match the class of the submission "
                f"with CorrelationID {message.correlation_id}",
                class_=message.class_,
            )
        return record

    async def _poll(self, envelope: Envelope, endpoints: Endpoints) -> Envelope:
        record = await self._record(envelope, missing="CorrelationID is required on a poll")
        route = self._routes.get(record.base_class, record.organisation)
        interval = route.poll_interval if route else self._config.server.default_poll_interval
        if record.state == QUEUED:
            # Not yet taken: it still has its place in the queue (or its retry time) ahead of it.
            interval = self._dispatcher.pacing.interval(
                interval, record.connector, self._clock(), due=record.next_attempt_at
            )
        return self._answer(
            record, interval, endpoints, transaction_id=envelope.message.transaction_id
        )

    def _answer(
        self,
        record: Submission,
        interval: int,
        endpoints: Endpoints,
        *,
        transaction_id: str | None = None,
    ) -> Envelope:
        """The reply a poll gets for this record: ack while pending, else the final answer."""
        tid = transaction_id if transaction_id is not None else record.transaction_id
        timestamp = record.backdated_to or self._clock()
        common = {
            "class_": record.class_,
            "correlation_id": record.correlation_id,
            "transaction_id": tid,
            "endpoint": endpoints.poll,
            "poll_interval": interval,
            "timestamp": timestamp,
            "gateway_test": record.gateway_test,
        }
        if record.state in PENDING_STATES:
            return replies.acknowledgement(**common)  # type: ignore[arg-type]
        if record.state == RESPONSE and record.response_body is not None:
            return replies.submission_response(body=record.response_body, **common)  # type: ignore[arg-type]
        errors = errors_from_json(record.errors or [])
        if not errors:
            errors = [GovTalkError.of(1000, "The stored answer for this submission is incomplete")]
        # A back office's business error carries its ErrorResponse whatever numbers it chose
        # (reference §2): only such answers have an application; the hub's own 2005/3000 do not.
        body = (
            replies.error_response_body(errors, record.error_application or record.organisation)
            if record.error_application is not None
            else None
        )
        return replies.error_reply(errors=errors, body=body, **common)  # type: ignore[arg-type]

    async def _delete(self, envelope: Envelope, endpoints: Endpoints) -> Envelope:
        message = envelope.message
        record = await self._record(
            envelope, missing="CorrelationID is required on a delete request"
        )
        if not await store.mark_deleted(self._db, record.correlation_id, self._clock()):
            raise GovTalkFault.of(
                2000, f"No record for CorrelationID {record.correlation_id}", class_=message.class_
            )
        audit("dsp.deleted", correlation_id=record.correlation_id)
        return replies.delete_response(
            class_=message.class_,
            correlation_id=record.correlation_id,
            transaction_id=message.transaction_id,
            endpoint=endpoints.submission,
            poll_interval=self._config.server.default_poll_interval,
            timestamp=self._clock(),
        )

    # -- data request (list) ---------------------------------------------------------------------

    async def _list(
        self,
        envelope: Envelope,
        endpoints: Endpoints,
        client_certificate: bytes | None,
        caller: _Caller,
    ) -> Envelope:
        message = envelope.message
        class_ = _opening(message)
        identity = await self._identify(envelope, class_, client_certificate, caller)
        if identity is None or identity.user_id is None:
            raise GovTalkFault.of(
                1046, "A data request needs the same credentials as the submissions", class_=class_
            )
        # The report hands out CorrelationIDs, each a capability to read its answer: a password
        # alone must not reach answers that took a certificate to ask for.
        needed = self._routes.auth_level(message.base_class)
        if needed >= 2 and identity.auth_level < 2:
            raise GovTalkFault.of(
                1046,
                f"A data request for Class '{class_}' needs a certificate, as its submissions do "
                f"(level {needed:g}): use mutual TLS or a W3Csigned envelope",
                class_=class_,
            )
        filt = parse_list_filter(envelope.body)
        listing = partial(
            store.for_sender, self._db, sender_id=identity.user_id, class_=class_, end=filt.end
        )
        rows = await listing(start=filt.start, limit=LIST_LIMIT + 1)
        now = self._clock()
        end = filt.end or now
        if len(rows) > LIST_LIMIT:
            # More than a report holds. The client asks again from EndTimeStamp (StartDate and
            # StartTime, to the second), so a report holds whole seconds and ends at the first
            # second it leaves out: none is skipped, none comes twice, and paging gets past a
            # second of more than a report's worth by holding all of it.
            end = rows[LIST_LIMIT].received_at.replace(microsecond=0)
            rows = [row for row in rows[:LIST_LIMIT] if row.received_at < end]
            if not rows:
                rows = await listing(start=end, end=end + _ONE_SECOND - _TICK, limit=None)
                end += _ONE_SECOND
        records = [
            StatusRecord(
                timestamp=row.received_at,
                correlation_id=row.correlation_id,
                transaction_id=row.transaction_id,
                status=STATUS_BY_STATE[row.state],  # type: ignore[arg-type]
                identifiers=dict(row.keys),
            )
            for row in rows
        ]
        report = status_report(
            sender_id=identity.user_id,
            start=filt.start or (rows[0].received_at if rows else now - timedelta(days=1)),
            end=end,
            records=records,
            include_identifiers=filt.include_identifiers,
        )
        return replies.list_response(
            class_=class_,
            transaction_id=message.transaction_id,
            endpoint=endpoints.submission,
            poll_interval=self._config.server.default_poll_interval,
            timestamp=now,
            report=report,
        )

    # -- the one place faults become replies ------------------------------------------------------

    def _error(
        self, fault: GovTalkFault, envelope: Envelope | None, endpoints: Endpoints
    ) -> Envelope:
        message = envelope.message if envelope else fault.echo
        first = fault.first
        audit(
            "dsp.refused",
            outcome="refused",
            number=first.number,
            text=first.text,
            class_=fault.class_ or (message.class_ if message else None),
            sender=envelope.sender_id if envelope else None,
        )
        return replies.error_reply(
            class_=fault.class_ or (message.class_ if message else None),
            errors=fault.errors,
            correlation_id=message.correlation_id if message else None,
            transaction_id=message.transaction_id if message else None,
            endpoint=endpoints.submission,
            poll_interval=self._config.server.default_poll_interval,
            timestamp=self._clock(),
            function=(message.function if message and message.function else "submit"),
            gateway_test=message.gateway_test if message else False,
        )
