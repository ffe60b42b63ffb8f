"""CPU per operation of the pieces one DSP message is made of, in-process, on a fresh SQLite file.

The load benchmark says how far the hub is from the floor; this says where a message's CPU goes,
one store call at a time, so that a change to the store layer can be judged in seconds:

    .venv/bin/python -m bench.micro [--repeat 500] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Operation = Callable[[], Awaitable[Any]]


async def _time(operation: Operation, repeat: int) -> dict[str, float]:
    for _ in range(max(20, repeat // 10)):  # statement caches, pool connections, imports
        await operation()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(repeat):
        await operation()
    return {
        "cpu_ms": (time.process_time() - cpu) / repeat * 1000,
        "wall_ms": (time.perf_counter() - wall) / repeat * 1000,
    }


async def measure(directory: Path, repeat: int) -> dict[str, dict[str, float]]:
    import aiosqlite
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from bench.load import Envelopes
    from gateway.config import RouteConfig
    from gateway.demo import citizens_list
    from gateway.dsp.engine import new_submission
    from gateway.govtalk import replies
    from gateway.govtalk.parse import parse
    from gateway.govtalk.serialise import serialise
    from gateway.identity import citizens
    from gateway.store import submissions as store
    from gateway.store.engine import Database
    from gateway.store.migrate import upgrade_async

    path = directory / "micro.db"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade_async(url)
    db = Database.open(url)
    citizen = citizens_list()[0]
    enrolment = citizen.enrolments[0]
    await citizens.register(
        db,
        citizen.user_id,
        citizen.password,
        enrol=[(e.class_, e.organisation, e.keys) for e in citizen.enrolments],
    )
    envelopes = Envelopes.for_demo_citizen()
    submission_xml = envelopes.password()
    route = RouteConfig(
        class_=enrolment.class_, organisation=enrolment.organisation, connector="council"
    )
    serial = iter(range(10**9))
    plain = create_async_engine(url)
    results: dict[str, dict[str, float]] = {}

    async def hub_read_select_1() -> None:
        async with db.read() as session:
            await session.execute(text("SELECT 1"))

    async def plain_select_1() -> None:
        async with plain.connect() as conn:
            await conn.execute(text("SELECT 1"))

    batch_turn = itertools.count()

    async def insert() -> None:
        now = datetime.now(UTC)
        row = new_submission(
            route,
            correlation_id=f"{next(serial):032X}",
            class_=enrolment.class_,
            base_class=enrolment.class_,
            identity=None,
            keys=enrolment.keys,
            request_body=b"<x/>",
            now=now,
        )
        await store.insert(db, row)

    async def inserts_32() -> None:
        # 32 clients submitting at once share one transaction; one call = 1/32 of the batch
        # on average, so the figure compares with a lone insert.
        if next(batch_turn) % 32 == 0:
            await asyncio.gather(*(insert() for _ in range(32)))

    async def parse_submission() -> None:
        parse(submission_xml)

    async def serialise_ack() -> None:
        serialise(
            replies.acknowledgement(
                class_=enrolment.class_,
                correlation_id="A" * 32,
                transaction_id="1",
                endpoint="http://127.0.0.1/poll",
                poll_interval=1,
                timestamp=datetime.now(UTC),
                gateway_test=False,
            )
        )

    async with aiosqlite.connect(path) as raw:

        async def bare_aiosqlite() -> None:
            async with raw.execute(
                "SELECT password_hash FROM citizens WHERE user_id = ?", (citizen.user_id,)
            ) as cursor:
                await cursor.fetchone()

        operations: dict[str, Operation] = {
            "bare aiosqlite: one SELECT (no SQLAlchemy)": bare_aiosqlite,
            "SQLAlchemy Core, plain engine: connect + SELECT 1": plain_select_1,
            "hub read session (Database.read): SELECT 1": hub_read_select_1,
            "citizens.find (a citizen row, uncached)": lambda: citizens.find(db, citizen.user_id),
            "citizens.lookup (per submission and dispatch; cached 1 s)": lambda: citizens.lookup(
                db, citizen.user_id
            ),
            "store.get (per poll and delete)": lambda: store.get(db, "0" * 32),
            "store.insert (one alone: its own transaction)": insert,
            "store.insert x32 at once (group commit), per insert": inserts_32,
            "parse (a submission envelope)": parse_submission,
            "serialise (an acknowledgement)": serialise_ack,
        }
        for name, operation in operations.items():
            results[name] = await _time(operation, repeat)
    await plain.dispose()
    await db.aclose()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=500)
    parser.add_argument("--json", type=Path, dest="json_path")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gateway-micro-") as directory:
        results = asyncio.run(measure(Path(directory), args.repeat))
    width = max(len(name) for name in results)
    print(f"{'operation':{width}}  CPU ms  wall ms")
    for name, figures in results.items():
        print(f"{name:{width}}  {figures['cpu_ms']:6.3f}  {figures['wall_ms']:7.3f}")
    if args.json_path is not None:
        args.json_path.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
