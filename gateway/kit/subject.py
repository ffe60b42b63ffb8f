"""The connector under test: loaded like the hub loads it, and called the way the dispatcher calls it.

A target is an installed connector (its `gateway.connectors` entry-point name), a factory named
`module:attribute` (a connector not yet packaged), or a back office URL, reached through the
hub's own `http-forward` connector exactly as a configured route would reach it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import traceback
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, TypeVar

from connectors.protocol import (
    API_VERSION,
    Connector,
    ConnectorContext,
    Enrolment,
    Identity,
    Outcome,
    Transaction,
)
from gateway.config import ConnectorConfig
from gateway.errors import ConfigError
from gateway.govtalk.replies import new_correlation_id
from gateway.kit.samples import Sample, Samples
from gateway.routing.registry import GROUP, ConnectorSet, available

# After the deadline the task is cancelled; a connector still running this much later ignores
# cancellation, which the report says (the hub's lease would have moved on long before).
CANCEL_GRACE = 1.0
CONNECTOR_NAME = "under-test"
# A plausible 12-character Gateway User ID, so connectors that read identity see one.
USER_ID = "CONFORMANCE1"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Target:
    """What is checked: exactly one of connector (entry point or module:attribute) and url."""

    connector: str | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        if (self.connector is None) == (self.url is None):
            raise ValueError("name a connector or a back office URL, not both or neither")

    @property
    def entry_point(self) -> EntryPoint | None:
        """The entry point the hub would load (None for a URL)."""
        if self.url is not None or self.connector is None:
            return None
        if ":" in self.connector:
            return EntryPoint(name=self.connector, value=self.connector, group=GROUP)
        found: EntryPoint | None = available().get(self.connector)
        return found

    @property
    def connector_type(self) -> str:
        """The connector type a hub route names: the entry point, or http-forward for a URL."""
        return self.connector if self.connector is not None else "http-forward"

    def describe(self) -> str:
        if self.url is not None:
            return f"{self.url} (through the http-forward connector)"
        ep = self.entry_point
        if ep is None or ep.value == self.connector:
            return str(self.connector)
        return f"{self.connector} ({ep.value})"

    def options(self, samples: Samples) -> dict[str, Any]:
        """The connector's options: the samples' and the command line's; a URL's forwarder's."""
        if self.url is None:
            return dict(samples.options)
        # The forwarder gets the route's deadline, so a slow back office is a timeout (2005).
        return {"timeout": samples.timeout, **samples.options, "url": self.url}


def build(
    target: Target, options: Mapping[str, Any], data_dir: Path
) -> tuple[Connector, ConnectorContext]:
    """Build the connector as the hub would; ConfigError says why it cannot be."""
    config = ConnectorConfig(name=CONNECTOR_NAME, type=target.connector_type, options=dict(options))
    if target.connector is not None and ":" in target.connector:
        made = from_factory(target.connector, config, data_dir)
    else:
        found = ConnectorSet.build([config], data_dir).get(CONNECTOR_NAME)
        assert found is not None
        made = found
    connector, _ctx = made
    if not isinstance(connector, Connector):
        raise ConfigError(
            f"{target.describe()} does not implement the connector protocol "
            "(name, api_version, start, handle, aclose)"
        )
    for method in ("start", "handle", "aclose"):
        if not inspect.iscoroutinefunction(getattr(connector, method)):
            raise ConfigError(f"{target.describe()}: {method}() must be a coroutine (async def)")
    return made


def from_factory(
    spec: str, config: ConnectorConfig, data_dir: Path
) -> tuple[Connector, ConnectorContext]:
    """What ConnectorSet.build does for an entry point, for a `module:attribute` not installed."""
    try:
        factory = EntryPoint(name=spec, value=spec, group=GROUP).load()
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load {spec}: {exc}") from exc
    ctx = ConnectorContext(
        name=config.name,
        options={"base_dir": str(Path.cwd()), **config.options},
        data_dir=data_dir / "connectors" / config.name,
        log=logging.getLogger(f"gateway.connector.{config.name}"),
    )
    ctx.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        connector = factory(ctx)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"connector {spec}: {exc}") from exc
    version = getattr(connector, "api_version", None)
    if version != API_VERSION:
        raise ConfigError(f"{spec} speaks connector API {version}, the hub speaks {API_VERSION}")
    return connector, ctx


