"""A council tax connector with switchable, realistic defects, for the conformance suite's tests.

Loaded as `tests.kit.faulty:FaultyConnector` (a `module:attribute` target). Without faults it is
a correct connector; option `faults` (a list) switches defects on:

  answers-differ       each delivery's answer counts the deliveries (a redelivery differs)
  applies-twice        a payment redelivered is deducted again (the answer is cached, the state not)
  no-locations         the unknown-account 3001 carries no Location
  crash-on-malformed   reads the reference with int() and no checks (raises on odd bodies)
  slow                 account 10000003 takes longer than any deadline
  facts-any            known facts match whatever is given
  close-fails          aclose() raises
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from lxml import etree

from connectors.protocol import (
    API_VERSION,
    BusinessError,
    ConnectorContext,
    KnownFactsRequest,
    KnownFactsResult,
    Outcome,
    Response,
    Transaction,
)
from connectors.sdk import BodyError, parse_body, xpath_of
from gateway.govtalk.errors import GovTalkError
from gateway.govtalk.model import default_nsmap

NS = "urn:govtalk-hub:example:ctax-view:v1"
VIEW, PAY = "LA-CTAX-VIEW", "LA-CTAX-PAY"
FAULTS = frozenset(
    {
        "answers-differ",
        "applies-twice",
        "no-locations",
        "crash-on-malformed",
        "slow",
        "facts-any",
        "close-fails",
    }
)
NAMES = {"10000001": "A. Resident", "10000002": "B. Householder", "10000003": "C. Occupier"}
POSTCODE = "DH1 3NJ"


def q(name: str) -> str:
    return etree.QName(NS, name).text


class FaultyConnector:
    name = "faulty"
    api_version = API_VERSION

    def __init__(self, ctx: ConnectorContext) -> None:
        faults = ctx.options.get("faults", [])
        unknown = set(faults) - FAULTS
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}")
        self.faults = frozenset(faults)
        self.balances = {ref: Decimal("335.48") for ref in NAMES}
        self.answers: dict[str, Outcome] = {}
        self.deliveries = 0

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        if "close-fails" in self.faults:
            raise ConnectionError("the back office hung up while we were closing")

    async def handle(self, tx: Transaction, ctx: ConnectorContext) -> Outcome:
        self.deliveries += 1
        if tx.class_ == PAY:
            return self._pay(tx)
        if "answers-differ" not in self.faults and tx.correlation_id in self.answers:
            return self.answers[tx.correlation_id]
        outcome = await self._view(tx)
        self.answers[tx.correlation_id] = outcome
        return outcome

    async def check_known_facts(
        self, request: KnownFactsRequest, ctx: ConnectorContext
    ) -> KnownFactsResult:
        ref = request.facts.get("CTaxAccountRef", "")
        matches = ref in NAMES and request.facts.get("PostCode") == POSTCODE
        if not matches and "facts-any" not in self.faults:
            return KnownFactsResult(False, reason="the details do not match our records")
        return KnownFactsResult(True, identifiers={"CTaxAccountRef": ref}, address=("Durham",))

    async def _view(self, tx: Transaction) -> Outcome:
        if "crash-on-malformed" in self.faults:
            root = etree.fromstring(tx.body)
            reference_el = root.find(q("AccountReference"))
            reference = str(int(reference_el.text)).zfill(8)  # type: ignore[union-attr,arg-type]
        else:
            try:
                root = parse_body(tx.body)
            except BodyError as exc:
                return refuse(f"unreadable: {exc}", None)
            reference_el = root.find(q("AccountReference"))
            if root.tag != q("CTaxViewRequest") or reference_el is None or len(root) != 1:
                return refuse("expected CTaxViewRequest with an AccountReference", None)
            reference = (reference_el.text or "").strip()
            if not (reference.isascii() and reference.isdigit() and len(reference) == 8):
                return refuse("AccountReference must be eight digits", reference_el)
        if reference not in NAMES:
            where = None if "no-locations" in self.faults else reference_el
            return refuse(f"There is no council tax account {reference}", where)
        if reference == "10000003" and "slow" in self.faults:
            await asyncio.sleep(3600)
        name = NAMES[reference]
        if "answers-differ" in self.faults:
            name = f"{name} (view {self.deliveries})"
        return Response(render(reference, name, self.balances[reference]))

    def _pay(self, tx: Transaction) -> Outcome:
        root = parse_body(tx.body)
        reference = root.findtext(q("AccountReference")) or ""
        amount = Decimal(root.findtext(q("Amount")) or "0")
        if "applies-twice" in self.faults or tx.correlation_id not in self.answers:
            self.balances[reference] -= amount
        if tx.correlation_id not in self.answers:
            receipt = etree.Element(q("CTaxPaymentReceipt"), nsmap=default_nsmap(NS))
            etree.SubElement(receipt, q("AccountReference")).text = reference
            etree.SubElement(receipt, q("Paid")).text = f"{amount:.2f}"
            self.answers[tx.correlation_id] = Response(etree.tostring(receipt, encoding="utf-8"))
        return self.answers[tx.correlation_id]


def refuse(text: str, where: etree._Element | None) -> BusinessError:
    locations = (xpath_of(where),) if where is not None else ()
    return BusinessError((GovTalkError.of(3001, text, locations=locations),), "Faulty Council Tax")


def render(reference: str, name: str, balance: Decimal) -> bytes:
    root = etree.Element(q("CTaxViewResponse"), nsmap=default_nsmap(NS))
    for tag, value in (
        ("AccountReference", reference),
        ("Name", name),
        ("Band", "D"),
        ("AnnualCharge", "2012.85"),
        ("Balance", f"{balance:.2f}"),
    ):
        etree.SubElement(root, q(tag)).text = value
    return etree.tostring(root, encoding="utf-8")
