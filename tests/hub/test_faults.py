"""Connectors that hang, raise, ask to retry or fail: each ends in a GovTalk answer, nothing stuck."""

from __future__ import annotations

import asyncio
from typing import Any

from connectors.protocol import (
    BusinessError,
    ConnectorContext,
    Failed,
    Outcome,
    Retry,
    Transaction,
)
from gateway.govtalk.errors import GovTalkError
from gateway.routing.dispatcher import UNRECORDED_ALLOWANCE
from gateway.routing.faults import FaultProfile
from gateway.store import submissions as store
from gateway.store.models import RESPONSE
from gateway.web.keys import DB, DISPATCHER
from tests.conftest import Hub
from tests.hub import wire
from tests.hub.faulty import Misbehaving, connector_set, route, routed_row
from tests.hub.test_dsp import acknowledged, poll_until_final

BODY = '<Ping xmlns="urn:test:ping">hello</Ping>'


async def start(hub_factory, tmp_path, *connectors: Misbehaving, **route_extra) -> Hub:
    config = {
        "demo": False,
        "connectors": {c.name: {"type": "test"} for c in connectors},
        "routes": [route(f"TEST-{c.name.upper()}", c.name, **route_extra) for c in connectors],
    }
    return await hub_factory(config, connectors=connector_set(tmp_path, *connectors))


async def final_answer(hub: Hub, class_: str, seconds: float = 10) -> wire.Reply:
    xml = wire.submission(class_, BODY, organisation="TESTORG")
    return await poll_until_final(hub, class_, await acknowledged(hub, xml), seconds=seconds)


async def test_hanging_connector_ends_in_2005_and_a_dead_letter(hub_factory, tmp_path) -> None:
    hang = Misbehaving("hang", "hang")
    hub = await start(hub_factory, tmp_path, hang)
    reply = await final_answer(hub, "TEST-HANG")
    assert reply.qualifier == "error"
    assert reply.error_number == 2005
    assert reply.errors[0]["raised_by"] == "Gateway"
    assert "3 attempt" in reply.errors[0]["text"]
    assert len(hang.calls) == 3  # first try + 2 retries
    letters = await store.dead_letters(hub.app[DB])
    assert [(d.correlation_id, d.error_number) for d in letters] == [(reply.correlation_id, 2005)]


async def test_slow_fault_table_read_does_not_use_up_the_connectors_time(
    hub_factory, tmp_path
) -> None:
    # A read slower than the route's 0.3 s timeout stands in for a loaded machine or a locked
    # file; before the fix it counted against the connector, which timed out without a call.
    echo = Misbehaving("echo", "answer")
    hub = await start(hub_factory, tmp_path, echo)
    faults = hub.app[DISPATCHER].faults
    read = faults.current

    async def slow_read(connector: str) -> FaultProfile | None:
        await asyncio.sleep(0.5)
        return await read(connector)

    faults.current = slow_read  # type: ignore[method-assign]
    reply = await final_answer(hub, "TEST-ECHO")
    assert reply.qualifier == "response"
    assert [tx.attempt for tx in echo.calls] == [1]


async def test_raising_connector_ends_in_3000(hub_factory, tmp_path) -> None:
    boom = Misbehaving("boom", "raise")
    hub = await start(hub_factory, tmp_path, boom)
    reply = await final_answer(hub, "TEST-BOOM")
    assert reply.error_number == 3000
    assert reply.errors[0]["type"] == "fatal"
    assert "exploded" in reply.errors[0]["text"]
    assert len(boom.calls) == 3


async def test_retry_outcome_exhausted_is_2005(hub_factory, tmp_path) -> None:
    busy = Misbehaving("busy", "retry")
    hub = await start(hub_factory, tmp_path, busy)
    reply = await final_answer(hub, "TEST-BUSY")
    assert reply.error_number == 2005
    assert "busy" in reply.errors[0]["text"]


async def test_permanent_failure_is_3000_without_retry(hub_factory, tmp_path) -> None:
    down = Misbehaving("down", "fail")
    hub = await start(hub_factory, tmp_path, down)
    reply = await final_answer(hub, "TEST-DOWN")
    assert reply.error_number == 3000
    assert "maintenance" in reply.errors[0]["text"]
    assert len(down.calls) == 1


async def test_transient_failure_is_retried_to_success(hub_factory, tmp_path) -> None:
    flaky = Misbehaving("flaky", "flaky")
    hub = await start(hub_factory, tmp_path, flaky)
    reply = await final_answer(hub, "TEST-FLAKY")
    assert reply.qualifier == "response"
    assert reply.body is not None and reply.body.findtext("{urn:test:echo}Attempt") == "2"
    assert [tx.attempt for tx in flaky.calls] == [1, 2]
    assert len({tx.correlation_id for tx in flaky.calls}) == 1


