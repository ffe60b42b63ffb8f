"""The simulated council's post room for secure mail: citizens' replies, kept once by id."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from connectors.protocol import MailMessage

_DDL = """CREATE TABLE IF NOT EXISTS mail_replies (
    message_id TEXT PRIMARY KEY,
    class TEXT NOT NULL,
    keys TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    in_reply_to TEXT,
    in_reply_to_sender_message_id TEXT,
    sent_at TEXT NOT NULL)"""


class Mailbox:
    """Replies in their own SQLite file beside the council's store (the council's own system)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path)
        conn.execute(_DDL)
        return conn

    def _insert(self, message: MailMessage) -> None:
        conn = self._connect()
        try:
            with conn:
                conn.execute(
                    "INSERT OR IGNORE INTO mail_replies VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        message.id,
                        message.class_,
                        json.dumps(dict(message.keys)),
                        message.subject,
                        message.body,
                        message.in_reply_to,
                        message.in_reply_to_sender_message_id,
                        message.sent_at.isoformat(),
                    ),
                )
        finally:
            conn.close()

    def _all(self) -> list[dict[str, object]]:
        conn = self._connect()
        try:
            conn.row_factory = sqlite3.Row
            rows = conn.execute("SELECT * FROM mail_replies ORDER BY sent_at, message_id")
            return [dict(row) | {"keys": json.loads(row["keys"])} for row in rows]
        finally:
            conn.close()

    async def record(self, message: MailMessage) -> None:
        async with self._lock:
            await asyncio.to_thread(self._insert, message)

    async def replies(self) -> list[dict[str, object]]:
        async with self._lock:
            return await asyncio.to_thread(self._all)
