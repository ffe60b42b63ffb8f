"""Secure mail over real HTTP: addressing by enrolment identifier, privacy, receipts, expiry,
encryption at rest, rotation, replies to the council and the connector context."""

from __future__ import annotations

import asyncio
import base64
import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from connectors.protocol import ConnectorContext, MailMessage
from connectors.simcouncil.connector import SimulatedCouncilConnector
from gateway.config import parse_config
from gateway.demo import SEDGEMOOR, SUNDERLAND
from gateway.errors import ConfigError
from gateway.services.mail.crypto import MailCrypto, MailKeyError, field_aad
from gateway.services.mail.service import ConnectorMail, MailError
from gateway.store.mail_models import MailMessageRow
from gateway.web.keys import CONNECTORS, DB
from tests.conftest import ON_POSTGRES
from tests.mail.conftest import MOV, SED, SUN, MailHub, MailHubFactory, account_ref, citizen

NEW = "DEMO0NEW0001"


def key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


async def send_ok(hub: MailHub, account: str, **kwargs: object) -> str:
    status, data = await hub.council_send(account, **kwargs)  # type: ignore[arg-type]
    assert status == 201, data
    message_id = data["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", message_id)
    return str(message_id)


async def test_message_reaches_only_the_enrolled_citizen(mhub: MailHub) -> None:
    message_id = await send_ok(mhub, account_ref(SUN), subject="Bill 2026", body="Pay by May")

    status, data = await mhub.call("GET", "/api/mail", auth=citizen(SUN))
    assert status == 200
    [listed] = data["messages"]
    assert listed["id"] == message_id
    assert listed["read"] is False and "subject" not in listed and "body" not in listed
    assert listed["sender"] == "Sunderland City Council"

    for other in (MOV, SED):
        status, data = await mhub.call("GET", "/api/mail", auth=citizen(other))
        assert status == 200 and data["messages"] == []
        status, data = await mhub.call("GET", f"/api/mail/{message_id}", auth=citizen(other))
        assert status == 404 and data["title"] == "Not Found"
        status, _ = await mhub.call("DELETE", f"/api/mail/{message_id}", auth=citizen(other))
        assert status == 404
        status, _ = await mhub.call(
            "POST", f"/api/mail/{message_id}/reply", json={"body": "x"}, auth=citizen(other)
        )
        assert status == 404

    status, data = await mhub.call("GET", f"/api/mail/{message_id}", auth=citizen(SUN))
    assert status == 200
    assert (data["subject"], data["body"]) == ("Bill 2026", "Pay by May")

    status, data = await mhub.call("GET", "/api/notifications", auth=citizen(SUN))
    assert status == 200
    [note] = data["notifications"]
    assert note["kind"] == "mail" and note["message_id"] == message_id
    assert "Bill 2026" not in note["text"]

    status, _ = await mhub.call("GET", "/api/mail")
    assert status == 401


async def test_addressing_refusals(mhub: MailHub) -> None:
    status, data = await mhub.council_send("9999999999")
    assert status == 422 and "no citizen enrolled for CTaxAccountRef 9999999999" in data["detail"]
    # Sunderland's account ref at Sedgemoor reaches nobody.
    status, data = await mhub.council_send(account_ref(SUN), organisation=SEDGEMOOR)
    assert status == 422
    status, data = await mhub.council_send(account_ref(SUN), headers={})
    assert status == 403
    status, data = await mhub.council_send(account_ref(SUN), organisation="E00000000")
    assert status == 403
    status, data = await mhub.council_send(account_ref(SUN), expires_at="2001-01-01T00:00:00Z")
    assert status == 422


async def test_read_receipt_is_idempotent(mhub: MailHub) -> None:
    message_id = await send_ok(mhub, account_ref(SUN))
    status, first = await mhub.call("GET", f"/api/mail/{message_id}", auth=citizen(SUN))
    assert status == 200 and first["read"] is True
    mhub.clock.advance(timedelta(hours=3))
    status, second = await mhub.call("GET", f"/api/mail/{message_id}", auth=citizen(SUN))
    assert status == 200 and second["read_at"] == first["read_at"]
    status, data = await mhub.call("GET", "/api/mail", auth=citizen(SUN))
    assert data["messages"][0]["read_at"] == first["read_at"]


