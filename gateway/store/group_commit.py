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
from typing import Any, Generic, TypeVar

W = TypeVar("W")
# Runs a batch of writes in one transaction and gives their results in order; raises if the
# transaction failed (then nothing of it was committed).
Commit = Callable[[list[W]], Awaitable[list[Any]]]

MAX_BATCH = 256


class GroupCommit(Generic[W]):
    """Runs queued writes in shared transactions, one batch at a time.

    What a write is (a function of a sqlite3 connection, a coroutine function of an asyncpg
    connection, each with the audit events it commits) is the `commit` function's business; the
    batching, the retry one by one and the telling of outcomes are the same for all.
    """

    def __init__(self, commit: Commit[W], *, max_batch: int = MAX_BATCH) -> None:
        self._commit_batch = commit
        self._max_batch = max_batch
        self._queue: list[tuple[W, asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None

    async def run(self, write: W) -> Any:
        """Run `write` in a transaction shared with other queued writes; its result once committed."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((write, future))
        if self._task is None:
            # Not the caller's own task: a caller that is cancelled must not cancel its
            # neighbours' commit (nor leave SQLite's write lock held mid-transaction). Its own
            # future is cancelled with it, which `_settle` then leaves alone.
            self._task = asyncio.create_task(self._drain())
        return await future

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

    async def _commit(self, batch: list[tuple[W, asyncio.Future[Any]]]) -> None:
        try:
            results = await self._commit_batch([write for write, _ in batch])
        except Exception as exc:
            if len(batch) > 1:
                for item in batch:
                    await self._commit([item])
                return
            _settle(batch[0][1], exc=exc)
            return
        except BaseException:  # cancelled at shutdown: no caller is told its write committed
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)


def _settle(
    future: asyncio.Future[Any], *, result: Any = None, exc: BaseException | None = None
) -> None:
    if future.done():  # its caller was cancelled, and its future with it
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
