"""The tamper-evident audit trail: events recorded, chain verified, tampering named, export offline."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.audit.chain import GENESIS, record_hash, verify
from gateway.audit.export import verify_chain
from gateway.audit.log import Signer, read_chain, signature_problem
from gateway.cli import main
from gateway.pki.ca import Pki
from gateway.store.engine import Database
from gateway.web.keys import AUDIT, DB
from tests.conftest import Hub, HubFactory
from tests.hub import wire
from tests.hub.test_dsp import VIEW, acknowledged, poll_until_final

DEMO_BODY = None


async def run_cli(*args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(CliRunner().invoke, main, list(args))
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


async def busy_hub(hub_factory: HubFactory, tmp_path: Path) -> tuple[Hub, Path]:
    config = tmp_path / "gateway.toml"
    config.write_text(f'data_dir = "{tmp_path / "var"}"\n[pki]\ndir = "{tmp_path / "certs"}"\n')
    hub: Hub = await hub_factory(
        {"data_dir": str(tmp_path / "var"), "pki": {"dir": str(tmp_path / "certs")}}
    )
    from gateway.demo import citizens_list

    citizen = citizens_list()[0]
    enrolment = citizen.enrolments[0]
    for password in (citizen.password, "wrong-password", citizen.password):
        reply = wire.read(
            await hub.post(
                wire.submission(
                    VIEW,
                    enrolment.example_body(),
                    user=citizen.user_id,
                    password=password,
                    keys=enrolment.keys,
                    organisation=enrolment.organisation,
                )
            )
        )
        assert reply.qualifier in ("acknowledgement", "error", "response")
    await asyncio.sleep(0.5)  # the dispatcher answers
    trail = hub.app[AUDIT]
    await trail.drained()
    return hub, config


async def test_events_are_chained_and_verify(hub_factory: HubFactory, tmp_path: Path) -> None:
    hub, config = await busy_hub(hub_factory, tmp_path)
    db: Database = hub.app[DB]
    async with db.read() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT seq, event, outcome, detail, prev_hash, hash, body_digest FROM audit_records ORDER BY seq"
                )
            )
        ).all()
    events = [r.event for r in rows]
    assert events[0] == "hub.started"
    assert events.count("dsp.received") == 2
    refused = [r for r in rows if r.event == "dsp.refused"]
    assert refused and refused[0].outcome == "refused"
    assert "1046" in json.dumps(refused[0].detail) or "1046" in str(refused[0].detail)
    # Who sent what was refused: the peer's address, beside the request id.
    detail = (
        refused[0].detail if isinstance(refused[0].detail, dict) else json.loads(refused[0].detail)
    )
    assert detail["peer"] == "127.0.0.1" and detail["request_id"]
    assert "dispatch.answered" in events
    received = next(r for r in rows if r.event == "dsp.received")
    assert received.body_digest and len(received.body_digest) == 64
    assert rows[0].prev_hash == GENESIS
    assert all(rows[i].prev_hash == rows[i - 1].hash for i in range(1, len(rows)))
    # Passwords never reach the trail.
    assert "wrong-password" not in " ".join(str(r.detail) for r in rows)

    signer = hub.app[AUDIT]
    from gateway.audit.log import Signer
    from gateway.pki.ca import Pki

    pki = Pki.load(tmp_path / "certs")
    assert await signer.checkpoint(Signer.from_files(pki.server_cert_path, pki.server_key_path))
    code, output = await run_cli("--config", str(config), "audit", "verify")
    assert code == 0, output
    assert f"{len(rows)} records, 1 signed checkpoints" in output


async def tamper(db: Database, sql: str) -> None:
    async with db.transaction() as session:
        await session.execute(text(sql))


async def test_verify_names_an_edited_a_deleted_and_a_reordered_record(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    hub, config = await busy_hub(hub_factory, tmp_path)
    db: Database = hub.app[DB]
    export = tmp_path / "trail.json"
    code, output = await run_cli("--config", str(config), "audit", "export", str(export))
    assert code == 0, output
    data = json.loads(export.read_text())
    n = len(data["records"])
    assert n >= 6

    def offline(records: list[dict[str, object]]) -> tuple[int, str]:
        copy = dict(data, records=records)
        path = tmp_path / "copy.json"
        path.write_text(json.dumps(copy))
        result = CliRunner().invoke(main, ["audit", "verify", "--file", str(path)])
        return result.exit_code, result.output

    assert offline(data["records"])[0] == 0
    edited = [dict(r) for r in data["records"]]
    edited[2]["outcome"] = "ok" if edited[2]["outcome"] != "ok" else "refused"
    code, output = offline(edited)
    assert code == 1 and "record 3 was altered" in output
    deleted = [r for r in data["records"] if r["seq"] != 4]
    code, output = offline(deleted)
    assert code == 1 and "record 4 is missing" in output
    swapped = [dict(r) for r in data["records"]]
    for key in (
        "at",
        "event",
        "outcome",
        "actor",
        "correlation_id",
        "detail",
        "body_digest",
        "prev_hash",
        "hash",
    ):
        swapped[3][key], swapped[4][key] = data["records"][4][key], data["records"][3][key]
    code, output = offline(swapped)
    assert code == 1 and "record 4 is out of order (reordered)" in output

    # The same, in the hub's own database: an edit by someone with SQL access is caught.
    await tamper(db, "UPDATE audit_records SET actor = 'someone-else' WHERE seq = 2")
    code, output = await run_cli("--config", str(config), "audit", "verify")
    assert code == 1 and "record 2 was altered" in output


async def test_cutting_the_tail_off_is_caught_by_the_signed_checkpoint(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    hub, config = await busy_hub(hub_factory, tmp_path)
    from gateway.audit.log import Signer
    from gateway.pki.ca import Pki

    pki = Pki.load(tmp_path / "certs")
    head = await hub.app[AUDIT].checkpoint(
        Signer.from_files(pki.server_cert_path, pki.server_key_path)
    )
    assert head is not None
    db: Database = hub.app[DB]
    await tamper(db, f"DELETE FROM audit_records WHERE seq >= {head - 1}")
    code, output = await run_cli("--config", str(config), "audit", "verify")
    assert code == 1 and "were removed" in output
    # A forged checkpoint (re-signed by another key) does not verify either.
    await tamper(db, "DELETE FROM audit_checkpoints")
    fake = record_hash({"seq": 1}, GENESIS)
    await tamper(
        db,
        "INSERT INTO audit_checkpoints (seq, hash, at, signature, certificate_pem) VALUES "
        f"(1, '{fake}', '2026-01-01 00:00:00', 'AAAA', 'not a certificate')",
    )
    code, output = await run_cli("--config", str(config), "audit", "verify")
    assert code == 1


async def test_a_body_is_kept_once_however_often_it_is_recorded(tmp_path: Path) -> None:
    from sqlalchemy import func, select

    from gateway.audit.chain import verify
    from gateway.audit.log import AuditLog, read_chain
    from gateway.clock import utcnow
    from gateway.store.audit_models import AuditBody
    from gateway.store.migrate import upgrade_async

    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    await upgrade_async(url)
    db = Database.open(url)
    try:
        trail = AuditLog(db, utcnow)
        trail.record("dsp.received", body=b"<a/>")
        await trail.flush()
        # One batch: a body already kept, the same new body twice, and an event without one.
        trail.record("dsp.received", body=b"<a/>")
        trail.record("dsp.received", body=b"<b/>")
        trail.record("dsp.received", body=b"<b/>")
        trail.record("dispatch.answered")
        await trail.flush()
        async with db.read() as session:
            kept = await session.scalar(select(func.count()).select_from(AuditBody))
        assert kept == 2
        records, checkpoints = await read_chain(db)
        assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
        assert verify(records, checkpoints, lambda _: None).ok
    finally:
        await db.aclose()


async def test_a_submissions_receipt_and_answer_records_commit_with_them(
    hub_factory: HubFactory,
) -> None:
    # The trail's writer holds other events back for an hour here: what the hub has
    # acknowledged, and the answer it has stored, must already be recorded, as a process killed
    # now would leave them.
    hub = await hub_factory({"audit": {"flush_seconds": 3600}})
    cid = await acknowledged(hub)
    db: Database = hub.app[DB]

    async def recorded() -> list[tuple[str, str | None, str | None]]:
        async with db.read() as session:
            rows = await session.execute(
                text(
                    "SELECT event, actor, body_digest FROM audit_records "
                    "WHERE correlation_id = :c ORDER BY seq"
                ),
                {"c": cid},
            )
            return [tuple(row) for row in rows]

    # The dispatcher may already have answered (the simulated council takes milliseconds), so
    # only the first record is certain here.
    (event, actor, digest), *_ = await recorded()
    assert (event, actor) == ("dsp.received", "DEMO0SUN0001")
    assert digest is not None  # the body it received, by digest
    assert (await poll_until_final(hub, VIEW, cid)).qualifier == "response"
    assert [event for event, _, _ in await recorded()] == ["dsp.received", "dispatch.answered"]
    records, checkpoints = await read_chain(db)
    assert verify(records, checkpoints, signature_problem).ok


async def _raw_get(port: int, path: str, header: bytes) -> bytes:
    """A GET with a header line as raw bytes (clients can send any)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()
        + header
        + b"\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


