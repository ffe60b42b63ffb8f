"""The benchmark, in one command: the hub against a bare aiohttp + lxml floor, alternating.

    .venv/bin/python -m bench.run [--seconds S] [--concurrency C] [--json out.json]
                                  [--workers N] [--database sqlite|postgres]

Per round: the floor (bench/floor.py) is started, measured (ack, cycle-password) and stopped; then
a real `gateway serve` on this run's data directory is started (its readiness timed on the
existing database), measured (ack, cycle-password, cycle-mtls, cycle-signed) and stopped. Floor
and hub alternate for --rounds rounds, so that the machine's other work falls on both sides, and
each side's best (or median) is kept. Then a hub is started on a second database pre-filled with
--stored submissions: a data request (list) and the ack load are run and its peak RSS kept.

Speed figures depend on the machine and what else runs on it: they are reported against targets
here, never asserted in unit tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.load import Envelopes, LoadSettings, Measurement, measure, one_request, qualifier
from bench.procs import ProcessWatch, free_port, spawn, stop, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
HUB_SCENARIOS = ("ack", "cycle-password", "cycle-mtls", "cycle-signed")
FLOOR_SCENARIOS = ("ack", "cycle-password")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the hub's configuration and process ----------------------------------------------------------


@dataclass
class HubSetup:
    """One hub data set: its directory, configuration file, ports and database."""

    directory: Path
    config_path: Path
    port: int
    https_port: int
    database_url: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def https_url(self) -> str:
        # The hub's server certificate always names 127.0.0.1 as well as localhost.
        return f"https://127.0.0.1:{self.https_port}"


def write_hub_config(directory: Path, database_url: str) -> HubSetup:
    directory.mkdir(parents=True, exist_ok=True)
    setup = HubSetup(directory, directory / "gateway.toml", free_port(), free_port(), database_url)
    # [limits]: loopback is exempt from the per-address rate limit and lockout by default
    # (gateway.web.problems.rate_limit, gateway.limits.AuthGuard); the bench says so explicitly
    # and switches the rate limit off too, so a changed default cannot throttle it silently.
    # Everything else stays at its default: the hub is measured as it ships.
    setup.config_path.write_text(
        f"data_dir = {json.dumps(str(directory / 'var'))}\n"
        "demo = true\n\n"
        "[server]\n"
        'host = "127.0.0.1"\n'
        f"port = {setup.port}\n"
        f"https_port = {setup.https_port}\n\n"
        "[database]\n"
        f"url = {json.dumps(database_url)}\n\n"
        "[pki]\n"
        f"dir = {json.dumps(str(directory / 'certs'))}\n\n"
        "[limits]\n"
        "requests_per_minute = 0\n"
        "exempt_loopback = true\n"
    )
    return setup


def serve_supports_workers() -> bool:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    return "--workers" in result.stdout


@dataclass
class Server:
    """A started floor or hub: its process, memory/CPU watch and readiness time."""

    proc: subprocess.Popen[bytes]
    watch: ProcessWatch
    ready_s: float
    log: Path

    def close(self) -> float:
        """Stop it; its peak RSS in MB (sampled until just before the stop)."""
        self.watch.close()
        stop(self.proc)
        return self.watch.peak_mb


async def start_server(command: list[str], health_url: str, log_path: Path) -> Server:
    started = time.perf_counter()
    proc = spawn(command, log_path, ROOT)
    watch = ProcessWatch(proc.pid).start()
    try:
        ready = await wait_healthy(proc, health_url, started)
    except BaseException:
        watch.close()
        stop(proc)
        raise RuntimeError(f"{command[2]} did not start; its log: {log_path}") from None
    return Server(proc, watch, ready, log_path)


async def start_hub(setup: HubSetup, workers: int | None, log_path: Path) -> Server:
    command = [sys.executable, "-m", "gateway.cli", "--config", str(setup.config_path), "serve"]
    command += ["--port", str(setup.port), "--https-port", str(setup.https_port)]
    if workers is not None:
        command += ["--workers", str(workers)]
    server = await start_server(command, f"{setup.url}/health", log_path)
    if workers and workers > 1:
        await _all_workers_up(setup.url, workers)
    return server


async def _all_workers_up(url: str, workers: int, within: float = 60) -> None:
    """Readiness is the first worker answering; the load waits for all of them."""
    import aiohttp

    seen: set[int] = set()
    deadline = time.monotonic() + within
    while len(seen) < workers and time.monotonic() < deadline:
        # A fresh connection each time, so that SO_REUSEPORT spreads them over the workers.
        async with aiohttp.ClientSession() as session, session.get(f"{url}/health") as resp:
            seen.add(int((await resp.json())["pid"]))
        await asyncio.sleep(0.02)


async def start_floor(directory: Path) -> tuple[Server, str]:
    port = free_port()
    command = [sys.executable, "-m", "bench.floor", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    return await start_server(command, f"{url}/health", directory / "floor.log"), url


async def wait_idle(watch: ProcessWatch, *, below: float = 0.1, within: float = 90) -> float:
    """Wait until the server's CPU use falls below `below` cores over 0.3 s (its
    dispatcher has drained what the previous scenario queued); seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < within:
        before = watch.cpu_seconds()
        await asyncio.sleep(0.3)
        if (watch.cpu_seconds() - before) / 0.3 < below:
            break
    return time.perf_counter() - started


