"""ReceiptConnector: check a body like the Gateway's local test tool did, then answer a receipt."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from lxml import etree

from connectors.protocol import (
    API_VERSION,
    BusinessError,
    ConnectorContext,
    Outcome,
    Response,
    Transaction,
)
from connectors.sdk import (
    BodyError,
    load_schema,
    optional_bool,
    optional_str,
    parse_body,
    require_str,
    resolve_path,
)
from connectors.sdk import schema_errors as _schema_errors
from gateway.govtalk.errors import GovTalkError
from gateway.govtalk.irmark import compute_body_irmark, find_body_irmark, verify_body_irmark

RECEIPT_NS = "urn:govtalk-hub:receipt:v1"
THANK_YOU = "Thank you for your submission"
TIL_ADVISORY = "Test in live: checked, not processed"
MESSAGE_CODE = "0000"
TIL_CODE = "TIL"


class ReceiptConnector:
    """Validates the body against an XSD, checks its IRmark, answers a SuccessResponse receipt."""

    name = "receipt"
    api_version = API_VERSION

    def __init__(self, ctx: ConnectorContext) -> None:
        options = ctx.options
        self._schema_path = resolve_path(require_str(options, "schema"), options)
        self._require_irmark = optional_bool(options, "require_irmark", False)
        self._application = optional_str(options, "application")
        self._schema: etree.XMLSchema | None = None

    async def start(self) -> None:
        """Compile the service schema, so a bad path fails at start-up, not on a submission."""
        if self._schema is None:
            self._schema = load_schema(self._schema_path)

    async def aclose(self) -> None:
        """Nothing to release: the connector keeps no connections."""

    async def handle(self, tx: Transaction, ctx: ConnectorContext) -> Outcome:
        """Check the body and answer a receipt, or a BusinessError (3001, 2021, 2022)."""
        if self._schema is None:
            await self.start()
        assert self._schema is not None
        application = self._application or tx.class_
        try:
            root = parse_body(tx.body)
            # The IRmark is taken over the envelope Body when the hub supplies it, as clients
            # compute it; a bare payload (a connector driven directly) is digested on its own.
            integrity = root if tx.envelope_body is None else parse_body(tx.envelope_body)
        except BodyError as exc:
            return BusinessError(
                (GovTalkError.of(3001, f"The body cannot be read: {exc}", locations=("/",)),),
                application,
            )

        # Integrity before content: on an altered body, schema messages would mislead.
        irmark: str | None = None
        if find_body_irmark(integrity) is not None:
            error = verify_body_irmark(integrity)
            if error is not None:
                return BusinessError((error,), application)
            irmark = compute_body_irmark(integrity).base32
        elif self._require_irmark:
            return BusinessError(
                (GovTalkError.of(2022, "This service requires an IRmark in the body"),),
                application,
            )

        errors = _schema_errors(self._schema, root, number=3001)
        if errors:
            return BusinessError(errors, application)

        # received_at keeps a retried transaction's receipt identical to the first one.
        accepted = tx.received_at or ctx.clock()
        return Response(body=build_receipt(accepted, irmark=irmark, test_in_live=tx.test_in_live))


def build_receipt(accepted: datetime, *, irmark: str | None, test_in_live: bool) -> bytes:
    """The SuccessResponse receipt (schemas/receipt-v1.xsd) as UTF-8 XML."""
    # lxml-stubs want str keys; None is lxml's key for the default namespace.
    nsmap = cast("dict[str, str]", {None: RECEIPT_NS})
    root = etree.Element(_r("SuccessResponse"), nsmap=nsmap)
    message = etree.SubElement(root, _r("Message"), code=MESSAGE_CODE)
    message.text = THANK_YOU
    if irmark is not None:
        etree.SubElement(root, _r("IRmark")).text = irmark
    etree.SubElement(root, _r("AcceptedTime")).text = _xs_datetime(accepted)
    if test_in_live:
        advisory = etree.SubElement(root, _r("Advisory"), code=TIL_CODE)
        advisory.text = TIL_ADVISORY
    return etree.tostring(root, encoding="utf-8")


def _r(name: str) -> str:
    return f"{{{RECEIPT_NS}}}{name}"


def _xs_datetime(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the hub's clock is UTC
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
