"""A tiny supplier back office: the http-forward wire format v1, for LA-CTAX-VIEW requests.

It stands for the council's real system: it answers council-tax account views from an in-memory
table, refuses unknown accounts with a 3001 business error pointing at the offending element,
applies each Idempotency-Key once, and has a fault switch so tests can make it misbehave.

Routes:
  POST /transactions   the wire format (connectors/http_forward/README.md)
  POST /_fault         {"mode": "none"|"hang"|"error500"|"retry"|"throttle"|"malformed"|"bad_xml",
                        "retry_after": seconds, "times": n}   (times: fault the next n requests)
  GET  /_fault         the current fault
  GET  /_stats         {"requests", "applied", "replays"}
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, cast

from aiohttp import web
from lxml import etree

SUPPORTED_CLASS = "LA-CTAX-VIEW"
CTAX_NS = "urn:govtalk-hub:example:ctax-view:v1"
WIRE_VERSION = 1
FAULT_MODES = frozenset({"none", "hang", "error500", "retry", "throttle", "malformed", "bad_xml"})


@dataclass(frozen=True, slots=True)
class Account:
    """One council-tax account as the back office holds it."""

    reference: str
    name: str
    band: str
    annual_charge: Decimal
    balance: Decimal


ACCOUNTS: Mapping[str, Account] = {
    a.reference: a
    for a in (
        Account("10000001", "A. Resident", "C", Decimal("1789.20"), Decimal("0.00")),
        Account("10000002", "B. Householder", "D", Decimal("2012.85"), Decimal("335.48")),
        Account("10000003", "C. Occupier", "A", Decimal("1341.90"), Decimal("-12.00")),
    )
}


@dataclass(slots=True)
class Fault:
    """What the next requests should suffer; times=None means until switched off."""

    mode: str = "none"
    retry_after: int = 1
    times: int | None = None


@dataclass(slots=True)
class _Answer:
    fingerprint: str
    status: int
    reply: dict[str, Any]


@dataclass(slots=True)
class BackOfficeState:
    """Everything the example keeps: accounts, stored answers per key, counters, the fault."""

    accounts: dict[str, Account]
    hang_seconds: float
    fault: Fault = field(default_factory=Fault)
    answers: dict[str, _Answer] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)  # correlation ids actually processed
    requests: int = 0
    replays: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)  # set at shutdown

    def take_fault(self) -> Fault:
        """The fault for this request, counting down a limited one."""
        current = self.fault
        if current.mode != "none" and current.times is not None:
            current.times -= 1
            if current.times <= 0:
                self.fault = Fault()
        return current


STATE = web.AppKey("supplier_backoffice_state", BackOfficeState)


def make_app(
    accounts: Mapping[str, Account] | None = None, *, hang_seconds: float = 300.0
) -> web.Application:
    """The example back office as an aiohttp application."""
    app = web.Application()
    app[STATE] = BackOfficeState(
        accounts=dict(ACCOUNTS if accounts is None else accounts), hang_seconds=hang_seconds
    )
    app.router.add_post("/transactions", handle_transaction)
    app.router.add_post("/_fault", set_fault)
    app.router.add_get("/_fault", get_fault)
    app.router.add_get("/_stats", get_stats)
    app.on_shutdown.append(_release_hangs)
    return app


async def _release_hangs(app: web.Application) -> None:
    # Handlers keep running after their client gives up; let hanging ones finish at shutdown.
    app[STATE].release.set()


async def handle_transaction(request: web.Request) -> web.StreamResponse:
    """POST /transactions: one transaction in the wire format, answered once per key."""
    state = request.app[STATE]
    state.requests += 1
    faulted = await _apply_fault(state, state.take_fault())
    if faulted is not None:
        return faulted

    key = request.headers.get("Idempotency-Key", "")
    if not key:
        return _problem(400, "the Idempotency-Key header is required")
    try:
        document = json.loads(await request.read())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _problem(400, "the request is not JSON")
    if not isinstance(document, dict):
        return _problem(400, "the request is not a JSON object")
    if document.get("api_version") != WIRE_VERSION:
        return _problem(400, f"api_version {document.get('api_version')!r} is not supported")
    if document.get("correlation_id") != key:
        return _problem(400, "Idempotency-Key must equal correlation_id")

    fingerprint = _fingerprint(document)
    stored = state.answers.get(key)
    if stored is not None:
        if stored.fingerprint != fingerprint:
            return _problem(409, "this Idempotency-Key was used for a different transaction")
        state.replays += 1
        return web.json_response(stored.reply, status=stored.status)

    if document.get("class") != SUPPORTED_CLASS:
        return _problem(400, f"class {document.get('class')!r} is not handled here")
    body = document.get("body")
    if not isinstance(body, str):
        return _problem(400, "body must be a string of XML")

    reply = _view_account(state, body)
    state.answers[key] = _Answer(fingerprint, 200, reply)
    # Test in live: check everything, change nothing.
    if not document.get("test_in_live"):
        state.applied.append(key)
    return web.json_response(reply)


def _view_account(state: BackOfficeState, body: str) -> dict[str, Any]:
    """The business logic: look the account up, or refuse with a located 3001."""
    try:
        root = _parse(body)
    except ValueError as exc:
        return _business_error(f"The request is not readable XML: {exc}", "/")
    if root.tag != f"{{{CTAX_NS}}}CTaxViewRequest":
        return _business_error(
            f"Expected CTaxViewRequest in namespace {CTAX_NS}", "/" + etree.QName(root).localname
        )
    reference = (root.findtext(f"{{{CTAX_NS}}}AccountReference") or "").strip()
    location = "/CTaxViewRequest/AccountReference"
    if not reference:
        return _business_error("AccountReference is required", location)
    account = state.accounts.get(reference)
    if account is None:
        return _business_error(f"There is no council tax account {reference}", location)
    return {"outcome": "response", "body": _response_xml(account)}


def _response_xml(account: Account) -> str:
    # lxml-stubs want str keys; None is lxml's key for the default namespace.
    nsmap = cast("dict[str, str]", {None: CTAX_NS})
    root = etree.Element(f"{{{CTAX_NS}}}CTaxViewResponse", nsmap=nsmap)
    for name, value in (
        ("AccountReference", account.reference),
        ("Name", account.name),
        ("Band", account.band),
        ("AnnualCharge", f"{account.annual_charge:.2f}"),
        ("Balance", f"{account.balance:.2f}"),
    ):
        etree.SubElement(root, f"{{{CTAX_NS}}}{name}").text = value
    return etree.tostring(root, encoding="unicode")


def _business_error(text: str, location: str) -> dict[str, Any]:
    return {
        "outcome": "business_error",
        "application": "Example Council Tax",
        "errors": [{"number": 3001, "text": text, "locations": [location]}],
    }


def _parse(body: str) -> etree._Element:
    # Treat the hub's XML as untrusted too: no DTDs, no entity expansion, no network.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(body.encode("utf-8"), parser)
    except etree.XMLSyntaxError as exc:
        raise ValueError(str(exc)) from None
    if root is None or root.getroottree().docinfo.internalDTD is not None:
        raise ValueError("DOCTYPE is not allowed")
    return root


def _fingerprint(document: Mapping[str, Any]) -> str:
    # attempt changes on every retry; everything else identifies the transaction.
    material = {k: v for k, v in document.items() if k != "attempt"}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode("utf-8")).hexdigest()


async def _apply_fault(state: BackOfficeState, fault: Fault) -> web.StreamResponse | None:
    match fault.mode:
        case "hang":
            try:
                await asyncio.wait_for(state.release.wait(), state.hang_seconds)
            except TimeoutError:
                pass
            return _problem(503, "hung, then gave up")
        case "error500":
            return _problem(500, "simulated internal error")
        case "retry":
            return _problem(503, "simulated maintenance", retry_after=fault.retry_after)
        case "throttle":
            return _problem(429, "simulated rate limit", retry_after=fault.retry_after)
        case "malformed":
            return web.Response(
                status=200, text="{this is not json", content_type="application/json"
            )
        case "bad_xml":
            return web.json_response(
                {"outcome": "response", "body": "<CTaxViewResponse><Unclosed>"}
            )
    return None


def _problem(status: int, detail: str, *, retry_after: int | None = None) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return web.json_response({"error": detail}, status=status, headers=headers)


async def set_fault(request: web.Request) -> web.Response:
    """POST /_fault: switch the simulated fault."""
    try:
        document = await request.json()
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _problem(400, "the request is not JSON")
    if not isinstance(document, dict) or document.get("mode") not in FAULT_MODES:
        return _problem(400, f"mode must be one of {sorted(FAULT_MODES)}")
    retry_after = document.get("retry_after", 1)
    times = document.get("times")
    if not isinstance(retry_after, int) or retry_after < 0:
        return _problem(400, "retry_after must be a non-negative integer")
    if times is not None and (not isinstance(times, int) or times < 1):
        return _problem(400, "times must be a positive integer")
    fault = Fault(mode=document["mode"], retry_after=retry_after, times=times)
    request.app[STATE].fault = fault
    return web.json_response(asdict(fault))


async def get_fault(request: web.Request) -> web.Response:
    """GET /_fault: the current fault."""
    return web.json_response(asdict(request.app[STATE].fault))


async def get_stats(request: web.Request) -> web.Response:
    """GET /_stats: request, applied and replay counters."""
    state = request.app[STATE]
    return web.json_response(
        {"requests": state.requests, "applied": len(state.applied), "replays": state.replays}
    )