async def test_duplicate_sender_message_id_is_409(mhub: MailHub) -> None:
    message_id = await send_ok(mhub, account_ref(SUN), sender_message_id="bill-42")
    status, data = await mhub.council_send(account_ref(SUN), sender_message_id="bill-42")
    assert status == 409 and data["message_id"] == message_id
    # Even to another citizen: the sender's id is unique per organisation.
    status, data = await mhub.council_send(account_ref(MOV), sender_message_id="bill-42")
    assert status == 409
    # Another council may use the same id.
    await send_ok(
        mhub, account_ref(SED, SEDGEMOOR), organisation=SEDGEMOOR, sender_message_id="bill-42"
    )


async def test_delete_and_capacity(mail_hub_factory: MailHubFactory) -> None:
    hub: MailHub = await mail_hub_factory({"capacity": 2})
    first = await send_ok(hub, account_ref(SUN))
    await send_ok(hub, account_ref(SUN))
    status, data = await hub.council_send(account_ref(SUN))
    assert status == 507 and data["title"] == "Mailbox full"
    # Another citizen's mailbox is not full.
    await send_ok(hub, account_ref(MOV))

    status, _ = await hub.call("DELETE", f"/api/mail/{first}", auth=citizen(SUN))
    assert status == 204
    status, _ = await hub.call("DELETE", f"/api/mail/{first}", auth=citizen(SUN))
    assert status == 404
    status, _ = await hub.call("GET", f"/api/mail/{first}", auth=citizen(SUN))
    assert status == 404
    await send_ok(hub, account_ref(SUN))
    status, data = await hub.call("GET", "/api/mail", auth=citizen(SUN))
    assert len(data["messages"]) == 2


async def test_expiry_tells_the_sender_when_unread(mail_hub_factory: MailHubFactory) -> None:
    hub: MailHub = await mail_hub_factory({"expiry_interval_seconds": 0.05})
    expires = (hub.clock() + timedelta(days=7)).isoformat()
    unread = await send_ok(hub, account_ref(SUN), sender_message_id="unread-1", expires_at=expires)
    read = await send_ok(hub, account_ref(SUN), sender_message_id="read-1", expires_at=expires)
    deleted = await send_ok(hub, account_ref(MOV), sender_message_id="del-1", expires_at=expires)
    forever = await send_ok(hub, account_ref(SUN), sender_message_id="forever-1")
    assert (await hub.call("GET", f"/api/mail/{read}", auth=citizen(SUN)))[0] == 200
    assert (await hub.call("DELETE", f"/api/mail/{deleted}", auth=citizen(MOV)))[0] == 204

    await asyncio.sleep(0.2)
    status, data = await hub.call(
        "GET", "/api/council/mail/expired", headers={"X-Council": SUNDERLAND}
    )
    assert status == 200 and data["reports"] == []

    hub.clock.advance(timedelta(days=8))
    reports: list[dict[str, object]] = []
    for _ in range(100):  # the background task runs every 0.05 s
        status, data = await hub.call(
            "GET", "/api/council/mail/expired", headers={"X-Council": SUNDERLAND}
        )
        reports = data["reports"]
        if len(reports) == 2:
            break
        await asyncio.sleep(0.05)
    assert {(r["message_id"], r["sender_message_id"], r["deleted_unread"]) for r in reports} == {
        (unread, "unread-1", False),
        (deleted, "del-1", True),
    }
    # Idempotent: nothing new is reported, whoever runs expiry again.
    assert await hub.mail.expire() == 0
    since = max(int(r["id"]) for r in reports)  # type: ignore[call-overload]
    status, data = await hub.call(
        "GET", f"/api/council/mail/expired?since={since}", headers={"X-Council": SUNDERLAND}
    )
    assert data["reports"] == []
    # Sedgemoor hears nothing of Sunderland's mail.
    status, data = await hub.call(
        "GET", "/api/council/mail/expired", headers={"X-Council": SEDGEMOOR}
    )
    assert data["reports"] == []
    # The citizen no longer sees the expired message; the one without expiry stays.
    status, data = await hub.call("GET", "/api/mail", auth=citizen(SUN))
    assert [m["id"] for m in data["messages"]] == [forever]
    status, _ = await hub.call("GET", f"/api/mail/{unread}", auth=citizen(SUN))
    assert status == 410


