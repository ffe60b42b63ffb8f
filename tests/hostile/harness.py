"""A real hub on a real socket, run on its own event loop in a background thread, so that
synchronous code (hypothesis properties, parametrised corpus tests) can talk to it over plain
HTTP and still read its audit trail and database on the hub's own loop."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import uuid
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy import select

from gateway.config import Config, parse_config
from gateway.demo import citizens_list
from gateway.store.audit_models import AuditRecord
from gateway.web.app import create_app
from gateway.web.keys import AUDIT, DB
from tests.conftest import free_port
from tests.hub import wire

T = TypeVar("T")

VIEW = "LA-CTAX-VIEW"
SUN, SED = citizens_list()[0], citizens_list()[1]
assert SUN.user_id == "DEMO0SUN0001" and SED.user_id == "DEMO0SED0001"


def view_submission(citizen: Any = SUN, **overrides: Any) -> str:
    """A View Council Tax submission by password, as real client software writes it."""
    enrolment = citizen.enrolments[0]
    args: dict[str, Any] = {
        "user": citizen.user_id,
        "password": citizen.password,
        "keys": enrolment.keys,
        "organisation": enrolment.organisation,
    }
    args.update(overrides)
    return wire.submission(VIEW, enrolment.example_body(), **args)


@dataclass
class Answer:
    """One HTTP answer, read in full."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    request_id: str = ""

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()

    def json(self) -> Any:
        return json.loads(self.body)

    def govtalk(self) -> wire.Reply:
        return wire.read(self.body)


@dataclass
class ThreadedHub:
    """A hub (create_app with config overrides) serving on 127.0.0.1 from its own thread."""

    data_dir: Path
    raw: dict[str, Any] = field(default_factory=dict)
    url: str = ""
    config: Config | None = None
    app: web.Application | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None

    def start(self) -> ThreadedHub:
        settings = dict(self.raw)
        settings.setdefault("data_dir", str(self.data_dir / "var"))
        settings.setdefault("pki", {"dir": str(self.data_dir / "certs")})
        settings.setdefault("dispatcher", {"idle_poll_seconds": 0.05})
        server = dict(settings.get("server", {}))
        server.setdefault("port", free_port())
        server.setdefault("https_port", 0)
        settings["server"] = server
        self.config = parse_config(settings)
        self.url = f"http://127.0.0.1:{self.config.server.port}"
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="hostile-hub", daemon=True)
        self._thread.start()
        self.run(self._serve(), timeout=60)
        return self

    async def _serve(self) -> None:
        assert self.config is not None
        self.app = create_app(self.config)
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.config.server.port).start()

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self.run(self._shutdown(), timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
        self._loop = None

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        # Connection handlers aiohttp left behind (a client that hung up mid-request).
        current = asyncio.current_task()
        leftover = [t for t in asyncio.all_tasks() if t is not current]
        for task in leftover:
            task.cancel()
        await asyncio.gather(*leftover, return_exceptions=True)

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float = 30) -> T:
        """Run a coroutine on the hub's loop and wait for its result."""
        assert self._loop is not None, "the hub is not running"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # -- HTTP ---------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | Iterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float = 30,
    ) -> Answer:
        """One request on a fresh connection; an X-Request-ID is added (to find its audit)."""
        assert self.config is not None
        sent = dict(headers or {})
        request_id = sent.setdefault("X-Request-ID", uuid.uuid4().hex)
        data = body.encode("utf-8") if isinstance(body, str) else body
        conn = http.client.HTTPConnection("127.0.0.1", self.config.server.port, timeout=timeout)
        try:
            chunked = data is not None and not isinstance(data, bytes)
            conn.request(method, path, body=data, headers=sent, encode_chunked=chunked)
            resp = conn.getresponse()
            return Answer(resp.status, dict(resp.headers.items()), resp.read(), request_id)
        finally:
            conn.close()

    def post_xml(self, xml: bytes | str, path: str = "/submission", **headers: str) -> Answer:
        return self.request("POST", path, xml, {"Content-Type": "text/xml", **headers})

    def dsp(self, xml: bytes | str, path: str = "/submission") -> wire.Reply:
        answer = self.post_xml(xml, path)
        assert answer.status == 200, (answer.status, answer.body[:500])
        return answer.govtalk()

    # -- the audit trail ----------------------------------------------------------------------

    def audit_for(self, request_id: str) -> list[dict[str, Any]]:
        """The audit records written while answering the request with this X-Request-ID."""

        async def query() -> list[dict[str, Any]]:
            assert self.app is not None
            await self.app[AUDIT].drained()
            async with self.app[DB].read() as session:
                rows = await session.scalars(
                    select(AuditRecord)
                    .where(AuditRecord.detail["request_id"].as_string() == request_id[:64])
                    .order_by(AuditRecord.seq)
                )
                return [
                    {
                        "event": r.event,
                        "outcome": r.outcome,
                        "actor": r.actor,
                        "correlation_id": r.correlation_id,
                        "detail": dict(r.detail),
                    }
                    for r in rows
                ]

        return self.run(query())

    # -- health, checked rather than assumed --------------------------------------------------

    def assert_healthy(self) -> None:
        """/ready is 200 with every check passing, and a normal submission is acknowledged."""
        ready = self.request("GET", "/ready")
        assert ready.status == 200, ready.body
        assert ready.json()["status"] == "ready", ready.body
        reply = self.dsp(view_submission(transaction_id="0600D"))
        assert reply.qualifier == "acknowledgement", reply.errors
        assert reply.correlation_id


def start_hub(data_dir: Path, raw: dict[str, Any] | None = None) -> ThreadedHub:
    return ThreadedHub(data_dir, dict(raw or {})).start()
