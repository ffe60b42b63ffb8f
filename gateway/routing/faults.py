"""The fault catalogue: what can be injected into a connector instance's calls, checked here.

Pure: no I/O. A fault imitates a back office misbehaving (slow, failing, hanging, refusing,
answering garbage); the GovTalk answer the client gets is whatever the hub's ordinary machinery
makes of that behaviour, never fabricated here, so a fault shows what the hub really does.

    faults.py          the catalogue, parameter checks, `FaultProfile`, `decide` (this module)
    fault_injector.py  applies the stored profile around each connector call (the dispatcher)
    fault_sockets.py   the real sockets behind connection_reset / connection_refused
    fault_control.py   set, list and clear (admin API and CLI), with the `faults.*` log events
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from random import Random
from typing import Any, Literal

from lxml import etree

from connectors.protocol import BusinessError, Outcome, Response
from gateway.config import ConnectorConfig
from gateway.errors import ProblemError
from gateway.govtalk.errors import CATALOGUE, DEPARTMENT, GovTalkError, GovTalkFault
from gateway.govtalk.parse import parse_xml

HTTP_FORWARD = "http-forward"
ANY_TYPE = "*"
MAX_LATENCY_MS = 600_000  # ten minutes: longer than any route timeout worth having
# What a back office may answer in a business error: the numbers the catalogue gives to
# the department, and the 4xxx body schema range.
_BUSINESS_NUMBERS = frozenset(n for n, s in CATALOGUE.items() if s.raised_by == DEPARTMENT) - {3000}
# Well-formed XML never ends inside a start tag: this is what a reply cut off mid-stream looks like.
MALFORMED_BODY = b'<Reply xmlns="urn:govtalk-hub:fault"><Truncated>the back office stopped wri'
UNEXPECTED = "UnexpectedElement"


# --- refusals: ProblemError values, so the admin API and the CLI say the same thing --------------


class FaultRefused(ProblemError):
    """An unknown fault, bad parameters, or a fault the connector's type cannot have."""

    def __init__(self, detail: str) -> None:
        super().__init__(422, "Fault refused", detail)


class UnknownConnector(ProblemError):
    def __init__(self, name: str) -> None:
        super().__init__(404, "Not Found", f"no connector named '{name}' is configured")


class NoFaultSet(ProblemError):
    def __init__(self, name: str) -> None:
        super().__init__(404, "Not Found", f"connector '{name}' has no fault set")


class InjectedError(Exception):
    """Raised in place of a connector call: the hub treats it as any connector exception."""