async def test_encrypted_at_rest(mhub: MailHub) -> None:
    subject = "Subject-PLAINTEXT-" + os.urandom(6).hex()
    body = "Body-PLAINTEXT-" + os.urandom(6).hex()
    message_id = await send_ok(mhub, account_ref(SUN), subject=subject, body=body)
    status, data = await mhub.call(
        "POST",
        f"/api/mail/{message_id}/reply",
        json={"body": "Reply-PLAINTEXT-secret"},
        auth=citizen(SUN),
    )
    assert status == 201, data
    status, data = await mhub.call("GET", f"/api/mail/{message_id}", auth=citizen(SUN))
    assert data["subject"] == subject

    async with mhub.app[DB].read() as session:
        row = (
            await session.execute(
                text("SELECT key_id, subject_ct, body_ct FROM mail_messages WHERE id = :id"),
                {"id": message_id},
            )
        ).one()
        stored = [
            bytes(ct) for r in (await session.execute(text("SELECT body_ct FROM mail_messages")))
            for ct in r
        ]  # fmt: skip
    for ciphertext in (row[1], row[2], *stored):
        for plain in (subject, body, "Reply-PLAINTEXT-secret"):
            assert plain.encode() not in bytes(ciphertext)
    if not ON_POSTGRES:
        # The files themselves, write-ahead log included, hold no plaintext either.
        db_file = mhub.data_dir / "gateway.db"
        files = [p for p in (db_file, Path(f"{db_file}-wal")) if p.exists()]
        assert Path(f"{db_file}-wal") in files  # WAL mode: the recent writes are there
        for path in files:
            raw = path.read_bytes()
            for plain in (subject, body, "Reply-PLAINTEXT-secret"):
                assert plain.encode() not in raw, (path, plain)
                assert plain.encode("utf-16-le") not in raw
    assert row[0] == "local"  # the development key, from data_dir/mail.key
    assert len(row[1]) == 12 + len(subject) + 16  # nonce, ciphertext, tag
    key_file = mhub.data_dir / "mail.key"
    assert key_file.stat().st_mode & 0o777 == 0o600


async def test_key_rotation(mail_hub_factory: MailHubFactory) -> None:
    k1, k2 = key(), key()
    hub: MailHub = await mail_hub_factory({"keys": {"k1": k1}, "current_key": "k1"})
    old = await send_ok(hub, account_ref(SUN), subject="Old subject", body="under k1")
    await hub.stop()

    hub = await mail_hub_factory({"keys": {"k1": k1, "k2": k2}, "current_key": "k2"})
    new = await send_ok(hub, account_ref(SUN), subject="New subject", body="under k2")
    status, data = await hub.call("GET", f"/api/mail/{old}", auth=citizen(SUN))
    assert status == 200 and data["body"] == "under k1"

    async def key_ids() -> dict[str, str]:
        async with hub.mail.db.read() as session:
            rows = await session.get(MailMessageRow, old), await session.get(MailMessageRow, new)
            return {r.id: r.key_id for r in rows if r is not None}

    assert await key_ids() == {old: "k1", new: "k2"}
    assert await hub.mail.reencrypt() == 1
    assert await key_ids() == {old: "k2", new: "k2"}
    await hub.stop()

    # k1 can now be retired.
    hub = await mail_hub_factory({"keys": {"k2": k2}, "current_key": "k2"})
    status, data = await hub.call("GET", f"/api/mail/{old}", auth=citizen(SUN))
    assert status == 200 and data["subject"] == "Old subject"


def test_crypto_binds_message_and_recipient() -> None:
    crypto = MailCrypto({"a": os.urandom(32)}, "a")
    blob = crypto.encrypt("hello", field_aad("m1", "U1", "body"))
    assert crypto.decrypt("a", blob, field_aad("m1", "U1", "body")) == "hello"
    for aad in (
        field_aad("m2", "U1", "body"),
        field_aad("m1", "U2", "body"),
        field_aad("m1", "U1", "subject"),
    ):
        with pytest.raises(MailKeyError, match="did not verify"):
            crypto.decrypt("a", blob, aad)
    assert crypto.encrypt("hello", b"x")[:12] != crypto.encrypt("hello", b"x")[:12]


