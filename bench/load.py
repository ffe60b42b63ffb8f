"""The load generator: N keep-alive connections, each running one scenario in a closed loop.

Scenarios:
  ack             submission -> acknowledgement; one operation = one acknowledged submission
  cycle-password  submit (user ID + password), poll until the answer, delete; one op = one cycle
  cycle-mtls      the same over HTTPS, authenticated by the citizen's TLS client certificate
  cycle-signed    the same with a W3Csigned envelope (XML-DSig over the Body)

Every request's latency is recorded; operations and requests are counted when they complete
inside the measurement window (after a warm-up, which pays for TLS handshakes, the first scrypt
of a password, imports and caches on both sides).

Replies are read with regular expressions, not parsed: the generator shares the machine with the
server, and every microsecond it spends is one the server cannot have.

    python -m bench.load --url http://127.0.0.1:8080 --scenario ack --config gateway.toml
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import re
import ssl
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.procs import ProcessWatch

SCENARIOS = ("ack", "cycle-password", "cycle-mtls", "cycle-signed")

_QUALIFIER = re.compile(rb"<(?:\w+:)?Qualifier>([^<]*)<")
_CORRELATION = re.compile(rb"<(?:\w+:)?CorrelationID>([^<]*)<")
_ENDPOINT = re.compile(rb"<(?:\w+:)?ResponseEndPoint[^>]*>([^<]*)<")
_INTERVAL = re.compile(rb'PollInterval="(\d+)"')
_ERROR = re.compile(rb"<(?:\w+:)?Number>(\d+)<.*?<(?:\w+:)?Text>([^<]*)<", re.DOTALL)

HEADERS = {"Content-Type": "text/xml"}
# Sentinels substituted per request: cheaper than building an envelope each time.
_TID = "ABCDEF0123456789ABCDEF0123456789"
_CID = "CAFEBABECAFEBABECAFEBABECAFEBABE"


def qualifier(reply: bytes) -> bytes:
    found = _QUALIFIER.search(reply)
    return found.group(1) if found else b""


def describe(reply: bytes) -> str:
    """A short account of a reply that was not the one expected (for the error samples)."""
    found = _ERROR.search(reply)
    if found:
        return f"{found.group(1).decode()} {found.group(2).decode(errors='replace')[:120]}"
    return f"qualifier {qualifier(reply).decode(errors='replace')!r}"


# -- envelopes ------------------------------------------------------------------------------------


@dataclass
class Envelopes:
    """The envelopes a scenario sends, built once with the hub's own client-side builders."""

    class_: str
    password_submission: bytes
    unsigned_submission: bytes
    poll_template: bytes
    delete_template: bytes
    data_request: bytes
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    # Signed envelopes may not repeat (the hub refuses replays of signature or signed content),
    # and signing costs the generator CPU the server would otherwise have: a pool is signed in
    # advance, and only if it runs dry are more signed during the measurement (counted).
    signed_pool: list[bytes] = field(default_factory=list)
    signed_on_the_fly: int = 0
    _serial: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def for_demo_citizen(
        cls, cert: Path | None = None, key: Path | None = None, *, index: int = 0
    ) -> Envelopes:
        from gateway.demo import citizens_list
        from gateway.govtalk import requests
        from gateway.govtalk.serialise import serialise

        citizen = citizens_list()[index]
        enrolment = citizen.enrolments[0]
        common: dict[str, Any] = {
            "keys": enrolment.keys,
            "organisation": enrolment.organisation,
            "transaction_id": _TID,
        }
        body = enrolment.example_body()
        return cls(
            class_=enrolment.class_,
            password_submission=serialise(
                requests.submission(
                    enrolment.class_,
                    body,
                    sender_id=citizen.user_id,
                    password=citizen.password,
                    **common,
                )
            ),
            unsigned_submission=serialise(requests.submission(enrolment.class_, body, **common)),
            poll_template=serialise(requests.poll(enrolment.class_, _CID, transaction_id=_TID)),
            delete_template=serialise(requests.delete(enrolment.class_, _CID, transaction_id=_TID)),
            data_request=serialise(
                requests.data_request(
                    enrolment.class_, sender_id=citizen.user_id, password=citizen.password
                )
            ),
            cert_pem=cert.read_bytes() if cert else None,
            key_pem=key.read_bytes() if key else None,
        )

    def _tid(self) -> bytes:
        return format(next(self._serial), "X").encode()

    def password(self) -> bytes:
        return self.password_submission.replace(_TID.encode(), self._tid(), 1)

    def unsigned(self) -> bytes:
        return self.unsigned_submission.replace(_TID.encode(), self._tid(), 1)

    def poll(self, correlation_id: bytes) -> bytes:
        return self.poll_template.replace(_CID.encode(), correlation_id, 1).replace(
            _TID.encode(), self._tid(), 1
        )

    def delete(self, correlation_id: bytes) -> bytes:
        return self.delete_template.replace(_CID.encode(), correlation_id, 1).replace(
            _TID.encode(), self._tid(), 1
        )

    def _sign_one(self) -> bytes:
        from gateway.identity.signing import sign_envelope

        assert self.cert_pem is not None and self.key_pem is not None
        serial = next(self._serial)
        # The hub remembers the digest of the signed Body for a day: each Body must differ.
        # Whitespace before the payload changes the canonical Body and nothing the council sees.
        marker = "\n" + format(serial, "b").replace("0", " ").replace("1", "\t")
        unsigned = self.unsigned_submission.replace(_TID.encode(), format(serial, "X").encode())
        unsigned = unsigned.replace(b"<Body>", b"<Body>" + marker.encode(), 1)
        return sign_envelope(unsigned, self.cert_pem, self.key_pem)

    def presign(self, count: int) -> float:
        """Top the signed pool up to `count` envelopes; seconds spent."""
        started = time.perf_counter()
        while len(self.signed_pool) < count:
            self.signed_pool.append(self._sign_one())
        return time.perf_counter() - started

    def signed(self) -> bytes:
        if self.signed_pool:
            return self.signed_pool.pop()
        self.signed_on_the_fly += 1
        return self._sign_one()


