"""The audit trail's place in the hub's lifecycle: started first, flushed and signed last."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import structlog
from aiohttp import web

from gateway.audit import log as audit_log
from gateway.audit.log import AuditLog, Signer
from gateway.web.keys import AUDIT, CONFIG, DB

log = structlog.get_logger("gateway.audit")


async def audit_service(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx, right after the database: every later task records into this trail."""
    from gateway.web.app import CLOCK, PKI  # here, not at the top: app.py imports this module

    config = app[CONFIG].audit
    trail = AuditLog(
        app[DB], app[CLOCK], flush_seconds=config.flush_seconds, keep_bodies=config.keep_bodies
    )
    app[AUDIT] = trail
    # Set in the startup task's context: the dispatcher and other tasks started after this
    # inherit it, so their events land in this hub's trail.
    audit_log.current.set(trail)
    pki = await asyncio.to_thread(app[PKI])
    signer = await asyncio.to_thread(Signer.from_files, pki.server_cert_path, pki.server_key_path)

    async def checkpoints() -> None:
        while await trail.sleep_unless_stopped(config.checkpoint_seconds):
            try:
                if not await trail.drained_unless_stopped():
                    break  # the final checkpoint below signs what was written
                await trail.checkpoint(signer)
                await trail.purge_bodies(timedelta(days=config.body_days))
            except Exception:
                log.exception("audit.checkpoint_failed")

    writer = asyncio.create_task(trail.run(), name="audit-writer")
    signing = asyncio.create_task(checkpoints(), name="audit-checkpoints")
    audit_log.audit("hub.started")
    yield
    audit_log.audit("hub.stopping")
    # Stopped, not cancelled: neither task may be cut off inside a write transaction.
    trail.stop()
    await asyncio.gather(signing, writer, return_exceptions=True)
    try:
        await trail.checkpoint(signer)
    except Exception:
        log.exception("audit.final_checkpoint_failed")
