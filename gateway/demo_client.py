"""`gateway demo client`: one View Council Tax transaction end to end, shown on the wire."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import click
from lxml import etree

from gateway.client import GovTalkClient
from gateway.config import Config
from gateway.demo import base_url, certificate_paths, citizens_list
from gateway.govtalk import requests
from gateway.govtalk.model import Envelope, Qualifier
from gateway.govtalk.serialise import serialise
from gateway.identity.signing import sign_envelope
from gateway.pki.tls import client_ssl_context


def _pretty(data: bytes) -> str:
    try:
        parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)
        return etree.tostring(etree.fromstring(data, parser), pretty_print=True, encoding="unicode")
    except etree.XMLSyntaxError:
        return data.decode("utf-8", "replace")


def _summary(body: etree._Element) -> str:
    """A one-paragraph reading of a council tax reply, for people rather than parsers."""

    def first(name: str) -> str:
        found = body.xpath(f"string((.//*[local-name()='{name}'])[1])")
        return str(found).strip()

    if etree.QName(body).localname != "CTaxViewResponse":
        return f"\nreply: {etree.QName(body).localname}"
    address = ", ".join(
        part
        for part in (
            first("SAON"),
            first("PAON") + " " + first("StreetDescription"),
            first("Town"),
            first("PostCode"),
        )
        if part.strip()
    )
    return (
        f"\nAccount {first('AccountRef')} at {first('Name')}: {address}\n"
        f"band {first('Band')}, annual charge £{first('AnnualCharge')}, net £{first('NetCharge')}, "
        f"balance £{first('Balance')}"
    )


async def _wait_ready(session: aiohttp.ClientSession, base: str, wait: float) -> None:
    deadline = time.monotonic() + wait
    while True:
        try:
            async with session.get(f"{base}/health") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise click.ClickException(f"no hub answering at {base}/health")
        await asyncio.sleep(0.2)


async def run_demo_client(
    config: Config,
    *,
    hub: str | None,
    class_: str,
    user_id: str | None,
    wait: float,
    auth: str = "password",
) -> bool:
    """auth: password (clear, in the envelope), tls (client certificate) or signed (W3Csigned)."""
    if auth == "tls":
        base = (hub or f"https://localhost:{config.server.https_port}").rstrip("/")
    else:
        base = (hub or base_url(config)).rstrip("/")
    citizens = citizens_list()
    citizen = next((c for c in citizens if c.user_id == user_id), None) if user_id else citizens[0]
    if citizen is None:
        raise click.ClickException(f"no demo citizen {user_id}")
    enrolment = next((e for e in citizen.enrolments if e.class_ == class_), None)
    if enrolment is None:
        raise click.ClickException(f"{citizen.user_id} has no enrolment for {class_}")
    cert, key = certificate_paths(config, citizen.user_id)
    tls = None
    if auth == "tls":
        tls = client_ssl_context(config.pki_dir / "ca-bundle.pem", cert, key)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls or True)) as session:
        await _wait_ready(session, base, wait)
        client = GovTalkClient(session, f"{base}/submission")
        envelope = requests.submission(
            class_,
            enrolment.example_body(),
            sender_id=citizen.user_id,
            password=citizen.password if auth == "password" else None,
            keys=enrolment.keys,
            organisation=enrolment.organisation,
            transaction_id="1",
        )
        submission: Envelope | bytes = envelope
        if auth == "signed":
            submission = sign_envelope(serialise(envelope), cert.read_bytes(), key.read_bytes())
        cycle = await client.cycle(submission)
    for exchange in cycle.exchanges:
        reply = exchange.reply.message
        click.secho(f"\n>>> POST {exchange.url}", bold=True)
        click.echo(_pretty(exchange.sent))
        click.secho(
            f"<<< {reply.qualifier}/{reply.function}  CorrelationID {reply.correlation_id}",
            bold=True,
        )
        click.echo(_pretty(exchange.received))
    final = cycle.final.message
    ok = final.qualifier == Qualifier.RESPONSE
    if ok and cycle.final.body is not None:
        click.echo(_summary(cycle.final.body))
    click.secho(
        f"\n{class_} for {citizen.user_id} at {enrolment.organisation}: "
        + ("answered" if ok else f"ended with {final.qualifier}"),
        fg="green" if ok else "red",
        bold=True,
    )
    return ok