def transaction(
    sample: Sample,
    samples: Samples,
    *,
    correlation_id: str | None = None,
    attempt: int = 1,
    received_at: datetime | None = None,
) -> Transaction:
    """The Transaction the dispatcher would build for this sample from an enrolled citizen."""
    class_ = sample.class_ or samples.class_
    keys = dict(sample.keys)
    return Transaction(
        correlation_id=correlation_id or new_correlation_id(),
        class_=class_,
        organisation=samples.organisation,
        keys=keys,
        body=sample.body,
        identity=Identity(
            user_id=USER_ID,
            auth_method="clear",
            auth_level=1,
            enrolments=(Enrolment(class_, samples.organisation, keys),),
        ),
        transaction_id=None,
        received_at=received_at or datetime.now(UTC),
        attempt=attempt,
    )


@dataclass(frozen=True, slots=True)
class Call:
    """One guarded call: its value, or what it raised, or that the deadline passed."""

    seconds: float
    value: Any = None
    error: BaseException | None = None
    trace: str = ""
    timed_out: bool = False
    stuck: bool = False  # still running CANCEL_GRACE after it was cancelled


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery of a transaction to the connector, as the dispatcher would make it."""

    label: str
    tx: Transaction
    call: Call

    @property
    def outcome(self) -> Outcome | None:
        value: Outcome | None = self.call.value
        return value


@dataclass(slots=True)
class Deliverer:
    """Calls the connector with the route's deadline and keeps every delivery for the report."""

    connector: Connector
    ctx: ConnectorContext
    samples: Samples
    deliveries: list[Delivery] = field(default_factory=list)
    _abandoned: set[asyncio.Task[Any]] = field(default_factory=set)

    async def deliver(self, label: str, tx: Transaction) -> Delivery:
        call = await self.guarded(self.connector.handle(tx, self.ctx))
        delivery = Delivery(label, tx, call)
        self.deliveries.append(delivery)
        return delivery

    async def guarded(self, work: Awaitable[T]) -> Call:
        """Await work for at most the route's deadline, as the dispatcher does."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        task = asyncio.ensure_future(work)
        done, _ = await asyncio.wait({task}, timeout=self.samples.timeout)
        if not done:
            task.cancel()
            stopped, _ = await asyncio.wait({task}, timeout=CANCEL_GRACE)
            if not stopped:
                # Kept referenced so it is not garbage-collected mid-flight; cancelled at close.
                self._abandoned.add(task)
            return Call(seconds=self.samples.timeout, timed_out=True, stuck=not stopped)
        seconds = loop.time() - started
        if task.cancelled():
            # The connector cancelled itself (or let a CancelledError escape): the hub would
            # see its dispatcher task die, so it is reported like any other exception.
            error: BaseException | None = asyncio.CancelledError(
                "the connector's call was cancelled"
            )
            return Call(seconds=seconds, error=error, trace=repr(error))
        error = task.exception()
        if error is not None:
            trace = "".join(traceback.format_exception(error)[-6:])
            # The dispatcher treats a TimeoutError from the connector (http-forward's own
            # deadline) like its own: never answered, retried, then 2005.
            late = isinstance(error, TimeoutError)
            return Call(seconds=seconds, error=error, trace=trace, timed_out=late)
        return Call(seconds=seconds, value=task.result())

    async def aclose(self) -> str | None:
        """Close the connector; what went wrong doing so, if anything."""
        for task in self._abandoned:
            task.cancel()
        if self._abandoned:
            # A task that ignored one cancellation may ignore this one too: never wait forever.
            await asyncio.wait(self._abandoned, timeout=CANCEL_GRACE)
        call = await self.guarded(self.connector.aclose())
        if call.error is not None:
            return f"aclose() raised {type(call.error).__name__}: {call.error}"
        if call.timed_out:
            return f"aclose() did not return within {self.samples.timeout:g} s"
        return None