@pytest.mark.parametrize(
    "mail",
    [
        {"keys": {"k1": "short"}, "current_key": "k1"},
        {"keys": {"k1": key()}, "current_key": "k9"},
        {"current_key": "k1"},
        {"capacity": 0},
        {"nonsense": 1},
    ],
)
def test_mail_config_refusals(mail: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=r"\[mail\]"):
        parse_config({"mail": mail})


async def test_reply_reaches_the_simulated_council(mhub: MailHub) -> None:
    message_id = await send_ok(
        mhub, account_ref(SUN), subject="Direct debit", sender_message_id="dd-7"
    )
    status, data = await mhub.call(
        "POST",
        f"/api/mail/{message_id}/reply",
        json={"body": "Please set it up"},
        auth=citizen(SUN),
    )
    assert status == 201 and data["delivered"] is True
    reply_id = data["id"]

    found = mhub.app[CONNECTORS].get(f"council-{SUNDERLAND}")
    assert found is not None
    connector = found[0]
    assert isinstance(connector, SimulatedCouncilConnector)
    [reply] = await connector.mailbox.replies()
    assert reply["message_id"] == reply_id
    assert reply["body"] == "Please set it up" and reply["subject"] == "Re: Direct debit"
    assert reply["keys"] == {"CTaxAccountRef": account_ref(SUN)}
    assert reply["in_reply_to_sender_message_id"] == "dd-7"

    status, data = await mhub.call(
        "GET", "/api/council/mail/replies", headers={"X-Council": SUNDERLAND}
    )
    assert [r["id"] for r in data["replies"]] == [reply_id]
    status, data = await mhub.call(
        "GET", "/api/council/mail/replies", headers={"X-Council": SEDGEMOOR}
    )
    assert data["replies"] == []


async def test_connector_context_send(mhub: MailHub) -> None:
    found = mhub.app[CONNECTORS].get(f"council-{SUNDERLAND}")
    assert found is not None
    ctx = found[1]
    assert ctx.mail is not None  # filled by the hub
    message_id = await ctx.mail.send(
        "LA-CTAX-VIEW",
        "CTaxAccountRef",
        account_ref(SUN),
        "From the connector",
        "Hello",
        sender_message_id="conn-1",
    )
    status, data = await mhub.call("GET", f"/api/mail/{message_id}", auth=citizen(SUN))
    assert status == 200 and data["subject"] == "From the connector"
    assert data["organisation"] == SUNDERLAND

    # A context built by hand, as a connector author's test would.
    own = ConnectorContext(
        name="council-test",
        options={},
        data_dir=mhub.data_dir / "x",
        mail=ConnectorMail(mhub.mail, SUNDERLAND, frozenset({"LA-CTAX-SPD"}), "Test council"),
    )
    assert own.mail is not None
    other = await own.mail.send(
        "LA-CTAX-SPD",
        "CTaxAccountRef",
        account_ref(MOV),
        "SPD review",
        "Still living alone?",
        sender_message_id="conn-2",
        expires_at=mhub.clock() + timedelta(days=1),
    )
    status, data = await mhub.call("GET", "/api/mail", auth=citizen(MOV))
    assert [m["id"] for m in data["messages"]] == [other]
    assert data["messages"][0]["sender"] == "Test council"
    with pytest.raises(MailError) as refused:
        await own.mail.send(
            "LA-CTAX-VIEW", "CTaxAccountRef", account_ref(MOV), "s", "b", sender_message_id="conn-3"
        )
    assert refused.value.status == 403
    with pytest.raises(MailError) as refused:
        await own.mail.send(
            "LA-CTAX-SPD", "CTaxAccountRef", account_ref(MOV), "s", "b", sender_message_id="conn-2"
        )
    assert refused.value.status == 409
    assert await own.mail.expired() == []
    mhub.clock.advance(timedelta(days=2))
    await mhub.mail.expire()
    [report] = await own.mail.expired()
    assert report.message_id == other and report.sender_message_id == "conn-2"