# --- the catalogue --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a fault: its kind and bounds, checked by `check`."""

    name: str
    kind: Literal["number", "integer", "text", "choice"]
    description: str
    default: Any = None  # None: required when `required`, else absent
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "type": self.kind,
            "required": self.required,
            "description": self.description,
        }
        if self.default is not None:
            data["default"] = self.default
        if self.minimum is not None:
            data["minimum"] = self.minimum
        if self.maximum is not None:
            data["maximum"] = self.maximum
        if self.choices:
            data["choices"] = list(self.choices)
        return data


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One entry of the catalogue; `name` is API (admin API, CLI, scenario files)."""

    name: str
    description: str
    outcome: str  # the GovTalk answer the hub gives, for the docs and the catalogue listing
    params: tuple[Param, ...] = ()
    applies_to: tuple[str, ...] = (ANY_TYPE,)  # connector types

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "outcome": self.outcome,
            "params": [p.to_json() for p in self.params],
            "applies_to": list(self.applies_to),
        }


CATALOGUE_ENTRIES: tuple[FaultSpec, ...] = (
    FaultSpec(
        "latency",
        "Every call waits before reaching the back office: fixed (ms), or distributed "
        "around ms by jitter_ms (uniform: ms ± jitter_ms; normal: standard deviation jitter_ms).",
        "the usual answer, later; 2005 when the wait outlasts the route timeout on every attempt",
        (
            Param(
                "ms",
                "number",
                "mean delay in milliseconds",
                required=True,
                minimum=0,
                maximum=MAX_LATENCY_MS,
            ),
            Param(
                "jitter_ms",
                "number",
                "spread in milliseconds",
                default=0,
                minimum=0,
                maximum=MAX_LATENCY_MS,
            ),
            Param(
                "distribution",
                "choice",
                "how the delay is spread",
                default="uniform",
                choices=("uniform", "normal"),
            ),
        ),
    ),
    FaultSpec(
        "error_rate",
        "That fraction of calls fails as if the connector raised (the back office was not "
        "reached); the rest go through.",
        "a failed call is retried; 3000 once the route's retries are used up",
        (
            Param(
                "rate", "number", "fraction of calls that fail", required=True, minimum=0, maximum=1
            ),
        ),
    ),
    FaultSpec(
        "hang",
        "Calls never answer.",
        "the route timeout on every attempt, then 2005",
    ),
    FaultSpec(
        "business_error",
        "The back office refuses every transaction with this error (it is not called).",
        "an error reply carrying the error (3001 by default) in GovTalkErrors and in "
        "Body/ErrorResponse, with its Location",
        (
            Param("number", "integer", "3001, 2021, 2022 or 4000-4999", default=3001),
            Param(
                "text",
                "text",
                "the error text",
                default="The back office refused the transaction (injected business_error)",
            ),
            Param("location", "text", "an XPath into the body, e.g. /CTaxViewRequest/AccountRef"),
        ),
    ),
    FaultSpec(
        "malformed_reply",
        "The back office answers a body that is not well-formed XML (it is not called).",
        "3000 at once (a permanent failure: the reply cannot be embedded), dead-lettered",
    ),
    FaultSpec(
        "schema_invalid_reply",
        "The back office processes the transaction, but its reply gains an element the "
        "class's schema does not allow (first child of the root, in the root's namespace). "
        "The hub checks that a reply is well-formed XML, not the service's schema: it "
        "passes the body through, as the Gateway did.",
        "a response whose Body fails the class's response schema (the client must notice)",
    ),
    FaultSpec(
        "connection_reset",
        "Requests go to a local listener that reads the request and resets the connection "
        "(TCP RST): a real reset, met by the connector's HTTP client.",
        "a failed call is retried; 3000 (connection reset) once retries are used up",
        applies_to=(HTTP_FORWARD,),
    ),
    FaultSpec(
        "connection_refused",
        "Requests go to a local port with nothing listening: a real refused connection.",
        "a failed call is retried; 3000 (cannot connect) once retries are used up",
        applies_to=(HTTP_FORWARD,),
    ),
)
CATALOGUE_BY_NAME: dict[str, FaultSpec] = {spec.name: spec for spec in CATALOGUE_ENTRIES}


@dataclass(frozen=True, slots=True)
class FaultProfile:
    """The fault set on one connector instance, its parameters checked and defaults filled."""

    connector: str
    fault: str
    params: Mapping[str, Any] = field(default_factory=dict)
    set_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "fault": self.fault,
            "params": dict(self.params),
            "set_at": self.set_at.isoformat() if self.set_at else None,
        }


def catalogue_json() -> list[dict[str, Any]]:
    return [spec.to_json() for spec in CATALOGUE_ENTRIES]


def profile_for(
    connectors: Iterable[ConnectorConfig],
    connector: str,
    fault: object,
    params: object,
    now: datetime,
) -> FaultProfile:
    """Check a request to set `fault` on the configured connector; the profile to store."""
    found = next((c for c in connectors if c.name == connector), None)
    if found is None:
        raise UnknownConnector(connector)
    name, checked = check(fault, params, found.type, connector=connector)
    return FaultProfile(connector, name, checked, now)


def check(
    fault: object, params: object, connector_type: str, *, connector: str = "the connector"
) -> tuple[str, dict[str, Any]]:
    """The fault's name and its parameters with defaults filled; FaultRefused says what is wrong."""
    names = ", ".join(CATALOGUE_BY_NAME)
    if not isinstance(fault, str) or not fault:
        raise FaultRefused(f"'fault' must name a fault from the catalogue: {names}")
    spec = CATALOGUE_BY_NAME.get(fault)
    if spec is None:
        raise FaultRefused(f"unknown fault '{fault}'; the catalogue: {names}")
    if ANY_TYPE not in spec.applies_to and connector_type not in spec.applies_to:
        kinds = " or ".join(spec.applies_to)
        raise FaultRefused(
            f"{fault} applies to {kinds} connectors only; "
            f"'{connector}' is a {connector_type} connector"
        )
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise FaultRefused(f"{fault}: 'params' must be an object")
    known = {p.name for p in spec.params}
    unknown = sorted(str(k) for k in params if k not in known)
    if unknown:
        takes = f"takes {', '.join(sorted(known))}" if known else "takes no parameters"
        raise FaultRefused(f"{fault} {takes}; not '{unknown[0]}'")
    checked: dict[str, Any] = {}
    for param in spec.params:
        if param.name in params and params[param.name] is not None:
            checked[param.name] = _value(fault, param, params[param.name])
        elif param.required:
            raise FaultRefused(f"{fault} needs '{param.name}' ({param.description})")
        elif param.default is not None:
            checked[param.name] = param.default
    if fault == "business_error":
        number = checked["number"]
        if number not in _BUSINESS_NUMBERS and not 4000 <= number < 5000:
            allowed = ", ".join(str(n) for n in sorted(_BUSINESS_NUMBERS))
            raise FaultRefused(
                f"business_error: 'number' {number} is not a back office error "
                f"({allowed} or 4000-4999)"
            )
        if not str(checked["text"]).strip():
            raise FaultRefused("business_error: 'text' must not be empty")
    return fault, checked


