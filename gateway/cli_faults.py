"""`gateway faults`: set, list and clear connector faults on the hub's database.

Works whether or not a hub is running: running hubs on the same database pick a change up
within their dispatcher's cache interval (a second).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click
import structlog

from gateway.cli_support import cli_errors, run_with_database
from gateway.config import Config
from gateway.errors import ProblemError

if TYPE_CHECKING:
    from gateway.store.engine import Database

T = TypeVar("T")


def _config() -> Config:
    config: Config = click.get_current_context().obj["config"]
    return config


def _on_database(work: Callable[[Database], Awaitable[T]]) -> T:
    """Run work on the hub's database with its audit trail in scope (changes are audited)."""

    async def audited(db: Database) -> T:
        from gateway.audit import log as audit_log
        from gateway.clock import utcnow

        trail = audit_log.AuditLog(db, utcnow)
        token = audit_log.current.set(trail)
        try:
            return await work(db)
        finally:
            audit_log.current.reset(token)
            await trail.flush()

    return _on_database_plain(audited)


def _on_database_plain(work: Callable[[Database], Awaitable[T]]) -> T:
    with cli_errors(ProblemError):
        return run_with_database(_config(), work, upgrade=True)


def _event_log() -> Any:
    """Where `faults.set` / `faults.cleared` go from the CLI: JSON lines on stderr, so stdout
    carries only the command's answer (`--json` output stays parseable)."""
    return structlog.wrap_logger(
        structlog.PrintLogger(sys.stderr),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
    ).bind(logger="gateway.faults")


def _param(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise click.BadParameter(f"'{text}' is not NAME=VALUE", param_hint="--param")
    try:
        # Numbers as numbers (ms=200, rate=0.5); anything that is not JSON is text.
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return name.strip(), value


@click.group()
def faults() -> None:
    """Fault injection: make a connector slow, failing, hanging or garbled at runtime."""


@faults.command("list")
@click.option("--json", "as_json", is_flag=True, help="The faults set and the catalogue, as JSON.")
def faults_list(as_json: bool) -> None:
    """The faults set now."""
    from gateway.routing.fault_control import list_faults
    from gateway.routing.faults import CATALOGUE_BY_NAME, catalogue_json

    current = _on_database(list_faults)
    if as_json:
        body = {"faults": [f.to_json() for f in current], "catalogue": catalogue_json()}
        click.echo(json.dumps(body, indent=2))
        return
    if not current:
        click.echo(f"no faults set; the catalogue: {', '.join(CATALOGUE_BY_NAME)}")
    for f in current:
        at = f.set_at.isoformat(timespec="seconds") if f.set_at else "?"
        click.echo(f"{f.connector}  {f.fault}  {json.dumps(dict(f.params))}  set {at}")


@faults.command("set")
@click.argument("connector")
@click.argument("fault")
@click.option("--param", "params", multiple=True, help="NAME=VALUE, repeatable (e.g. ms=200).")
@click.option("--json", "as_json", is_flag=True)
def faults_set(connector: str, fault: str, params: tuple[str, ...], as_json: bool) -> None:
    """Set FAULT on CONNECTOR (replacing any it had)."""
    from gateway.clock import utcnow
    from gateway.routing.fault_control import set_fault

    given = dict(_param(p) for p in params)
    connectors = _config().connectors

    async def work(db: Database) -> dict[str, Any]:
        profile = await set_fault(
            db, connectors, connector, fault, given, now=utcnow(), via="cli", logger=_event_log()
        )
        return profile.to_json()

    body = _on_database(work)
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    click.echo(
        f"{connector}: {fault} {json.dumps(body['params'])}; running hubs apply it within 1 s"
    )


@faults.command("clear")
@click.argument("connector")
def faults_clear(connector: str) -> None:
    """Clear CONNECTOR's fault."""
    from gateway.routing.fault_control import clear_fault

    async def work(db: Database) -> str:
        return (await clear_fault(db, connector, via="cli", logger=_event_log())).fault

    click.echo(f"{connector}: {_on_database(work)} cleared")
