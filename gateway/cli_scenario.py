"""`gateway scenario run|load`: scripted transaction scenarios, as checks or as load."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gateway.scenario.loader import ScenarioError
from gateway.scenario.model import Scenario, load
from gateway.scenario.target import Target, embedded_hub, remote_hub

if TYPE_CHECKING:
    from gateway.scenario.steps import Polling

SUFFIX = ".scenario.yaml"


def find(paths: Sequence[Path]) -> list[Path]:
    """Scenario files named, or found under directories named, in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(path.rglob(f"*{SUFFIX}")))
        elif path.exists():
            found.append(path)
        else:
            raise click.ClickException(f"{path}: no such file or directory")
    return list(dict.fromkeys(found))


def select(paths: Sequence[Path], tags: Sequence[str], names: Sequence[str]) -> list[Scenario]:
    scenarios = []
    for path in find(paths):
        try:
            scenario = load(path)
        except ScenarioError as exc:
            raise click.ClickException(str(exc)) from None
        if tags and not set(tags) & set(scenario.tags):
            continue
        if names and not any(n.lower() in scenario.name.lower() for n in names):
            continue
        scenarios.append(scenario)
    if not scenarios:
        raise click.ClickException("no scenarios matched")
    return scenarios


@contextlib.asynccontextmanager
async def target_for(hub: str | None, hub_https: str | None) -> AsyncIterator[Target]:
    if hub is None:
        async with embedded_hub() as target:
            yield target
        return
    with tempfile.TemporaryDirectory(prefix="gateway-target-") as tmp:
        async with remote_hub(hub, hub_https, Path(tmp)) as target:
            yield target


hub_option = click.option(
    "--hub", metavar="URL", help="Run against this hub (default: an embedded one, fresh and empty)."
)
hub_https_option = click.option(
    "--hub-https", metavar="URL", help="The hub's HTTPS URL, for mutual-TLS steps (with --hub)."
)
poll_option = click.option(
    "--poll",
    "polling",
    type=click.Choice(["eager", "interval"]),
    default="eager",
    show_default=True,
    help="eager: poll again within 0.1 s (latencies to a tenth of a second); interval: wait "
    "the PollInterval the hub asks for, as GovTalk clients do (the polls real clients make).",
)


@click.group()
def scenario() -> None:
    """Scripted transaction scenarios (*.scenario.yaml)."""


@scenario.command("run")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@hub_option
@hub_https_option
@poll_option
@click.option("--tag", "tags", multiple=True, help="Only scenarios with this tag (repeatable).")
@click.option("--name", "names", multiple=True, help="Only scenarios whose name contains this.")
@click.option("--concurrency", default=4, show_default=True, help="Scenarios run at once.")
@click.option("--junit-xml", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path))
def run_command(
    paths: tuple[Path, ...],
    hub: str | None,
    hub_https: str | None,
    tags: tuple[str, ...],
    names: tuple[str, ...],
    polling: Polling,  # click.Choice gives only these
    concurrency: int,
    junit_xml: Path | None,
    json_path: Path | None,
) -> None:
    """Run scenarios; exits non-zero if any step fails."""
    from gateway.logs import configure
    from gateway.scenario import reports
    from gateway.scenario.runner import run_all

    scenarios = select(paths, tags, names)
    configure("WARNING")  # the embedded hub's own log would drown the scenario's lines

    async def go() -> list[object]:
        async with target_for(hub, hub_https) as target:
            where = "an embedded hub" if target.embedded else target.url
            click.echo(f"running {len(scenarios)} scenario(s) against {where}")
            return list(
                await run_all(
                    scenarios,
                    target,
                    concurrency=concurrency,
                    progress=lambda r, s: click.echo(reports.step_line(r, s)),
                    polling=polling,
                )
            )

    results = asyncio.run(go())
    from gateway.scenario.runner import ScenarioResult

    typed = [r for r in results if isinstance(r, ScenarioResult)]
    click.echo("\n" + reports.summary(typed))
    if junit_xml is not None:
        junit_xml.write_bytes(reports.junit_xml(typed))
    if json_path is not None:
        reports.write_json(json_path, reports.as_json(typed))
    if not all(r.ok for r in typed):
        sys.exit(1)


@scenario.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@hub_option
@hub_https_option
@poll_option
@click.option(
    "--profile",
    type=click.Choice(["smoke", "load", "stress", "soak", "spike"]),
    default="smoke",
    show_default=True,
    help="Named defaults for users and duration; --users/--duration/--iterations override.",
)
@click.option("--users", type=click.IntRange(1, 1000), help="Virtual users at once.")
@click.option("--duration", type=click.FloatRange(0.1), help="Seconds to run.")
@click.option("--iterations", type=click.IntRange(1), help="Scenario runs in all.")
@click.option("--p95", "gate_p95", default=1.0, show_default=True, help="Gate: p95 seconds.")
@click.option("--p99", "gate_p99", default=2.5, show_default=True, help="Gate: p99 seconds.")
@click.option(
    "--max-errors",
    "gate_errors",
    type=click.FloatRange(0, 1),
    default=0.05,
    show_default=True,
    help="Gate: the share of iterations that may fail (0.05: at most 5 %; 0: none).",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path))
def load_command(
    path: Path,
    hub: str | None,
    hub_https: str | None,
    polling: Polling,  # click.Choice gives only these
    profile: str,
    users: int | None,
    duration: float | None,
    iterations: int | None,
    gate_p95: float,
    gate_p99: float,
    gate_errors: float,
    json_path: Path | None,
) -> None:
    """Run one scenario as load; prints throughput and latency per step; exits 1 if a gate fails."""
    import dataclasses

    from gateway.logs import configure
    from gateway.scenario import reports
    from gateway.scenario.load import PROFILES, Gates, LoadReport, run_load

    if duration is not None and iterations is not None:
        raise click.UsageError("give --duration or --iterations, not both")
    chosen = PROFILES[profile]
    if users is not None or duration is not None or iterations is not None:
        chosen = dataclasses.replace(
            chosen,
            users=users or chosen.users,
            duration=duration if iterations is None else None,
            iterations=iterations if duration is None else None,
            phases=() if users is not None else chosen.phases,
        )
        if chosen.duration is None and chosen.iterations is None:
            chosen = dataclasses.replace(chosen, duration=PROFILES[profile].duration or 10)
    [loaded] = select([path], (), ())
    gates = Gates(p95=gate_p95, p99=gate_p99, error_rate=gate_errors)
    configure("WARNING")

    async def go() -> LoadReport:
        async with target_for(hub, hub_https) as target:
            shape = (
                f"{chosen.duration:g} s"
                if chosen.duration is not None
                else f"{chosen.iterations} runs"
            )
            click.echo(
                f"{loaded.name}: profile {chosen.name}, {chosen.users} users, {shape}, "
                f"{polling} polling"
            )
            return await run_load(loaded, target, chosen, polling=polling)

    report = asyncio.run(go())
    click.echo(f"\n{report.iterations} iterations in {report.elapsed:.1f} s\n")
    click.echo(report.table())
    click.echo("")
    failed = False
    for _, ok, detail in report.gate_results(gates):
        failed = failed or not ok
        click.echo(("  pass  " if ok else click.style("  FAIL  ", fg="red", bold=True)) + detail)
    if report.runs.first_error:
        click.echo(f"\nfirst error: {report.runs.first_error}")
    if json_path is not None:
        reports.write_json(json_path, report.as_json(gates))
    if failed:
        sys.exit(1)
