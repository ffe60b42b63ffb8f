"""Hostile and malformed input: a clear GovTalk error each time, and the hub keeps serving."""

from __future__ import annotations

import gzip

import pytest

from tests.conftest import Hub
from tests.hub import wire
from tests.hub.test_dsp import view_submission

HEAD = '<GovTalkMessage xmlns="http://www.govtalk.gov.uk/CM/envelope">'


def _deep(depth: int) -> str:
    return (
        view_submission()
        .replace("<Body>", "<Body>" + "<a>" * depth)
        .replace("</Body>", "</a>" * depth + "</Body>")
    )


HOSTILE = {
    "doctype_xxe": '<?xml version="1.0"?><!DOCTYPE g [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    + view_submission().split("?>", 1)[1].replace("<Class>", "<Class>&x;"),
    "entity_bomb": '<?xml version="1.0"?><!DOCTYPE g [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
    + HEAD
    + "<EnvelopeVersion>&d;&d;&d;</EnvelopeVersion></GovTalkMessage>",
    "deep_300": _deep(300),
    "not_xml": "this is not xml at all",
    "empty": "",
    "wrong_namespace": view_submission().replace(
        "http://www.govtalk.gov.uk/CM/envelope", "urn:not:govtalk"
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_hostile_xml_is_1001_and_hub_keeps_serving(hub: Hub, name: str) -> None:
    reply = wire.read(await hub.post(HOSTILE[name]))
    assert reply.qualifier == "error"
    assert reply.error_number == 1001, reply.errors
    assert "root:" not in reply.raw.decode()  # /etc/passwd never leaks
    await assert_healthy(hub)


async def test_invalid_utf8_is_1001(hub: Hub) -> None:
    raw = (
        view_submission()
        .encode("utf-8")
        .replace(b"<TransactionID>0001", b"<TransactionID>\xff\xfe01")
    )
    reply = wire.read(await hub.post(raw))
    assert reply.error_number == 1001
    await assert_healthy(hub)


async def test_oversized_body_is_2001_before_parsing(hub_factory) -> None:
    hub = await hub_factory({"server": {"max_body_bytes": 20_000}})
    big = view_submission().replace("</Body>", "<!--" + "x" * 30_000 + "--></Body>")
    reply = wire.read(await hub.post(big))
    assert reply.error_number == 2001
    assert "20000" in reply.errors[0]["text"]

    async def chunks():
        for _ in range(10):
            yield b"<" * 5000

    # Without a Content-Length the cap still holds.
    async with hub.session.post(hub.submission_url, data=chunks()) as resp:
        assert resp.status == 200
        assert wire.read(await resp.read()).error_number == 2001
    await assert_healthy(hub)


async def test_compressed_bomb_is_capped_after_decompression(hub_factory) -> None:
    hub = await hub_factory({"server": {"max_body_bytes": 50_000}})
    bomb = gzip.compress(b" " * 5_000_000)
    assert len(bomb) < 50_000
    async with hub.session.post(
        hub.submission_url, data=bomb, headers={"Content-Encoding": "gzip"}
    ) as resp:
        assert resp.status == 200
        assert wire.read(await resp.read()).error_number == 2001
    await assert_healthy(hub)


async def assert_healthy(hub: Hub) -> None:
    async with hub.session.get(f"{hub.url}/health") as resp:
        assert resp.status == 200
    reply = wire.read(await hub.post(view_submission()))
    assert reply.qualifier == "acknowledgement", reply.errors


async def test_unknown_paths_are_404_problem_json(hub: Hub) -> None:
    async with hub.session.get(f"{hub.url}/nope") as resp:
        assert resp.status == 404
        assert resp.content_type == "application/problem+json"
    async with hub.session.get(hub.submission_url) as resp:
        assert resp.status == 405


async def test_internal_failure_is_1000_and_the_hub_keeps_answering(hub_factory) -> None:
    from sqlalchemy import text

    from gateway.web.keys import DB

    hub = await hub_factory()
    # Break the store underneath the running hub (a rename works on every backend): the next
    # submission cannot be recorded.
    async with hub.app[DB].transaction() as session:
        await session.execute(text("ALTER TABLE submissions RENAME TO submissions_gone"))
    reply = wire.read(await hub.post(view_submission(transaction_id="0999")))
    assert reply.qualifier == "error"
    assert reply.error_number == 1000
    assert reply.transaction_id == "0999"
    async with hub.session.get(f"{hub.url}/health") as resp:
        assert resp.status == 200