async def test_a_request_id_of_undecodable_bytes_does_not_stop_the_trail(
    hub_factory: HubFactory,
) -> None:
    # Its bytes reached every audit record of the request as text UTF-8 cannot carry, and the
    # writer retried that batch for ever: no event after it was written.
    hub = await hub_factory({"audit": {"flush_seconds": 0.01}})
    trail = hub.app[AUDIT]
    reply = await _raw_get(hub.config.server.port, "/api/nothing-here", b"X-Request-ID: \xff\xfe")
    assert b" 404 " in reply.split(b"\r\n")[0]
    assert b"\xff\xfe" not in reply  # a fresh id instead of the client's
    async with hub.session.get(f"{hub.url}/api/nothing-either") as resp:
        assert resp.status == 404
    await asyncio.wait_for(trail.drained(), 10)
    async with hub.app[DB].read() as session:
        refused = await session.scalar(
            text("SELECT count(*) FROM audit_records WHERE event = 'api.refused'")
        )
    assert refused == 2


async def test_a_trail_the_database_refuses_does_not_keep_the_hub_from_stopping(
    hub_factory: HubFactory,
) -> None:
    hub = await hub_factory({"audit": {"flush_seconds": 0.01, "checkpoint_seconds": 0.1}})
    async with hub.app[DB].transaction() as session:
        await session.execute(text("ALTER TABLE audit_records RENAME TO audit_records_away"))
    async with hub.session.get(f"{hub.url}/api/nothing-here") as resp:
        assert resp.status == 404  # its event cannot be written: it stays queued
    await asyncio.sleep(0.5)  # the checkpoint task is waiting for the trail to drain
    await asyncio.wait_for(hub.app.cleanup(), 20)