async def test_council_bearer_tokens(mail_hub_factory: MailHubFactory) -> None:
    hub: MailHub = await mail_hub_factory(
        {"council_tokens": {SUNDERLAND: "sun-token", SEDGEMOOR: "sed-token"}}
    )
    status, data = await hub.council_send(account_ref(SUN))  # X-Council alone is not enough
    assert status == 401
    status, data = await hub.council_send(
        account_ref(SUN), headers={"Authorization": "Bearer wrong"}
    )
    assert status == 401
    # Sedgemoor's token speaks for Sedgemoor, whatever X-Council says.
    status, data = await hub.council_send(
        account_ref(SUN), headers={"Authorization": "Bearer sed-token", "X-Council": SUNDERLAND}
    )
    assert status == 422
    status, data = await hub.council_send(
        account_ref(SUN), headers={"Authorization": "Bearer sun-token"}
    )
    assert status == 201 and data["organisation"] == SUNDERLAND


async def test_without_tokens_only_a_trusted_local_peer_speaks_for_a_council(
    mail_hub_factory: MailHubFactory,
) -> None:
    hub: MailHub = await mail_hub_factory()
    port = hub.url.rsplit(":", 1)[1]
    # A page on another site re-pointed at 127.0.0.1 (DNS rebinding) names its own host.
    status, _ = await hub.council_send(
        account_ref(SUN), headers={"X-Council": SUNDERLAND, "Host": f"rebound.example:{port}"}
    )
    assert status == 403
    status, _ = await hub.council_send(
        account_ref(SUN), headers={"X-Council": SUNDERLAND, "Host": f"localhost:{port}"}
    )
    assert status == 201
    # Behind a reverse proxy on this host every peer is loopback: allow_loopback off closes it.
    proxied: MailHub = await mail_hub_factory(admin={"allow_loopback": False})
    status, _ = await proxied.council_send(account_ref(SUN))
    assert status == 403


async def test_pin_letter_goes_to_the_mailbox_too(mail_hub_factory: MailHubFactory) -> None:
    from connectors.simcouncil.dataset import generate

    hub: MailHub = await mail_hub_factory({"pin_letters_to_mailbox": True})
    prop = generate(SUNDERLAND)[10]
    facts = {
        "CTaxAccountRef": prop.account_ref,
        "PostCode": prop.address.postcode,
        "Surname": prop.liable[0].surname,
    }
    status, data = await hub.call(
        "POST",
        "/api/enrolments",
        json={"class": "LA-CTAX-VIEW", "organisation": SUNDERLAND, "facts": facts},
        auth=citizen(NEW),
    )
    assert status == 202, data
    status, data = await hub.call("GET", "/api/mail", auth=citizen(NEW))
    [message] = data["messages"]
    assert message["sender"] == "Government Gateway"
    status, data = await hub.call("GET", f"/api/mail/{message['id']}", auth=citizen(NEW))
    pin = re.search(r"activation PIN is: ([A-Z0-9]{6,8})", data["body"])
    assert pin is not None
    status, _ = await hub.call(
        "POST", f"/api/mail/{message['id']}/reply", json={"body": "thanks"}, auth=citizen(NEW)
    )
    assert status == 422  # the hub's own letters take no replies


async def test_pin_letters_stay_out_of_the_mailbox_by_default(mhub: MailHub) -> None:
    from connectors.simcouncil.dataset import generate

    prop = generate(SUNDERLAND)[11]
    facts = {
        "CTaxAccountRef": prop.account_ref,
        "PostCode": prop.address.postcode,
        "Surname": prop.liable[0].surname,
    }
    status, data = await mhub.call(
        "POST",
        "/api/enrolments",
        json={"class": "LA-CTAX-VIEW", "organisation": SUNDERLAND, "facts": facts},
        auth=citizen(NEW),
    )
    assert status == 202, data
    status, data = await mhub.call("GET", "/api/mail", auth=citizen(NEW))
    assert data["messages"] == []


@pytest.mark.postgres
async def test_concurrent_sends_cannot_overfill_the_mailbox(
    pg_url: str, mail_hub_factory: MailHubFactory
) -> None:
    # SQLite's one writer hides the race; PostgreSQL's READ COMMITTED lets every sender count
    # the same free room unless sends to one citizen take turns.
    hub: MailHub = await mail_hub_factory({"capacity": 3}, database={"url": pg_url})
    results = await asyncio.gather(*(hub.council_send(account_ref(SUN)) for _ in range(12)))
    assert sorted(status for status, _ in results) == [201] * 3 + [507] * 9, results
    status, data = await hub.call("GET", "/api/mail", auth=citizen(SUN))
    assert status == 200 and len(data["messages"]) == 3