# -- PostgreSQL databases -------------------------------------------------------------------------


async def create_pg_database() -> str:
    import asyncpg  # type: ignore[import-untyped]

    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_SERVER)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def drop_pg_database(url: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    admin = await asyncpg.connect(PG_SERVER)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await admin.close()


# -- figures --------------------------------------------------------------------------------------


@dataclass
class Options:
    seconds: float = 10.0
    concurrency: int = 32
    rounds: int = 2
    workers: int | None = None
    database: str = "sqlite"
    stored: int = 100_000
    pick: str = "best"
    poll_delay: float = 0.02
    warmup: float | None = None
    json_path: Path | None = None
    keep: bool = False
    profile_dir: Path | None = None

    @property
    def settings(self) -> LoadSettings:
        warmup = self.warmup if self.warmup is not None else min(1.0, max(0.3, self.seconds / 10))
        return LoadSettings(
            seconds=self.seconds,
            concurrency=self.concurrency,
            warmup=warmup,
            poll_delay=self.poll_delay,
        )


@dataclass
class Results:
    measurements: list[dict[str, Any]] = field(default_factory=list)
    readiness: dict[str, list[float]] = field(
        default_factory=lambda: {"floor": [], "hub": [], "hub_cold": []}
    )
    peak_rss_mb: dict[str, list[float]] = field(default_factory=lambda: {"floor": [], "hub": []})
    stored: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    profiles: dict[str, Any] = field(default_factory=dict)

    def add(self, round_: int, m: Measurement) -> None:
        self.measurements.append({"round": round_, **m.as_dict()})
        if m.errors:
            self.warnings.append(
                f"round {round_} {m.side} {m.scenario}: {m.errors} errors, e.g. {m.error_samples}"
            )
        line = (
            f"  {m.side:5} {m.scenario:15} {m.ops_per_s:9.1f} ops/s  {m.requests_per_s:9.1f} req/s"
            f"  p99 {m.latency['all']['p99_ms']:8.1f} ms  errors {m.errors}"
            f"  cpu: server {m.server_cpu or 0:.2f} (loop {m.server_loop_cpu or 0:.2f})"
            f" client {m.client_cpu:.2f}"
        )
        if m.polls_per_cycle is not None:
            line += f"  polls/cycle {m.polls_per_cycle:.1f}"
        log(line)

    def values(
        self, side: str, scenario: str, get: Callable[[dict[str, Any]], float]
    ) -> list[float]:
        return [
            get(m) for m in self.measurements if m["side"] == side and m["scenario"] == scenario
        ]


def choose(values: Iterable[float], pick: str, *, higher_is_better: bool) -> float:
    values = list(values)
    if not values:
        return 0.0
    if pick == "median":
        return float(statistics.median(values))
    return max(values) if higher_is_better else min(values)


def _ratio(hub: float, basis: float) -> float:
    return hub / basis if basis else 0.0


def metrics(results: Results, options: Options) -> dict[str, dict[str, Any]]:
    pick = options.pick

    def rate(side: str, scenario: str, key: str = "ops_per_s") -> float:
        return choose(results.values(side, scenario, lambda m: m[key]), pick, higher_is_better=True)

    def p99(side: str, scenario: str) -> float:
        values = results.values(side, scenario, lambda m: m["latency"]["submit"]["p99_ms"])
        return choose(values, pick, higher_is_better=False)

    floor_rps = rate("floor", "ack", "requests_per_s")
    hub_acks = rate("hub", "ack")
    hub_password = rate("hub", "cycle-password")
    hub_signed = rate("hub", "cycle-signed")
    hub_mtls = rate("hub", "cycle-mtls")
    floor_p99, hub_p99 = p99("floor", "ack"), p99("hub", "ack")
    floor_rss = choose(results.peak_rss_mb["floor"], pick, higher_is_better=False)
    stored_rss = float(results.stored.get("peak_rss_mb", 0.0))
    rounds_rss = choose(results.peak_rss_mb["hub"], pick, higher_is_better=False)
    floor_ready = choose(results.readiness["floor"], pick, higher_is_better=False)
    hub_ready = choose(results.readiness["hub"], pick, higher_is_better=False)

    def row(
        label: str,
        basis_label: str,
        basis: float,
        hub: float,
        target: str,
        passed: bool | None,
        unit: str,
    ) -> dict[str, Any]:
        return {
            "label": label,
            "unit": unit,
            "basis": basis_label,
            "floor": basis,
            "hub": hub,
            "ratio": _ratio(hub, basis),
            "target": target,
            "passed": passed,
        }

    stored_label = f"peak RSS, {options.stored:,} stored submissions"
    return {
        "acks_per_s": row(
            "acks/s",
            "floor req/s",
            floor_rps,
            hub_acks,
            "hub >= 0.35 x floor",
            _ratio(hub_acks, floor_rps) >= 0.35,
            "/s",
        ),
        "password_cycles_per_s": row(
            "password cycles/s",
            "floor req/s",
            floor_rps,
            hub_password,
            "hub >= 0.10 x floor",
            _ratio(hub_password, floor_rps) >= 0.10,
            "/s",
        ),
        "ack_p99_ms": row(
            f"p99 ack latency, {options.concurrency} connections",
            "floor p99",
            floor_p99,
            hub_p99,
            "hub <= 20 ms at 32 connections",
            hub_p99 <= 20.0,
            "ms",
        ),
        "signed_cycles_per_s": row(
            "signed cycles/s",
            "hub password cycles/s",
            hub_password,
            hub_signed,
            "signed >= 0.6 x password",
            _ratio(hub_signed, hub_password) >= 0.6,
            "/s",
        ),
        "mtls_cycles_per_s": row(
            "mTLS cycles/s",
            "hub password cycles/s",
            hub_password,
            hub_mtls,
            "(none)",
            None,
            "/s",
        ),
        "peak_rss_mb_stored": row(
            stored_label,
            "floor peak RSS",
            floor_rss,
            stored_rss,
            "hub <= 250 MB",
            0 < stored_rss <= 250.0,
            "MB",
        ),
        # Not a target, but what the hub's memory does under the round loads (32 connections
        # grow its connection pools), beside the stored-submissions figure the target is about.
        "peak_rss_mb_rounds": row(
            "peak RSS, benchmark rounds",
            "floor peak RSS",
            floor_rss,
            rounds_rss,
            "(none)",
            None,
            "MB",
        ),
        "serve_ready_s": row(
            "serve ready (existing database)",
            "floor ready",
            floor_ready,
            hub_ready,
            "hub <= 2 s",
            0 < hub_ready <= 2.0,
            "s",
        ),
    }


def table(rows: dict[str, dict[str, Any]]) -> str:
    def fmt(value: float, unit: str) -> str:
        if unit == "s":
            return f"{value:.2f} s"
        if unit == "ms":
            return f"{value:.1f} ms"
        if unit == "MB":
            return f"{value:.0f} MB"
        return f"{value:,.1f}"

    header = ["metric", "basis", "floor / basis", "hub", "hub/basis", "target", "result"]
    lines = [
        [
            r["label"],
            r["basis"],
            fmt(r["floor"], r["unit"]),
            fmt(r["hub"], r["unit"]),
            f"{r['ratio']:.3f}",
            r["target"],
            {True: "PASS", False: "FAIL", None: "info"}[r["passed"]],
        ]
        for r in rows.values()
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]

    def render(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([render(header), rule, *(render(line) for line in lines)])


# -- the machine ----------------------------------------------------------------------------------


def _cpu_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot."""
    with open("/proc/stat") as handle:
        fields = [float(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def _own_cpu() -> float:
    """CPU seconds of this process and every child it has waited for (floors, hubs, CLIs)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def machine() -> dict[str, Any]:
    import aiohttp
    import lxml.etree
    import sqlalchemy

    model = ""
    try:
        with open("/proc/cpuinfo") as handle:
            found = re.search(r"model name\s*:\s*(.+)", handle.read())
            model = found.group(1) if found else ""
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "lxml": ".".join(str(p) for p in lxml.etree.LXML_VERSION),
        "sqlalchemy": sqlalchemy.__version__,
        "load_average_at_start": os.getloadavg(),
    }


# -- the run --------------------------------------------------------------------------------------


async def floor_round(
    round_: int, work: Path, envelopes: Envelopes, options: Options, results: Results
) -> None:
    server, url = await start_floor(work)
    results.readiness["floor"].append(server.ready_s)
    try:
        for scenario in FLOOR_SCENARIOS:
            m = await measure(
                scenario,
                side="floor",
                submission_url=f"{url}/submission",
                envelopes=envelopes,
                settings=options.settings,
                server=server.watch,
            )
            results.add(round_, m)
    finally:
        results.peak_rss_mb["floor"].append(server.close())


async def hub_round(
    round_: int,
    setup: HubSetup,
    envelopes: Envelopes,
    tls: Any,
    options: Options,
    results: Results,
) -> None:
    server = await start_hub(setup, options.workers, setup.directory / f"hub-round{round_}.log")
    results.readiness["hub"].append(server.ready_s)
    log(f"  hub ready in {server.ready_s:.2f} s (existing database)")
    try:
        password_rate = 0.0
        for scenario in HUB_SCENARIOS:
            drained = await wait_idle(server.watch)
            if scenario == "cycle-signed":
                # Enough for this round at the password rate plus margin; more are signed on the
                # fly (and counted) should the hub outrun the estimate.
                wanted = int(
                    password_rate * (options.settings.seconds + options.settings.warmup) * 1.5
                )
                spent = envelopes.presign(max(wanted, 4 * options.concurrency))
                log(f"  {len(envelopes.signed_pool)} envelopes signed in advance ({spent:.1f} s)")
            m = await measure(
                scenario,
                side="hub",
                submission_url=f"{setup.https_url if scenario == 'cycle-mtls' else setup.url}/submission",
                envelopes=envelopes,
                settings=options.settings,
                ssl_context=tls if scenario == "cycle-mtls" else None,
                server=server.watch,
            )
            results.add(round_, m)
            # Left over from the previous scenario: the dispatcher still answering what the
            # last load queued. Waited out so that each scenario starts on an idle hub.
            results.measurements[-1]["idle_wait_s"] = drained
            if scenario == "cycle-password":
                password_rate = m.ops_per_s
        envelopes.signed_pool.clear()
    finally:
        results.peak_rss_mb["hub"].append(server.close())


async def stored_phase(
    work: Path, options: Options, results: Results, databases: list[str]
) -> None:
    """A hub on a database holding `options.stored` submissions: list, ack load, peak RSS."""
    from bench.prefill import prefill
    from gateway.store.migrate import upgrade_async

    url = await _new_database(work / "stored", options, databases)
    setup = write_hub_config(work / "stored", url)
    started = time.perf_counter()
    # What `gateway db upgrade` runs, in-process: a second interpreter importing the whole CLI
    # would cost seconds for nothing the figures depend on.
    await upgrade_async(url)
    migrate_s = time.perf_counter() - started
    fill_s = await prefill(url, options.stored)
    log(f"stored phase: {options.stored:,} submissions inserted in {fill_s:.1f} s")
    envelopes = Envelopes.for_demo_citizen()
    server = await start_hub(setup, options.workers, setup.directory / "hub-stored.log")
    log(f"  hub ready in {server.ready_s:.2f} s on the filled database")
    peak = 0.0
    try:
        lists: list[dict[str, Any]] = []
        for _ in range(3):
            seconds, reply = await one_request(f"{setup.url}/submission", envelopes.data_request)
            records = reply.count(b"<StatusRecord>") + reply.count(b":StatusRecord>") // 2
            lists.append(
                {"seconds": seconds, "records": records, "qualifier": qualifier(reply).decode()}
            )
        log(f"  data request: {lists[0]['records']} records in {lists[0]['seconds'] * 1000:.0f} ms")
        await wait_idle(server.watch)
        m = await measure(
            "ack",
            side="hub",
            submission_url=f"{setup.url}/submission",
            envelopes=envelopes,
            settings=options.settings,
            server=server.watch,
        )
        log(
            f"  ack load with {options.stored:,} stored: {m.ops_per_s:.1f} acks/s,"
            f" p99 {m.latency['submit']['p99_ms']:.1f} ms"
        )
    finally:
        peak = server.close()
    log(f"  peak RSS {peak:.0f} MB")
    results.stored = {
        "submissions": options.stored,
        "migrate_s": migrate_s,
        "prefill_s": fill_s,
        "ready_s": server.ready_s,
        "list_requests": lists,
        "ack_load": m.as_dict(),
        "peak_rss_mb": peak,
    }


async def _new_database(directory: Path, options: Options, databases: list[str]) -> str:
    if options.database == "postgres":
        url = await create_pg_database()
        databases.append(url)
        return url
    return f"sqlite+aiosqlite:///{directory / 'var' / 'gateway.db'}"


async def profile_phase(
    setup: HubSetup, envelopes: Envelopes, options: Options, results: Results
) -> None:
    """A hub under py-spy for the ack and cycle-password loads; figures not used as metrics."""
    from bench.profile import record, render, summarise

    assert options.profile_dir is not None
    options.profile_dir.mkdir(parents=True, exist_ok=True)
    server = await start_hub(setup, options.workers, setup.directory / "hub-profile.log")
    settings = options.settings
    try:
        for scenario in ("ack", "cycle-password"):
            await wait_idle(server.watch)
            raw = options.profile_dir / f"{scenario}.raw"
            sampling = asyncio.create_task(_record_window(record, server.proc.pid, settings, raw))
            m = await measure(
                scenario,
                side="hub",
                submission_url=f"{setup.url}/submission",
                envelopes=envelopes,
                settings=settings,
                server=server.watch,
            )
            await sampling
            summary = summarise(raw)
            text = render(summary, f"{scenario}: {m.ops_per_s:.1f} ops/s under py-spy")
            (options.profile_dir / f"{scenario}.md").write_text(text)
            results.profiles[scenario] = {"ops_per_s_under_profiler": m.ops_per_s, **summary}
            log(f"profile of {scenario}: {options.profile_dir / (scenario + '.md')}")
    finally:
        server.close()


async def _record_window(recorder: Any, pid: int, settings: LoadSettings, raw: Path) -> None:
    await asyncio.sleep(settings.warmup)
    await recorder(pid, settings.seconds, raw)


async def run(options: Options) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    results = Results()
    databases: list[str] = []
    info = machine()
    busy0, total0 = _cpu_busy()
    own0, wall0 = _own_cpu(), time.perf_counter()
    workers = options.workers
    if workers is not None:
        if await asyncio.to_thread(serve_supports_workers):
            log(f"gateway serve --workers {workers}")
        else:
            results.warnings.append(
                "--workers ignored: this `gateway serve` has no --workers option"
            )
            log("SKIPPED --workers: `gateway serve --help` shows no --workers option")
            options.workers = None
    try:
        main_url = await _new_database(work / "hub", options, databases)
        setup = write_hub_config(work / "hub", main_url)
        log(f"work directory {work}; hub database {main_url}")
        # The first start migrates, seeds the demo citizens and creates the PKI: a cold start,
        # reported apart; every later start is on an existing database.
        cold = await start_hub(setup, options.workers, setup.directory / "hub-cold.log")
        results.readiness["hub_cold"].append(cold.ready_s)
        cold.close()
        log(f"hub cold start (migrate, seed, PKI) {cold.ready_s:.2f} s")

        from gateway.config import load_config
        from gateway.demo import certificate_paths, citizens_list
        from gateway.pki.ca import Pki
        from gateway.pki.tls import client_ssl_context

        config = load_config(setup.config_path)
        cert, key = certificate_paths(config, citizens_list()[0].user_id)
        envelopes = Envelopes.for_demo_citizen(cert, key)
        tls = client_ssl_context(Pki.load(config.pki_dir).ca_bundle_path, cert, key)

        for round_ in range(1, options.rounds + 1):
            log(f"round {round_}/{options.rounds}: floor")
            await floor_round(round_, work, envelopes, options, results)
            log(f"round {round_}/{options.rounds}: hub")
            await hub_round(round_, setup, envelopes, tls, options, results)
        await stored_phase(work, options, results, databases)
        if options.profile_dir is not None:
            await profile_phase(setup, envelopes, options, results)
    finally:
        for url in databases:
            try:
                await drop_pg_database(url)
            except Exception as exc:  # the figures matter more than a leftover database
                log(f"could not drop {url}: {exc}")
        if options.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    busy1, total1 = _cpu_busy()
    wall = time.perf_counter() - wall0
    cpus = os.cpu_count() or 1
    machine_cores = (busy1 - busy0) / max(total1 - total0, 1) * cpus
    ours = (_own_cpu() - own0) / wall
    info.update(
        {
            "load_average_at_end": os.getloadavg(),
            "run_seconds": wall,
            # What the whole machine was busy with over the run, and how much of it was not
            # this benchmark (its floors, hubs and itself): the noise the figures carry.
            "machine_busy_cores": machine_cores,
            "bench_cores": ours,
            "other_work_cores": max(0.0, machine_cores - ours),
        }
    )
    rows = metrics(results, options)
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {
            "seconds": options.seconds,
            "concurrency": options.concurrency,
            "rounds": options.rounds,
            "pick": options.pick,
            "warmup": options.settings.warmup,
            "poll_delay": options.poll_delay,
            "workers": options.workers,
            "database": options.database,
            "stored": options.stored,
        },
        "machine": info,
        "metrics": rows,
        "readiness_s": results.readiness,
        "peak_rss_mb": results.peak_rss_mb,
        "stored": results.stored,
        "measurements": results.measurements,
        "profiles": results.profiles,
        "warnings": results.warnings,
    }


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement (default 10)")
    parser.add_argument("--concurrency", type=int, default=32, help="connections (default 32)")
    parser.add_argument("--rounds", type=int, default=2, help="floor/hub alternations (default 2)")
    parser.add_argument("--json", type=Path, dest="json_path", help="write the results here")
    parser.add_argument("--workers", type=int, help="gateway serve --workers N, if it has it")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--stored", type=int, default=100_000, help="submissions for the RSS test (100000)"
    )
    parser.add_argument(
        "--pick",
        choices=("best", "median"),
        default="best",
        help="per side, across rounds (default best: noise only ever slows a run down)",
    )
    parser.add_argument(
        "--poll-delay",
        type=float,
        default=0.02,
        help="seconds before the first poll, doubling up to PollInterval (0.02)",
    )
    parser.add_argument("--warmup", type=float, help="seconds before each measurement window")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    parser.add_argument(
        "--profile",
        type=Path,
        dest="profile_dir",
        help="also profile the hub with py-spy under ack and cycle-password, into this directory",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0 or args.concurrency < 1:
        parser.error("--rounds, --seconds and --concurrency must be positive")
    return Options(**vars(args))


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    report = asyncio.run(run(options))
    print()
    print(table(report["metrics"]))
    m = report["machine"]
    print(
        f"\n{m['cpus']} CPUs ({m['cpu_model']}); over the run the machine was busy"
        f" {m['machine_busy_cores']:.2f} cores, {m['other_work_cores']:.2f} of them other work;"
        f" load average {m['load_average_at_start'][0]:.2f} -> {m['load_average_at_end'][0]:.2f}"
    )
    for warning in report["warnings"]:
        print(f"warning: {warning}")
    if options.json_path is not None:
        options.json_path.write_text(json.dumps(report, indent=2, default=str))
        print(f"results: {options.json_path}")


if __name__ == "__main__":
    main()
