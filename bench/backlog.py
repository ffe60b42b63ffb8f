"""A burst that queues, polled by clients that honour PollInterval: what pacing saves.

A tester's load tool submits a burst of transactions and then polls each one as the protocol
says: wait PollInterval, poll, and again until the answer. While the back office lags, every
outstanding transaction is polled once per interval. This runs that load against a hub with
`[dispatcher] max_poll_interval` at 0 (every route's fixed 1 s) and at the default (paced by the
queue), each on a fresh hub, and prints how many polls were made and how long the burst took to
be answered and deleted.

    python -m bench.backlog [--submissions 4000] [--connections 32] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

from bench.load import _CORRELATION, _INTERVAL, HEADERS, Envelopes, qualifier
from bench.run import start_hub, write_hub_config


@dataclass
class Outcome:
    max_poll_interval: int
    submissions: int
    burst_s: float  # until the last acknowledgement
    answered_s: float  # until the last answer
    polls: int
    largest_interval: int
    hub_cpu_s: float

    @property
    def polls_per_submission(self) -> float:
        return self.polls / self.submissions


async def one_setting(most: int, submissions: int, connections: int, directory: Path) -> Outcome:
    setup = write_hub_config(directory, f"sqlite+aiosqlite:///{directory / 'var' / 'gateway.db'}")
    with setup.config_path.open("a") as config:
        config.write(f"\n[dispatcher]\nmax_poll_interval = {most}\n")
    server = await start_hub(setup, None, directory / "hub.log")
    envelopes = Envelopes.for_demo_citizen()
    polls, largest = 0, 0
    gate = asyncio.Semaphore(connections)
    try:
        cpu_before = server.watch.cpu_seconds()
        started = time.perf_counter()
        last_ack = started
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def post(data: bytes) -> bytes:
                async with (
                    gate,
                    session.post(f"{setup.url}/submission", data=data, headers=HEADERS) as resp,
                ):
                    return await resp.read()

            async def transaction() -> None:
                nonlocal polls, largest, last_ack
                reply = await post(envelopes.password())
                if qualifier(reply) != b"acknowledgement":
                    raise RuntimeError(f"not acknowledged: {reply[:300]!r}")
                last_ack = time.perf_counter()
                found = _CORRELATION.search(reply)
                assert found is not None
                cid = found.group(1)
                while qualifier(reply) == b"acknowledgement":
                    interval = int(_INTERVAL.search(reply).group(1))  # type: ignore[union-attr]
                    largest = max(largest, interval)
                    await asyncio.sleep(interval)
                    reply = await post(envelopes.poll(cid))
                    polls += 1
                if qualifier(reply) != b"response":
                    raise RuntimeError(f"not answered: {reply[:300]!r}")
                await post(envelopes.delete(cid))

            await asyncio.gather(*(transaction() for _ in range(submissions)))
            answered = time.perf_counter()
        return Outcome(
            max_poll_interval=most,
            submissions=submissions,
            burst_s=round(last_ack - started, 2),
            answered_s=round(answered - started, 2),
            polls=polls,
            largest_interval=largest,
            hub_cpu_s=round(server.watch.cpu_seconds() - cpu_before, 2),
        )
    finally:
        server.close()


async def run(submissions: int, connections: int, settings: list[int]) -> list[Outcome]:
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="gateway-backlog-") as tmp:
        for most in settings:
            outcome = await one_setting(most, submissions, connections, Path(tmp) / f"hub-{most}")
            print(
                f"max_poll_interval={most:>3}: {outcome.polls:>6} polls "
                f"({outcome.polls_per_submission:.2f} per submission, largest interval "
                f"{outcome.largest_interval} s); acknowledged in {outcome.burst_s} s, all answered "
                f"in {outcome.answered_s} s; hub CPU {outcome.hub_cpu_s} s",
                file=sys.stderr,
            )
            outcomes.append(outcome)
    return outcomes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=4000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--settings", type=int, nargs="+", default=[0, 60])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    outcomes = asyncio.run(run(args.submissions, args.connections, args.settings))
    figures = [
        {**asdict(o), "polls_per_submission": round(o.polls_per_submission, 2)} for o in outcomes
    ]
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