async def test_a_refused_reply_is_retried_with_backoff_past_replies_no_connector_takes(
    mail_hub_factory: MailHubFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub: MailHub = await mail_hub_factory()
    real_lookup = hub.mail.lookup
    assert real_lookup is not None
    # Sedgemoor's back office takes no pushed replies (as an http-forward supplier's): its
    # replies are read through GET /api/council/mail/replies and are never "delivered".
    monkeypatch.setattr(
        hub.mail, "lookup", lambda cls, org: None if org == SEDGEMOOR else real_lookup(cls, org)
    )
    to_sed = await send_ok(hub, account_ref(SED, SEDGEMOOR), organisation=SEDGEMOOR)
    for i in range(100):  # as many as a background pass takes
        status, data = await hub.call(
            "POST", f"/api/mail/{to_sed}/reply", json={"body": f"r{i}"}, auth=citizen(SED)
        )
        assert status == 201 and data["delivered"] is False
    hub.clock.advance(timedelta(seconds=1))

    # Sunderland's back office refuses twice (a blip), then takes it.
    refusals = [ConnectionError("back office blip")] * 2
    calls: list[str] = []
    real_receive = SimulatedCouncilConnector.receive_mail

    async def flaky(
        self: SimulatedCouncilConnector, message: MailMessage, ctx: ConnectorContext
    ) -> None:
        calls.append(message.id)
        if refusals:
            raise refusals.pop()
        await real_receive(self, message, ctx)

    monkeypatch.setattr(SimulatedCouncilConnector, "receive_mail", flaky)
    to_sun = await send_ok(hub, account_ref(SUN))
    status, data = await hub.call(
        "POST", f"/api/mail/{to_sun}/reply", json={"body": "please"}, auth=citizen(SUN)
    )
    assert status == 201 and data["delivered"] is False
    reply_id = data["id"]

    async def background_pass(after: timedelta) -> None:
        hub.clock.advance(after)
        await hub.mail.deliver_pending()

    await background_pass(timedelta(seconds=5))
    assert calls == [reply_id]  # not hammered at once
    await background_pass(timedelta(seconds=30))
    assert calls == [reply_id] * 2  # 30 s after the first try
    await background_pass(timedelta(seconds=30))
    assert len(calls) == 2  # the second refusal doubled the wait
    await background_pass(timedelta(seconds=40))
    assert len(calls) == 3
    found = hub.app[CONNECTORS].get(f"council-{SUNDERLAND}")
    assert found is not None and isinstance(found[0], SimulatedCouncilConnector)
    assert [r["message_id"] for r in await found[0].mailbox.replies()] == [reply_id]
    await background_pass(timedelta(hours=2))
    assert len(calls) == 3  # delivered: never sent again
    # Sedgemoor's replies are still there for its system to read.
    status, data = await hub.call(
        "GET", "/api/council/mail/replies", headers={"X-Council": SEDGEMOOR}
    )
    assert status == 200 and len(data["replies"]) == 100


async def test_numbers_and_times_out_of_range_are_refused_as_problems(mhub: MailHub) -> None:
    council = {"X-Council": SUNDERLAND}
    async with mhub.session.get(
        f"{mhub.url}/api/council/mail/expired?since=99999999999999999999", headers=council
    ) as resp:
        assert resp.status == 400 and resp.content_type == "application/problem+json"
        problem = await resp.json(content_type=None)
    assert problem["detail"] == "'since' must be a report id (0 to 2147483647)"
    status, data = await mhub.call(
        "GET", "/api/council/mail/expired?since=2147483647", headers=council
    )
    assert status == 200 and data["reports"] == []
    # 9999-12-31 23:00 at UTC-5 is in the year 10000 in UTC, where the hub keeps its times.
    status, data = await mhub.council_send(account_ref(SUN), expires_at="9999-12-31T23:00:00-05:00")
    assert status == 400, data
    assert data["detail"] == "'expires_at' is out of range: in UTC it falls outside 0001-9999"
    await send_ok(mhub, account_ref(SUN), expires_at="9999-12-31T23:00:00+00:00")