async def test_a_checkpoint_signed_while_the_chain_is_read_is_no_tampering(
    hub_factory: HubFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On PostgreSQL each query of a read sees its own moment: a checkpoint another hub signs
    # between reading the records and the checkpoints named a record the reader never saw.
    hub = await hub_factory({"pki": {"dir": str(tmp_path / "certs")}})
    trail = hub.app[AUDIT]
    pki = Pki.load(tmp_path / "certs")
    signer = Signer.from_files(pki.server_cert_path, pki.server_key_path)
    trail.record("test.before")
    await trail.drained()
    await trail.checkpoint(signer)
    scalars = AsyncSession.scalars
    queries = 0

    async def meanwhile(self: AsyncSession, statement: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal queries
        if "FROM audit_" not in str(statement):
            return await scalars(self, statement, *args, **kwargs)  # the hub's other readers
        queries += 1
        if queries == 2:  # between the read's two queries, whichever comes first
            trail.record("test.meanwhile")
            await trail.drained()
            await trail.checkpoint(signer)
        return await scalars(self, statement, *args, **kwargs)

    monkeypatch.setattr(AsyncSession, "scalars", meanwhile)
    records, checkpoints = await read_chain(hub.app[DB])
    monkeypatch.setattr(AsyncSession, "scalars", scalars)
    assert queries == 2
    verdict = verify_chain(records, checkpoints, pki.root_path.read_text())
    assert verdict.ok, verdict.problem