async def test_poll_while_pending_gets_another_ack(hub_factory, tmp_path) -> None:
    slow = Misbehaving("slow", "slow", delay=0.25)
    # A timeout well past the delay: the route's default 0.3 s left a loaded CI machine 50 ms,
    # and a timed-out attempt is (rightly) tried again, which this test is not about.
    hub = await start(hub_factory, tmp_path, slow, poll_interval=3, timeout=2)
    ack = wire.read(await hub.post(wire.submission("TEST-SLOW", BODY, organisation="TESTORG")))
    assert ack.correlation_id
    early = wire.read(await hub.post(wire.poll("TEST-SLOW", ack.correlation_id), path="/poll"))
    assert early.qualifier == "acknowledgement"
    assert early.correlation_id == ack.correlation_id
    assert early.poll_interval == 3
    # The connector answers after 0.25 s; on a loaded machine the dispatcher may take longer.
    for _ in range(100):
        await asyncio.sleep(0.1)
        later = wire.read(await hub.post(wire.poll("TEST-SLOW", ack.correlation_id), path="/poll"))
        if later.qualifier != "acknowledgement":
            break
    assert later.qualifier == "response"
    assert len(slow.calls) == 1


async def test_delete_before_answer_still_reaches_the_back_office(hub_factory, tmp_path) -> None:
    slow = Misbehaving("slow", "slow", delay=0.2)
    hub = await start(hub_factory, tmp_path, slow, timeout=2)  # one call, even on a loaded machine
    ack = wire.read(await hub.post(wire.submission("TEST-SLOW", BODY, organisation="TESTORG")))
    assert ack.correlation_id
    deleted = wire.read(await hub.post(wire.delete("TEST-SLOW", ack.correlation_id)))
    assert deleted.function == "delete" and deleted.qualifier == "response"
    await asyncio.sleep(0.5)
    assert [tx.correlation_id for tx in slow.calls] == [ack.correlation_id]
    gone = wire.read(await hub.post(wire.poll("TEST-SLOW", ack.correlation_id), path="/poll"))
    assert gone.error_number == 2000


async def test_dead_letter_replay_redelivers(hub_factory, tmp_path) -> None:
    down = Misbehaving("down", "fail")
    hub = await start(hub_factory, tmp_path, down)
    reply = await final_answer(hub, "TEST-DOWN")
    assert reply.error_number == 3000
    db = hub.app[DB]
    [letter] = await store.dead_letters(db)
    down.mode = "ok"  # the back office is repaired
    from gateway.clock import utcnow

    assert await store.replay(db, letter.id, utcnow()) == reply.correlation_id
    assert reply.correlation_id
    async with asyncio.timeout(5):
        while True:
            again = wire.read(
                await hub.post(wire.poll("TEST-DOWN", reply.correlation_id), path="/poll")
            )
            if again.qualifier == "response":
                break
            await asyncio.sleep(0.05)
    assert await store.dead_letters(db) == []
    assert await store.replay(db, letter.id, utcnow()) is None


async def test_unusable_reply_body_is_3000_not_a_broken_poll(hub_factory, tmp_path) -> None:
    garbage = Misbehaving("garbage", "garbage")
    hub = await start(hub_factory, tmp_path, garbage)
    reply = await final_answer(hub, "TEST-GARBAGE")
    assert reply.error_number == 3000
    assert "not usable XML" in reply.errors[0]["text"]
    [letter] = await store.dead_letters(hub.app[DB])
    assert letter.error_number == 3000


class Answers(Misbehaving):
    """A back office answering every delivery with one outcome, whatever it holds."""

    def __init__(self, name: str, outcome: Outcome) -> None:
        super().__init__(name, "answer")
        self.outcome = outcome

    async def handle(self, tx: Transaction, ctx: ConnectorContext) -> Outcome:
        self.calls.append(tx)
        return self.outcome


def _xml_legal(text: str) -> bool:
    return not any(ord(c) < 0x20 and c not in "\t\n\r" for c in text)


async def test_control_characters_in_a_business_error_reach_every_poll(
    hub_factory, tmp_path
) -> None:
    # A legacy back office's text with a vertical tab and a NUL: stored as sent, the reply
    # could not carry it and every poll was a 1000.
    error = GovTalkError(3001, "Account\x0bclosed\x00", "Dept\x01", "business", ("/a\x02",))
    legacy = Answers("legacy", BusinessError((error,), "App\x1f"))
    hub = await start(hub_factory, tmp_path, legacy)
    reply = await final_answer(hub, "TEST-LEGACY")
    assert reply.error_number == 3001
    [shown] = reply.errors
    assert "Account" in shown["text"] and "closed" in shown["text"]
    assert all(_xml_legal(t) for t in (shown["text"], shown["raised_by"], *shown["locations"]))
    assert reply.body is not None
    assert reply.body.xpath("string(*[local-name()='Application'])").startswith("App")
    assert reply.correlation_id
    again = wire.read(await hub.post(wire.poll("TEST-LEGACY", reply.correlation_id), path="/poll"))
    assert again.errors == reply.errors
    assert len(legacy.calls) == 1


