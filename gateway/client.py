"""A GovTalk client for the hub's own tooling (demo, tests, scenarios): real HTTP, real envelopes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp

from gateway.govtalk import requests
from gateway.govtalk.model import Envelope, Qualifier
from gateway.govtalk.parse import parse
from gateway.govtalk.serialise import serialise


@dataclass(slots=True)
class Exchange:
    """One request and its reply, both as sent on the wire."""

    url: str
    sent: bytes
    received: bytes
    reply: Envelope


@dataclass(slots=True)
class Cycle:
    """A whole submit → poll … → delete conversation."""

    exchanges: list[Exchange] = field(default_factory=list)

    @property
    def final(self) -> Envelope:
        """The last reply before the delete: the response or error."""
        replies = [x.reply for x in self.exchanges if x.reply.message.function != "delete"]
        return replies[-1]


class GovTalkClient:
    def __init__(self, session: aiohttp.ClientSession, submission_url: str) -> None:
        self._session = session
        self.submission_url = submission_url

    async def send(self, url: str, envelope: Envelope | bytes) -> Exchange:
        data = envelope if isinstance(envelope, bytes) else serialise(envelope)
        async with self._session.post(url, data=data, headers={"Content-Type": "text/xml"}) as resp:
            if resp.status != 200:
                raise aiohttp.ClientResponseError(
                    resp.request_info, resp.history, status=resp.status, message=await resp.text()
                )
            received = await resp.read()
        return Exchange(url, data, received, parse(received))

    async def cycle(
        self,
        submission: Envelope | bytes,
        *,
        delete: bool = True,
        max_polls: int = 60,
        speedup: float = 1.0,
    ) -> Cycle:
        """Submit, poll at the PollInterval the hub asks for until final, then delete."""
        cycle = Cycle()
        exchange = await self.send(self.submission_url, submission)
        cycle.exchanges.append(exchange)
        reply = exchange.reply.message
        polls = 0
        while reply.qualifier == Qualifier.ACKNOWLEDGEMENT and polls < max_polls:
            await asyncio.sleep((reply.poll_interval or 1) / speedup)
            assert reply.correlation_id and reply.response_end_point
            exchange = await self.send(
                reply.response_end_point, requests.poll(reply.class_, reply.correlation_id)
            )
            cycle.exchanges.append(exchange)
            reply = exchange.reply.message
            polls += 1
        if delete and reply.correlation_id and reply.qualifier != Qualifier.ACKNOWLEDGEMENT:
            cycle.exchanges.append(
                await self.send(
                    self.submission_url, requests.delete(reply.class_, reply.correlation_id)
                )
            )
        return cycle
