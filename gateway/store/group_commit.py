"""Group commit: writes queued by concurrent callers share one transaction, then each caller is
told its own outcome — only after the commit, so nothing is acknowledged that is not durable.

With SQLite's single writer, 32 clients submitting at once otherwise make 32 transactions in a
row, each paying the session, BEGIN IMMEDIATE, the flush and the commit; sharing them pays that
once per batch. A write that fails takes its batch down with it, so the batch is then retried one
write at a time and only the failing caller sees its error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")
Write = Callable[[AsyncSession], Awaitable[Any]]
Transaction = Callable[[], AbstractAsyncContextManager[AsyncSession]]

MAX_BATCH = 256


class GroupCommit:
    """Runs queued writes in shared transactions, one batch at a time."""

    def __init__(self, transaction: Transaction, *, max_batch: int = MAX_BATCH) -> None:
        self._transaction = transaction
        self._max_batch = max_batch
        self._queue: list[tuple[Write, asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None

    async def run(self, write: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `write` in a transaction shared with other queued writes; its result once committed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((write, future))
        if self._task is None:
            # Not the caller's own task: a caller that is cancelled must not cancel its
            # neighbours' commit (nor leave SQLite's write lock held mid-transaction).
            self._task = asyncio.create_task(self._drain())
        return await asyncio.shield(future)

    async def wait_idle(self) -> None:
        """Until every queued write has committed or failed (before the engine is disposed)."""
        while self._task is not None:
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._commit(batch)
        finally:
            self._task = None

    async def _commit(self, batch: list[tuple[Write, asyncio.Future[Any]]]) -> None:
        results: list[Any] = []
        try:
            async with self._transaction() as session:
                for write, _ in batch:
                    results.append(await write(session))
        except Exception as exc:
            if len(batch) > 1:
                for item in batch:
                    await self._commit([item])
                return
            _settle(batch[0][1], exc=exc)
            return
        except BaseException:  # cancelled at shutdown: nothing of the batch was committed
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)


def _settle(
    future: asyncio.Future[Any], *, result: Any = None, exc: BaseException | None = None
) -> None:
    if future.done():  # its caller was cancelled and the shield's future with it
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