async def test_an_application_name_longer_than_its_column_is_cut_to_fit(
    hub_factory, tmp_path
) -> None:
    # PostgreSQL refused the 200 characters (error_application is 128): the answer was never
    # recorded and the transaction was delivered again and again.
    wordy = Answers("wordy", BusinessError((GovTalkError.of(3001, "rule broken"),), "A" * 200))
    hub = await start(hub_factory, tmp_path, wordy)
    reply = await final_answer(hub, "TEST-WORDY")
    assert reply.error_number == 3001
    assert reply.correlation_id
    record = await store.get(hub.app[DB], reply.correlation_id)
    assert record is not None and record.error_application is not None
    assert len(record.error_application) == 128 and record.error_application.startswith("AAA")
    assert len(wordy.calls) == 1


async def test_a_nul_in_a_retry_reason_still_ends_in_2005(hub_factory, tmp_path) -> None:
    # As an http-forward 429 body quotes it: PostgreSQL refused the reason (last_error), and
    # the 2005 text quoting it could not be served.
    busy = Answers("busy", Retry(0.05, "HTTP 429: busy\x00\x01"))
    hub = await start(hub_factory, tmp_path, busy)
    reply = await final_answer(hub, "TEST-BUSY")
    assert reply.error_number == 2005
    assert "busy" in reply.errors[0]["text"] and _xml_legal(reply.errors[0]["text"])
    assert [tx.attempt for tx in busy.calls] == [1, 2, 3]


async def test_a_nul_in_a_failure_reason_is_dead_lettered_once(hub_factory, tmp_path) -> None:
    down = Answers("down", Failed("HTTP 400: bad\x00request"))
    hub = await start(hub_factory, tmp_path, down)
    reply = await final_answer(hub, "TEST-DOWN")
    assert reply.error_number == 3000
    assert "bad" in reply.errors[0]["text"] and _xml_legal(reply.errors[0]["text"])
    [letter] = await store.dead_letters(hub.app[DB])
    assert letter.correlation_id == reply.correlation_id and "\x00" not in letter.reason
    assert len(down.calls) == 1


async def test_an_answer_the_database_refuses_becomes_a_plain_3000(
    hub_factory, tmp_path, monkeypatch
) -> None:
    # Whatever the cause, an answer that cannot be written must not leave the transaction to be
    # delivered again each time its lease runs out.
    echo = Misbehaving("echo", "answer")
    hub = await start(hub_factory, tmp_path, echo)
    answer = store.answer

    async def refusing_responses(*args: Any, final: store.FinalAnswer, **kwargs: Any) -> bool:
        if final.state == RESPONSE:
            raise ValueError("value refused by the database")
        return await answer(*args, final=final, **kwargs)

    monkeypatch.setattr(store, "answer", refusing_responses)
    reply = await final_answer(hub, "TEST-ECHO")
    assert reply.error_number == 3000
    assert "could not be recorded" in reply.errors[0]["text"]
    [letter] = await store.dead_letters(hub.app[DB])
    assert (letter.correlation_id, letter.error_number) == (reply.correlation_id, 3000)
    assert len(echo.calls) == 1


async def test_work_claimed_past_its_attempts_is_given_up_not_delivered_again(
    hub_factory, tmp_path
) -> None:
    # Its three allowed attempts and the two more a crash is allowed were made, none of their
    # ends recorded (the process died each time, or the database refused the answer): the lease
    # ran out and it is due once more.
    echo = Misbehaving("echo", "answer")
    hub = await start(hub_factory, tmp_path, echo)
    cid = "ABC0" * 8
    await store.insert(
        hub.app[DB],
        routed_row(
            cid,
            "TEST-ECHO",
            "echo",
            attempts=3 + UNRECORDED_ALLOWANCE,
            last_error="echo did not answer within 0.3s",
        ),
    )
    hub.app[DISPATCHER].wake()
    reply = await poll_until_final(hub, "TEST-ECHO", cid)
    assert reply.error_number == 2005
    assert "5 attempt" in reply.errors[0]["text"]
    [letter] = await store.dead_letters(hub.app[DB])
    assert (letter.correlation_id, letter.error_number, letter.attempts) == (cid, 2005, 5)
    assert echo.calls == []