def _value(fault: str, param: Param, value: object) -> Any:
    where = f"{fault}: '{param.name}'"
    if param.kind == "choice":
        if value not in param.choices:
            raise FaultRefused(f"{where} must be one of {', '.join(param.choices)}")
        return value
    if param.kind == "text":
        if not isinstance(value, str):
            raise FaultRefused(f"{where} must be text")
        return value
    integer = param.kind == "integer"
    ok = not isinstance(value, bool) and isinstance(value, int | float)
    if ok and isinstance(value, float):
        ok = math.isfinite(value) and (not integer or value.is_integer())
    bounds = _bounds(param)
    if not ok:
        raise FaultRefused(f"{where} must be {'a whole number' if integer else 'a number'}{bounds}")
    assert isinstance(value, int | float)
    if (param.minimum is not None and value < param.minimum) or (
        param.maximum is not None and value > param.maximum
    ):
        raise FaultRefused(f"{where} must be a number{bounds}; got {value:g}")
    return int(value) if integer else value


def _bounds(param: Param) -> str:
    if param.minimum is not None and param.maximum is not None:
        return f" from {param.minimum:g} to {param.maximum:g}"
    return ""


# --- deciding what one call does --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallThrough:
    """Call the connector, after `delay` seconds."""

    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Raise:
    """Do not call the connector: raise InjectedError(message) as a failing connector would."""

    message: str


@dataclass(frozen=True, slots=True)
class Hang:
    """Never answer (the dispatcher's route timeout ends the attempt)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """Do not call the connector: the back office "answered" this outcome."""

    outcome: Outcome


@dataclass(frozen=True, slots=True)
class CorruptReply:
    """Call the connector; a Response it gives gets `corrupt`ed."""


@dataclass(frozen=True, slots=True)
class Divert:
    """Call the connector with its HTTP requests sent to a socket that resets or refuses."""

    kind: Literal["reset", "refused"]


Decision = CallThrough | Raise | Hang | Answer | CorruptReply | Divert


def decide(profile: FaultProfile | None, rng: Random) -> Decision:
    """What one call to the connector does under the profile (None: no fault)."""
    if profile is None:
        return CallThrough()
    p = profile.params
    match profile.fault:
        case "latency":
            return CallThrough(latency_seconds(p, rng))
        case "error_rate":
            if rng.random() < float(p["rate"]):
                return Raise(f"injected fault error_rate (rate {p['rate']:g}): the call failed")
            return CallThrough()
        case "hang":
            return Hang()
        case "business_error":
            location = p.get("location")
            error = GovTalkError.of(
                int(p["number"]), str(p["text"]), locations=(location,) if location else ()
            )
            return Answer(BusinessError((error,)))
        case "malformed_reply":
            return Answer(Response(MALFORMED_BODY))
        case "schema_invalid_reply":
            return CorruptReply()
        case "connection_reset":
            return Divert("reset")
        case "connection_refused":
            return Divert("refused")
    # A row written by a newer hub, or by hand: the call goes through rather than guessing.
    return CallThrough()


def latency_seconds(params: Mapping[str, Any], rng: Random) -> float:
    """One delay drawn from a latency fault's parameters, never below zero."""
    mean, jitter = float(params["ms"]), float(params.get("jitter_ms", 0))
    if jitter == 0:
        value = mean
    elif params.get("distribution") == "normal":
        value = rng.gauss(mean, jitter)
    else:
        value = rng.uniform(mean - jitter, mean + jitter)
    return max(0.0, value) / 1000


def corrupt(body: bytes) -> bytes:
    """The reply with an element no schema of its class expects, as the root's first child.

    XSD content models are sequences or choices of declared elements, so an undeclared element
    in the document's own namespace breaks any of them; the rest of the reply stays as it was.
    A body that is not XML is left alone: the hub's own check refuses it anyway.
    """
    try:
        root = parse_xml(body, what="body").getroot()
    except GovTalkFault:
        return body
    namespace = etree.QName(root).namespace
    extra = etree.Element(f"{{{namespace}}}{UNEXPECTED}" if namespace else UNEXPECTED)
    extra.text = "injected schema_invalid_reply fault"
    extra.tail = root.text
    root.text = None
    root.insert(0, extra)
    return etree.tostring(root, encoding="utf-8")
