"""PollInterval under load: a client is asked to wait about as long as its submission still has
to wait in its connector's queue, never less than the route's interval, never more than the cap."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from gateway.clock import MovableClock
from gateway.config import ConfigError, parse_config
from gateway.routing.pacing import Pacing
from tests.conftest import Hub, HubFactory
from tests.hub import wire
from tests.hub.faulty import Misbehaving, connector_set, route
from tests.hub.test_dsp import submit

PING = "<Ping xmlns='urn:test:ping'/>"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def test_a_connector_keeping_up_keeps_the_routes_interval() -> None:
    pacing = Pacing(60)
    assert pacing.interval(1, "council", NOW) == 1
    pacing.observe([("other", at(-30))])
    assert pacing.interval(1, "council", NOW) == 1
    assert pacing.interval(5, "council", NOW) == 5


def test_a_new_submission_waits_as_long_as_the_queue_head_has() -> None:
    pacing = Pacing(60)
    pacing.observe([("council", at(-7.2)), ("other", at(-1))])
    assert pacing.interval(1, "council", NOW) == 8
    assert pacing.interval(10, "council", NOW) == 10  # never below the route's own
    assert pacing.interval(1, "other", NOW) == 1


def test_a_queued_submission_waits_for_the_work_ahead_of_it_or_its_retry() -> None:
    pacing = Pacing(60)
    pacing.observe([("council", at(-20))])
    assert pacing.interval(1, "council", NOW, due=at(-5)) == 15
    assert pacing.interval(1, "council", NOW, due=at(-20)) == 1  # it is the head: next in line
    # A retry due in 10 s still has the queue's 20 s ahead of it once due.
    assert pacing.interval(1, "council", NOW, due=at(10)) == 30
    pacing.forget()
    assert pacing.interval(1, "council", NOW, due=at(10)) == 10


def test_the_wait_asked_for_is_capped_and_zero_turns_pacing_off() -> None:
    heads = [("council", at(-600))]
    capped, off = Pacing(60), Pacing(0)
    capped.observe(heads)
    off.observe(heads)
    assert capped.interval(1, "council", NOW) == 60
    assert off.interval(1, "council", NOW) == 1
    assert off.interval(5, "council", NOW, due=at(30)) == 5


@pytest.mark.parametrize("value", [-1, 2.5, True, "60"])
def test_max_poll_interval_must_be_a_whole_number_of_seconds(value: object) -> None:
    with pytest.raises(ConfigError, match="max_poll_interval"):
        parse_config({"dispatcher": {"max_poll_interval": value}})


async def poll_interval(hub: Hub, cid: str | None) -> int:
    assert cid is not None
    reply = wire.read(await hub.post(wire.poll("TEST-HELD", cid), path="/poll"))
    assert reply.qualifier == "acknowledgement", reply.errors
    return reply.poll_interval


async def test_acknowledgements_ask_for_longer_polls_while_work_queues(
    hub_factory: HubFactory, tmp_path
) -> None:
    # One dispatcher slot, held by a back office that does not answer until released: what is
    # submitted after the first waits in the queue, and the hub's clock says for how long.
    held = Misbehaving("held", "held")
    clock = MovableClock()
    hub = await hub_factory(
        {
            "demo": False,
            "dispatcher": {"concurrency": 1, "per_connector": 1, "idle_poll_seconds": 0.05},
            "connectors": {"held": {"type": "test"}},
            "routes": [route("TEST-HELD", "held", timeout=3600, retries=0)],
        },
        connectors=connector_set(tmp_path, held),
        clock=clock,
    )
    try:

        async def send() -> wire.Reply:
            xml = wire.submission("TEST-HELD", PING, organisation="TESTORG")
            reply = await submit(hub, xml)
            assert reply.qualifier == "acknowledgement", reply.errors
            return reply

        taken = await send()  # straight into the slot
        head = await send()  # first in the queue
        assert (taken.poll_interval, head.poll_interval) == (1, 1)
        clock.advance(timedelta(seconds=25))
        # The queue is read once a second: until then the hub cannot know the head has waited.
        async with asyncio.timeout(5):
            while True:
                late = await send()
                if late.poll_interval > 1:
                    break
                await asyncio.sleep(0.1)
        assert 25 <= late.poll_interval <= 27
        assert 25 <= await poll_interval(hub, late.correlation_id) <= 27
        # The head is next in line, and the one being delivered may answer any moment.
        assert await poll_interval(hub, head.correlation_id) == 1
        assert await poll_interval(hub, taken.correlation_id) == 1
        # An hour on, a new submission has the whole hour's queue ahead of it: the cap applies.
        # The one queued 25 s behind the head still has those 25 s ahead of it.
        clock.advance(timedelta(hours=1))
        assert (await send()).poll_interval == 60  # [dispatcher] max_poll_interval
        assert 25 <= await poll_interval(hub, late.correlation_id) <= 27
    finally:
        held.release.set()