# -- measurement ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadSettings:
    seconds: float = 10.0
    concurrency: int = 32
    warmup: float = 1.0
    # Pause before the first poll, doubling for each further one up to the PollInterval the hub
    # asked for. Clients honour PollInterval (1 s on the demo routes): waiting that long every
    # time would measure the sleep, not the hub. Polling early is allowed (it gets another ack),
    # but a fixed short delay turns a slow hub's backlog into a flood of polls that slows it
    # further; backing off is what an eager client does.
    poll_delay: float = 0.02
    max_polls: int = 500
    timeout: float = 60.0


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarise(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    ms = 1000.0
    return {
        "count": len(ordered),
        "mean_ms": (sum(ordered) / len(ordered) * ms) if ordered else 0.0,
        "p50_ms": percentile(ordered, 50) * ms,
        "p95_ms": percentile(ordered, 95) * ms,
        "p99_ms": percentile(ordered, 99) * ms,
        "max_ms": (ordered[-1] * ms) if ordered else 0.0,
    }


@dataclass
class Measurement:
    scenario: str
    side: str
    seconds: float
    concurrency: int
    operations: int
    ops_per_s: float
    requests: int
    requests_per_s: float
    errors: int
    error_samples: dict[str, int]
    latency: dict[str, dict[str, float]]
    polls_per_cycle: float | None
    client_cpu: float  # the generator's CPU time over the window, in cores
    server_cpu: float | None  # the server tree's, in cores
    # The busiest server process's main thread (its event loop), in cores: near 1.0 it is the
    # bottleneck however many cores the machine has.
    server_loop_cpu: float | None
    server_peak_rss_mb: float | None
    signed_on_the_fly: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Failed(Exception):
    pass


class _Run:
    def __init__(
        self,
        scenario: str,
        submission_url: str,
        envelopes: Envelopes,
        settings: LoadSettings,
        window: tuple[float, float],
    ) -> None:
        self.scenario = scenario
        self.submission_url = submission_url
        self.envelopes = envelopes
        self.settings = settings
        self.window_start, self.window_end = window
        self.latencies: dict[str, list[float]] = {"submit": [], "poll": [], "delete": []}
        self.operations = 0
        self.requests = 0
        self.errors: Counter[str] = Counter()
        self.polls: list[int] = []
        self.next_submission: Callable[[], bytes] = {
            "ack": envelopes.password,
            "cycle-password": envelopes.password,
            "cycle-mtls": envelopes.unsigned,
            "cycle-signed": envelopes.signed,
        }[scenario]

    def _in_window(self, finished: float) -> bool:
        return self.window_start <= finished <= self.window_end

    async def post(self, session: aiohttp.ClientSession, url: str, data: bytes, kind: str) -> bytes:
        started = time.perf_counter()
        async with session.post(url, data=data, headers=HEADERS) as resp:
            body = await resp.read()
            status = resp.status
        finished = time.perf_counter()
        if self._in_window(finished):
            self.latencies[kind].append(finished - started)
            self.requests += 1
        if status != 200:
            raise _Failed(f"HTTP {status} on {kind}")
        return body

    def _fail(self, text: str) -> None:
        if time.perf_counter() >= self.window_start:
            self.errors[text] += 1

    async def ack(self, session: aiohttp.ClientSession) -> None:
        reply = await self.post(session, self.submission_url, self.next_submission(), "submit")
        if qualifier(reply) != b"acknowledgement":
            raise _Failed(f"submit: {describe(reply)}")
        if self._in_window(time.perf_counter()):
            self.operations += 1

    async def cycle(self, session: aiohttp.ClientSession) -> None:
        envelopes = self.envelopes
        ack = await self.post(session, self.submission_url, self.next_submission(), "submit")
        if qualifier(ack) != b"acknowledgement":
            raise _Failed(f"submit: {describe(ack)}")
        found_cid, found_endpoint = _CORRELATION.search(ack), _ENDPOINT.search(ack)
        if not found_cid or not found_endpoint:
            raise _Failed("acknowledgement without CorrelationID or ResponseEndPoint")
        correlation_id, poll_url = found_cid.group(1), found_endpoint.group(1).decode()
        polls = 0
        delay = self.settings.poll_delay
        reply = ack
        while True:
            interval = _INTERVAL.search(reply)
            await asyncio.sleep(min(delay, float(interval.group(1)) if interval else 1.0))
            delay *= 2
            reply = await self.post(session, poll_url, envelopes.poll(correlation_id), "poll")
            polls += 1
            answer = qualifier(reply)
            if answer != b"acknowledgement":
                break
            if polls >= self.settings.max_polls:
                raise _Failed(f"no answer after {polls} polls")
        deleted = await self.post(
            session, self.submission_url, envelopes.delete(correlation_id), "delete"
        )
        if answer != b"response":
            raise _Failed(f"poll: {describe(reply)}")
        if qualifier(deleted) != b"response":
            raise _Failed(f"delete: {describe(deleted)}")
        if self._in_window(time.perf_counter()):
            self.operations += 1
            self.polls.append(polls)

    async def worker(self, session: aiohttp.ClientSession) -> None:
        operation = self.ack if self.scenario == "ack" else self.cycle
        while time.perf_counter() < self.window_end:
            try:
                await operation(session)
            except _Failed as exc:
                self._fail(str(exc))
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                self._fail(f"{type(exc).__name__}: {exc}"[:160])
                # A refused or reset connection fails at once: do not spin on it.
                await asyncio.sleep(0.05)


def session_for(
    concurrency: int, ssl_context: ssl.SSLContext | None, timeout: float
) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=concurrency, ssl=ssl_context if ssl_context is not None else True
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


async def measure(
    scenario: str,
    *,
    side: str,
    submission_url: str,
    envelopes: Envelopes,
    settings: LoadSettings,
    ssl_context: ssl.SSLContext | None = None,
    server: ProcessWatch | None = None,
) -> Measurement:
    """Run one scenario with settings.concurrency connections; figures for the window only."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    begin = time.perf_counter()
    window = (begin + settings.warmup, begin + settings.warmup + settings.seconds)
    run = _Run(scenario, submission_url, envelopes, settings, window)
    cpu: dict[str, float] = {}
    loops: dict[str, dict[int, float]] = {}
    signed_before = envelopes.signed_on_the_fly

    async def clock() -> None:
        # CPU is read at the window's edges; under load these wake late by a few ms, so the
        # actual instants are kept and used.
        await asyncio.sleep(max(0.0, window[0] - time.perf_counter()))
        cpu["t0"], cpu["client0"] = time.perf_counter(), time.process_time()
        cpu["server0"] = server.cpu_seconds() if server else 0.0
        loops["start"] = server.main_thread_seconds() if server else {}
        await asyncio.sleep(max(0.0, window[1] - time.perf_counter()))
        cpu["t1"], cpu["client1"] = time.perf_counter(), time.process_time()
        cpu["server1"] = server.cpu_seconds() if server else 0.0
        loops["end"] = server.main_thread_seconds() if server else {}

    async with session_for(settings.concurrency, ssl_context, settings.timeout) as session:
        await asyncio.gather(clock(), *(run.worker(session) for _ in range(settings.concurrency)))
    wall = max(cpu["t1"] - cpu["t0"], 1e-9)
    loop_cpu = max(
        (t - loops["start"].get(pid, t) for pid, t in loops.get("end", {}).items()), default=0.0
    )
    latencies = {kind: summarise(values) for kind, values in run.latencies.items() if values}
    latencies["all"] = summarise([v for values in run.latencies.values() for v in values])
    return Measurement(
        scenario=scenario,
        side=side,
        seconds=settings.seconds,
        concurrency=settings.concurrency,
        operations=run.operations,
        ops_per_s=run.operations / settings.seconds,
        requests=run.requests,
        requests_per_s=run.requests / settings.seconds,
        errors=sum(run.errors.values()),
        error_samples=dict(run.errors.most_common(5)),
        latency=latencies,
        polls_per_cycle=(sum(run.polls) / len(run.polls)) if run.polls else None,
        client_cpu=(cpu["client1"] - cpu["client0"]) / wall,
        server_cpu=((cpu["server1"] - cpu["server0"]) / wall) if server else None,
        server_loop_cpu=(loop_cpu / wall) if server else None,
        server_peak_rss_mb=server.peak_mb if server else None,
        signed_on_the_fly=envelopes.signed_on_the_fly - signed_before,
    )


async def one_request(
    url: str, data: bytes, ssl_context: ssl.SSLContext | None = None
) -> tuple[float, bytes]:
    """A single POST on a fresh connection: (seconds, reply)."""
    async with session_for(1, ssl_context, 120) as session:
        started = time.perf_counter()
        async with session.post(url, data=data, headers=HEADERS) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{url}: HTTP {resp.status}")
        return time.perf_counter() - started, body


# -- command line: one scenario against a running server ------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--https-url", help="base HTTPS URL (cycle-mtls)")
    parser.add_argument("--config", type=Path, help="the hub's config (its PKI: mTLS, signing)")
    parser.add_argument("--scenario", choices=SCENARIOS, default="ack")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--poll-delay", type=float, default=0.02)
    args = parser.parse_args(argv)

    context: ssl.SSLContext | None = None
    cert = key = None
    if args.config is not None:
        from gateway.config import load_config
        from gateway.demo import certificate_paths, citizens_list

        config = load_config(args.config)
        cert, key = certificate_paths(config, citizens_list()[0].user_id)
    envelopes = Envelopes.for_demo_citizen(cert, key)
    url = args.url.rstrip("/")
    if args.scenario == "cycle-mtls":
        if args.https_url is None or args.config is None:
            parser.error("cycle-mtls needs --https-url and --config")
        from gateway.config import load_config
        from gateway.pki.ca import Pki
        from gateway.pki.tls import client_ssl_context

        pki = Pki.load(load_config(args.config).pki_dir)
        context = client_ssl_context(pki.ca_bundle_path, cert, key)
        url = args.https_url.rstrip("/")
    if args.scenario == "cycle-signed":
        if cert is None:
            parser.error("cycle-signed needs --config")
        envelopes.presign(int(args.seconds * 300))
    settings = LoadSettings(
        seconds=args.seconds,
        concurrency=args.concurrency,
        warmup=args.warmup,
        poll_delay=args.poll_delay,
    )
    result = asyncio.run(
        measure(
            args.scenario,
            side="server",
            submission_url=f"{url}/submission",
            envelopes=envelopes,
            settings=settings,
            ssl_context=context,
        )
    )
    print(json.dumps(result.as_dict(), indent=2))


if __name__ == "__main__":
    main()
