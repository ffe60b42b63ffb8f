"""Limits: authentication-failure lockouts, request rate, and one slow connector's share.

The lockout and rate tests run with each counter store: this process's memory, and the local
Redis (a prefix of their own per test)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from gateway.clock import MovableClock
from gateway.demo import citizens_list
from tests.conftest import Hub, HubFactory
from tests.faults.conftest import set_fault
from tests.hub import wire
from tests.hub.test_dsp import VIEW, view_submission

SUN = citizens_list()[0]
STORES = pytest.mark.parametrize("store", ["memory", "redis"])


def limits(store: str, **options: Any) -> dict[str, Any]:
    """A [limits] section on the given store (a fresh Redis prefix: tests do not share counts)."""
    return {"limits": {"store": store, "redis_prefix": f"gw-test:{uuid.uuid4().hex}", **options}}


async def submit(hub: Hub, xml: str) -> wire.Reply:
    return wire.read(await hub.post(xml))


@STORES
async def test_wrong_passwords_lock_the_sender_out_for_a_while(
    hub_factory: HubFactory, store: str
) -> None:
    clock = MovableClock()
    hub: Hub = await hub_factory(
        limits(store, auth_failures_per_sender=3, lockout_minutes=10), clock=clock
    )
    for _ in range(3):
        reply = await submit(hub, view_submission(password="not-my-password"))
        assert reply.error_number == 1046
    # Locked now: even the right password is refused, and the refusal says until when.
    reply = await submit(hub, view_submission())
    assert reply.error_number == 1046
    assert "Too many failed authentication attempts from this sender" in reply.errors[0]["text"]
    # The JSON API honours the same lockout, as 429 with Retry-After.
    basic = {"Authorization": aiohttp.encode_basic_auth(SUN.user_id, SUN.password)}
    async with hub.session.get(f"{hub.url}/api/enrolments", headers=basic) as resp:
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) > 500
        assert (await resp.json())["title"] == "Too Many Requests"
    # Another citizen is not affected.
    other = citizens_list()[1]
    other_basic = {"Authorization": aiohttp.encode_basic_auth(other.user_id, other.password)}
    async with hub.session.get(f"{hub.url}/api/enrolments", headers=other_basic) as resp:
        assert resp.status == 200
    clock.advance(timedelta(minutes=11))
    reply = await submit(hub, view_submission())
    assert reply.qualifier == "acknowledgement"


@STORES
async def test_a_success_clears_the_count(hub_factory: HubFactory, store: str) -> None:
    hub: Hub = await hub_factory(limits(store, auth_failures_per_sender=3))
    for _ in range(2):
        assert (await submit(hub, view_submission(password="nope"))).error_number == 1046
    assert (await submit(hub, view_submission())).qualifier == "acknowledgement"
    for _ in range(2):
        assert (await submit(hub, view_submission(password="nope"))).error_number == 1046
    assert (await submit(hub, view_submission())).qualifier == "acknowledgement"


@STORES
async def test_only_a_verified_sender_clears_its_count(hub_factory: HubFactory, store: str) -> None:
    # Polls carry SenderDetails unchecked, and anyone may send SenderID with no credentials: if
    # either cleared the count, a guesser could interleave them and never be locked out.
    hub: Hub = await hub_factory(limits(store, auth_failures_per_sender=3))
    own = await submit(hub, view_submission())
    assert own.qualifier == "acknowledgement" and own.correlation_id
    sender = wire.sender_details(SUN.user_id, "a guess")
    poll = wire.poll(VIEW, own.correlation_id, sender=sender)
    for _ in range(2):
        assert (await submit(hub, view_submission(password="nope"))).error_number == 1046
        assert (await submit(hub, poll)).error_number is None
    assert (await submit(hub, view_submission(password="nope"))).error_number == 1046
    reply = await submit(hub, view_submission())
    assert reply.error_number == 1046
    assert "Too many failed authentication attempts" in reply.errors[0]["text"]


@STORES
async def test_a_locked_out_sender_still_collects_and_deletes_its_answers(
    hub_factory: HubFactory, store: str
) -> None:
    # Anyone can lock a SenderID out by guessing; polls and deletes check no credentials, so the
    # lockout must not keep its owner from answers already acknowledged (clients send their
    # SenderDetails on polls and deletes all the same).
    hub: Hub = await hub_factory(limits(store, auth_failures_per_sender=2))
    own = await submit(hub, view_submission())
    assert own.correlation_id
    for _ in range(2):
        assert (await submit(hub, view_submission(password="nope"))).error_number == 1046
    assert "Too many failed" in (await submit(hub, view_submission())).errors[0]["text"]
    sender = wire.sender_details(SUN.user_id, SUN.password)
    poll = wire.poll(VIEW, own.correlation_id, sender=sender)
    for _ in range(200):  # polled as a client would, until answered
        answer = await submit(hub, poll)
        if answer.qualifier != "acknowledgement":
            break
        await asyncio.sleep(0.05)
    assert answer.qualifier == "response", answer.errors
    deleted = wire.delete(VIEW, own.correlation_id, sender=sender)
    assert (await submit(hub, deleted)).qualifier == "response"


@STORES
async def test_request_rate_per_address_gets_429(hub_factory: HubFactory, store: str) -> None:
    hub: Hub = await hub_factory(limits(store, requests_per_minute=5, exempt_loopback=False))
    statuses = []
    for _ in range(5):
        async with hub.session.get(f"{hub.url}/api/enrolments") as resp:
            statuses.append(resp.status)
    assert statuses == [401] * 5
    async with hub.session.get(f"{hub.url}/api/enrolments") as resp:
        assert resp.status == 429
        assert resp.headers["Content-Type"].startswith("application/problem+json")
        assert int(resp.headers["Retry-After"]) >= 1
    # A GovTalk client gets a GovTalk answer: error 1000 (clients retry), HTTP 429.
    async with hub.session.post(f"{hub.url}/submission", data=view_submission()) as resp:
        assert resp.status == 429
        reply = wire.read(await resp.read())
    assert reply.error_number == 1000 and "Too many requests" in reply.errors[0]["text"]
    # Health and readiness are never limited.
    async with hub.session.get(f"{hub.url}/ready") as resp:
        assert resp.status == 200


async def test_a_hanging_connector_cannot_take_every_slot(hub_factory: HubFactory) -> None:
    hub: Hub = await hub_factory(
        {
            "dispatcher": {"concurrency": 4, "per_connector": 2, "idle_poll_seconds": 0.05},
            "routes": [
                {
                    "class": VIEW,
                    "organisation": "E08000024",
                    "connector": "council-E08000024",
                    "timeout": 20,
                    "retries": 0,
                }
            ],
        }
    )
    await set_fault(hub, "council-E08000024", "hang")
    stuck = [await submit(hub, view_submission()) for _ in range(6)]
    assert all(r.qualifier == "acknowledgement" for r in stuck)
    sedgemoor = citizens_list()[1]
    enrolment = sedgemoor.enrolments[0]
    ack = await submit(
        hub,
        wire.submission(
            VIEW,
            enrolment.example_body(),
            user=sedgemoor.user_id,
            password=sedgemoor.password,
            keys=enrolment.keys,
            organisation=enrolment.organisation,
        ),
    )
    assert ack.correlation_id
    async with asyncio.timeout(10):
        while True:
            reply = wire.read(await hub.post(wire.poll(VIEW, ack.correlation_id), path="/poll"))
            if reply.qualifier != "acknowledgement":
                break
            await asyncio.sleep(0.05)
    # Sedgemoor answered while all six Sunderland transactions still hang.
    assert reply.qualifier == "response"
    for hung in stuck:
        assert hung.correlation_id
        still = wire.read(await hub.post(wire.poll(VIEW, hung.correlation_id), path="/poll"))
        assert still.qualifier == "acknowledgement"


async def test_xml_depth_cap_is_configurable(hub_factory: HubFactory) -> None:
    hub: Hub = await hub_factory({"limits": {"max_xml_depth": 20}})
    body = "<a>" * 25 + "</a>" * 25
    reply = await submit(hub, wire.submission(VIEW, f'<x xmlns="urn:x">{body}</x>'))
    assert reply.error_number == 1001 and "deeper than 20" in reply.errors[0]["text"]


async def test_hubs_on_one_redis_count_together(hub_factory: HubFactory, tmp_path: Any) -> None:
    """Two hubs (as two workers or two hosts) naming one Redis share rates and lockouts; on the
    memory store each would count alone."""
    section = limits("redis", requests_per_minute=6, auth_failures_per_sender=3,
                     exempt_loopback=False)  # fmt: skip
    one = await hub_factory(section, data_dir=tmp_path / "one")
    two = await hub_factory(section, data_dir=tmp_path / "two")
    # Wrong passwords spread across both hubs lock the sender out at both.
    for hub in (one, two, one):
        assert (await submit(hub, view_submission(password="nope"))).error_number == 1046
    for hub in (one, two):
        reply = await submit(hub, view_submission())
        assert "Too many failed authentication attempts" in reply.errors[0]["text"], reply.errors
    # Six requests in all (those five and one more) use up the minute, whichever hub took them.
    async with two.session.get(f"{two.url}/api/enrolments") as resp:
        assert resp.status == 401
    async with one.session.get(f"{one.url}/api/enrolments") as resp:
        assert resp.status == 429


async def test_an_unreachable_redis_lets_requests_through_and_fails_ready(
    hub_factory: HubFactory,
) -> None:
    # Nothing listens on the discard port.
    hub = await hub_factory(
        {"limits": {"store": "redis", "redis_url": "redis://127.0.0.1:9/0",
                    "requests_per_minute": 1, "exempt_loopback": False}}
    )  # fmt: skip
    for _ in range(3):
        reply = await submit(hub, view_submission())
        assert reply.qualifier == "acknowledgement"
    async with hub.session.get(f"{hub.url}/ready") as resp:
        assert resp.status == 503
        body = await resp.json()
    assert body["checks"]["limits"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True


async def test_a_burst_of_one_citizens_first_submissions_runs_scrypt_once(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # scrypt is deliberately costly; 24 clients of one citizen starting together must not each
    # pay it (seconds of CPU), and a wrong password in the burst must still be refused.
    from gateway.identity import authenticate

    checks: list[str] = []
    original = authenticate.verify_secret

    def counted(secret: str, stored: str) -> bool:
        checks.append(secret)
        return original(secret, stored)

    monkeypatch.setattr(authenticate, "verify_secret", counted)
    good = [hub.post(view_submission()) for _ in range(24)]
    bad = [hub.post(view_submission(password="not-the-password")) for _ in range(4)]
    replies = [wire.read(r) for r in await asyncio.gather(*good, *bad)]
    assert [r.qualifier for r in replies[:24]] == ["acknowledgement"] * 24
    assert [r.error_number for r in replies[24:]] == [1046] * 4
    assert sorted(set(checks)) == sorted({"not-the-password", citizens_list()[0].password})
    assert checks.count(citizens_list()[0].password) == 1
