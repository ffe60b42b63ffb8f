"""PollInterval under load: a client is asked to wait about as long as its submission still has
to wait in its connector's queue, never less than the route's interval, never more than the cap."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.clock import MovableClock
from gateway.config import parse_config
from gateway.errors import ConfigError
from gateway.routing.pacing import Pacing
from tests.conftest import Hub, HubFactory
from tests.hub import wire
from tests.hub.faulty import Misbehaving, connector_set, route
from tests.hub.test_dsp import submit
from tests.metrics.scrape import scrape

CLASS = "TEST-QUEUE"
PING = "<Ping xmlns='urn:test:ping'/>"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def test_a_connector_keeping_up_keeps_the_routes_interval() -> None:
    pacing = Pacing(60)
    assert pacing.interval(1, "council", NOW) == 1
    pacing.observe([("other", at(-30))], NOW)
    assert pacing.interval(1, "council", NOW) == 1
    assert pacing.interval(5, "council", NOW) == 5


def test_a_young_queue_is_taken_to_keep_pace_with_time() -> None:
    pacing = Pacing(60)
    pacing.observe([("council", at(-7.2)), ("other", at(-1))], NOW)
    assert pacing.interval(1, "council", NOW) == 8
    assert pacing.interval(10, "council", NOW) == 10  # never below the route's own
    assert pacing.interval(1, "other", NOW) == 1


def observed(pacing: Pacing, heads: list[float], connector: str = "council") -> datetime:
    """One observation a second, the head due `heads[i]` seconds after NOW; the last time."""
    for second, head in enumerate(heads):
        pacing.observe([(connector, at(head))], at(second))
    return at(len(heads) - 1)


def test_the_wait_is_the_queue_ahead_at_the_pace_it_moves() -> None:
    pacing = Pacing(60)
    # A burst queued faster than its back office answers: the head, 23 s old, moves 0.25 s a
    # second.
    now = observed(pacing, [-20, -19.75, -19.5, -19.25, -19])
    assert pacing.interval(1, "council", now, due=at(-17)) == 8  # 2 s of queue ahead, at 0.25
    # A new one has 23 s of queue ahead (92 s at this pace), but is asked back after twice the
    # head's wait: the pace measured during a burst is the slowest the queue will move.
    assert pacing.interval(1, "council", now) == 46
    assert pacing.interval(1, "council", now, due=at(-19)) == 1  # the head itself: next
    # Catching up (the head moves faster than time): less than the queue's length.
    pacing = Pacing(60)
    now = observed(pacing, [-20, -18, -16, -14])
    assert pacing.interval(1, "council", now, due=at(-4)) == 5


def test_a_retry_waits_for_its_time_and_a_stuck_queue_ever_longer() -> None:
    pacing = Pacing(60)
    assert pacing.interval(1, "council", NOW, due=at(10)) == 10  # no queue: its retry time
    now = observed(pacing, [0, 0, 0])  # the head has not moved in 2 s: a hanging back office
    assert pacing.interval(1, "council", now) == 4  # twice the head's wait
    assert pacing.interval(1, "council", now + timedelta(seconds=20)) == 44
    assert pacing.interval(1, "council", now + timedelta(seconds=40)) == 60
    assert pacing.interval(1, "council", now, due=at(0)) == 1  # the head: next when it moves
    pacing.forget()
    assert pacing.interval(1, "council", now) == 1


def test_the_pace_is_measured_over_the_last_window() -> None:
    pacing = Pacing(60)
    # Stuck for 30 s, then moving a second a second: the old standstill no longer counts.
    now = observed(pacing, [0] * 30 + [float(n) for n in range(1, 15)])
    assert pacing.interval(1, "council", now, due=at(24)) == 10


def test_what_the_metrics_show_of_each_queue() -> None:
    pacing, off = Pacing(60), Pacing(0)
    now = observed(pacing, [-20, -19.75, -19.5, -19.25, -19])
    observed(off, [-20, -19.75, -19.5, -19.25, -19])
    assert pacing.waiting(now) == {"council": (23.0, 46)}
    assert off.waiting(now) == {"council": (23.0, 0)}


def test_a_clock_moved_back_starts_the_measure_again() -> None:
    pacing = Pacing(60)
    observed(pacing, [-20, -20, -20])
    # An hour back (POST /admin/clock), a queue whose head does not move: stuck, once measured.
    head = at(-3700)
    pacing.observe([("council", head)], at(-3600))
    pacing.observe([("council", head)], at(-3598))
    assert pacing.interval(1, "council", at(-3598), due=at(-3650)) == 60


def test_the_wait_asked_for_is_capped_and_zero_turns_pacing_off() -> None:
    heads = [("council", at(-600))]
    capped, off = Pacing(60), Pacing(0)
    capped.observe(heads, NOW)
    off.observe(heads, NOW)
    assert capped.interval(1, "council", NOW) == 60
    assert off.interval(1, "council", NOW) == 1
    assert off.interval(5, "council", NOW, due=at(30)) == 5


@pytest.mark.parametrize("value", [-1, 2.5, True, "60"])
def test_max_poll_interval_must_be_a_whole_number_of_seconds(value: object) -> None:
    with pytest.raises(ConfigError, match="max_poll_interval"):
        parse_config({"dispatcher": {"max_poll_interval": value}})


async def poll_interval(hub: Hub, class_: str, cid: str | None) -> int:
    assert cid is not None
    reply = wire.read(await hub.post(wire.poll(class_, cid), path="/poll"))
    assert reply.qualifier == "acknowledgement", reply.errors
    return reply.poll_interval


async def one_slot_hub(
    hub_factory: HubFactory, tmp_path: Path, connector: Misbehaving, clock: MovableClock
) -> Hub:
    """A hub whose dispatcher has one slot: what is submitted while it is busy queues."""
    hub: Hub = await hub_factory(
        {
            "demo": False,
            "dispatcher": {"concurrency": 1, "per_connector": 1, "idle_poll_seconds": 0.05},
            "connectors": {connector.name: {"type": "test"}},
            "routes": [route(CLASS, connector.name, timeout=3600, retries=0)],
        },
        connectors=connector_set(tmp_path, connector),
        clock=clock,
    )
    return hub


async def send(hub: Hub) -> wire.Reply:
    reply = await submit(hub, wire.submission(CLASS, PING, organisation="TESTORG"))
    assert reply.qualifier == "acknowledgement", reply.errors
    return reply


async def test_clients_are_asked_to_poll_a_moving_queue_at_its_pace(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    # A back office taking 0.5 s a transaction, one at a time, and thirty submitted at once:
    # the last has ~15 s of deliveries ahead of it. Not 0.2 s: on a loaded CI machine sending
    # the thirty took long enough for the queue to be gone before the poll.
    slow = Misbehaving("slow", "slow", delay=0.5)
    hub = await one_slot_hub(hub_factory, tmp_path, slow, MovableClock())
    replies = [await send(hub) for _ in range(30)]
    assert replies[0].poll_interval == 1  # straight into the free slot
    await asyncio.sleep(2.5)  # the queue is read once a second; its pace needs two readings
    waits = await poll_interval(hub, CLASS, replies[-1].correlation_id)
    assert 2 <= waits <= 30, waits
    assert await poll_interval(hub, CLASS, replies[-1].correlation_id) <= waits + 1


async def test_a_stuck_queue_asks_for_ever_longer_poll_intervals(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    held, clock = Misbehaving("held", "held"), MovableClock()
    hub = await one_slot_hub(hub_factory, tmp_path, held, clock)
    try:
        taken = await send(hub)  # straight into the slot, never answered
        head = await send(hub)  # first in the queue
        assert (taken.poll_interval, head.poll_interval) == (1, 1)  # not known to be stuck yet
        # Its head unmoved for 40 s (by the hub's clock), the queue is stuck: a new submission
        # is asked to wait twice that, capped at the most.
        clock.advance(timedelta(seconds=40))
        async with asyncio.timeout(10):
            while True:
                late = await send(hub)
                if late.poll_interval == 60:  # [dispatcher] max_poll_interval
                    break
                await asyncio.sleep(0.1)
        assert await poll_interval(hub, CLASS, late.correlation_id) == 60
        # What an operator watching /metrics sees.
        seen = await scrape(hub)
        assert seen.value("gateway_queue_wait_seconds", connector="held") >= 40
        assert seen.value("gateway_paced_poll_interval_seconds", connector="held") == 60
        # And an operator on the console's connectors page (loopback: an admin by default).
        async with hub.session.get(f"{hub.url}/console/connectors") as resp:
            page = await resp.text()
        row = re.search(r'<tr data-key="held">(.*?)</tr>', page, re.S)
        assert row is not None, page
        assert re.search(r"waiting (4\d) s; clients asked to poll after 60 s", row.group(1))
        # The head is next in line, and the one being delivered may answer any moment.
        assert await poll_interval(hub, CLASS, head.correlation_id) == 1
        assert await poll_interval(hub, CLASS, taken.correlation_id) == 1
    finally:
        held.release.set()
