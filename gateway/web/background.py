"""Ending the hub's background loops: asked to stop, not cancelled.

A cancellation that lands inside a database transaction can leave its connection checked out,
and closing the engine then waits for it for ever; so each loop finishes its current step and
ends, and is cancelled only if it will not.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

STOP_TIMEOUT_SECONDS = 30.0


async def sleep_unless_stopped(stopping: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds`, or less if asked to stop; False once stopping."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
    return not stopping.is_set()


async def stop_task(task: asyncio.Task[None], stop: Callable[[], None]) -> None:
    """Ask a background task to end after its current step; cancel it only if it does not."""
    stop()
    try:
        await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT_SECONDS)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
