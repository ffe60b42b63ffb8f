"""Back offices that misbehave on purpose: they hang, raise, ask to retry, or answer slowly."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from connectors.protocol import (
    ConnectorContext,
    Failed,
    Outcome,
    Response,
    Retry,
    Transaction,
)
from gateway.routing.registry import ConnectorSet
from gateway.store.models import Submission
from tests.hub.rows import submission


class Misbehaving:
    """mode: hang | held (until `release` is set) | raise | retry | fail | slow | garbage | flaky
    (raises on the first attempt only)."""

    api_version = 1

    def __init__(self, name: str, mode: str, delay: float = 0.3) -> None:
        self.name = name
        self.mode = mode
        self.delay = delay
        self.calls: list[Transaction] = []
        self.release = asyncio.Event()

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def handle(self, tx: Transaction, ctx: ConnectorContext) -> Outcome:
        self.calls.append(tx)
        if self.mode == "hang":
            await asyncio.sleep(3600)
        if self.mode == "held":
            await self.release.wait()
        if self.mode == "raise":
            raise RuntimeError("back office exploded")
        if self.mode == "retry":
            return Retry(after=0.05, reason="back office busy")
        if self.mode == "fail":
            return Failed("account system offline for maintenance")
        if self.mode == "flaky" and len(self.calls) == 1:
            raise ConnectionError("connection reset by back office")
        if self.mode == "garbage":
            return Response(b"<Unclosed><!DOCTYPE x>")
        if self.mode == "slow":
            await asyncio.sleep(self.delay)
        return Response(b'<Echo xmlns="urn:test:echo"><Attempt>%d</Attempt></Echo>' % tx.attempt)


def connector_set(tmp: Path, *connectors: Misbehaving) -> ConnectorSet:
    made = ConnectorSet()
    for c in connectors:
        made.add(c, ConnectorContext(name=c.name, options={}, data_dir=tmp))  # type: ignore[arg-type]
    return made


def route(class_: str, connector: str, **extra: object) -> dict[str, object]:
    return {
        "class": class_,
        "organisation": "TESTORG",
        "connector": connector,
        "poll_interval": 1,
        "timeout": 0.3,
        "retries": 2,
        "backoff": 0.05,
        "auth_level": 0,
        **extra,
    }


def routed_row(correlation_id: str, class_: str, connector: str, **changes: Any) -> Submission:
    """A queued anonymous submission on `route(class_, connector)`, as stored by the hub."""
    return submission(
        correlation_id,
        class_=class_,
        base_class=class_,
        organisation="TESTORG",
        connector=connector,
        sender_id=None,
        auth_method="none",
        auth_level=0.0,
        **changes,
    )
