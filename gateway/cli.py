"""The `gateway` command."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from gateway.cli_support import cli_errors, database_errors, reach_database, run_with_database
from gateway.config import Config, load_config
from gateway.errors import ConfigError


def _load(ctx: click.Context) -> Config:
    config: Config = ctx.obj["config"]
    return config


@click.group()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="GATEWAY_CONFIG",
    help="TOML configuration file (default: none; every option has a default).",
)
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """The reference Government Gateway hub."""
    with cli_errors(ConfigError):
        ctx.obj = {"config": load_config(config_path), "config_path": config_path}


@main.command()
@click.option("--host", help="Listen address (default from config: 127.0.0.1).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help="Plain-HTTP port (default from config: 8080; 0: a free one, shown at start).",
)
@click.option(
    "--https-port",
    type=click.IntRange(0, 65535),
    help="HTTPS port (default from config: 8443; 0: off).",
)
@click.option("--log-level", default="INFO", show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Hub processes sharing the ports (SO_REUSEPORT) and the database.",
)
@click.option("--reuse-port", is_flag=True, hidden=True, help="Set on each worker's listeners.")
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    https_port: int | None,
    log_level: str,
    workers: int,
    reuse_port: bool,
) -> None:
    """Serve the GovTalk endpoints (/submission, /poll) over HTTP and HTTPS; dispatch to connectors."""
    import structlog

    from gateway import logs
    from gateway.demo import base_url

    config = _load(ctx)
    host = host or config.server.host
    if port == 0:
        port = _free_port(host)
    server = replace(
        config.server,
        host=host,
        port=config.server.port if port is None else port,
        https_port=config.server.https_port if https_port is None else https_port,
    )
    config = replace(config, server=server)
    logs.configure(log_level)
    # Here, before anything is started: a database that cannot be reached is one line, not the
    # traceback of the application's startup.
    with database_errors(config.database_url):
        asyncio.run(reach_database(config.database_url))
    base = base_url(config)
    https = f" and https://localhost:{server.https_port}" if server.https_port else ""
    if workers > 1:
        from gateway.web.workers import supervise, worker_command

        click.echo(f"GovTalk hub on {base}{https}: {workers} worker processes", err=True)
        serve_args = ["--host", server.host, "--port", str(server.port)]
        serve_args += ["--https-port", str(server.https_port), "--log-level", log_level]
        command = worker_command(ctx.obj["config_path"], serve_args)
        ctx.exit(supervise(config, workers, command))
    undeclared = [f"{r.class_} @ {r.organisation}" for r in config.routes if r.bvpi157 is None]
    if undeclared:
        # Not an error, so configurations written before the option still start; but such a
        # service counts towards no type in `gateway report bvpi157`.
        structlog.get_logger("gateway.config").warning(
            "routes_without_bvpi157",
            routes=undeclared,
            hint="set bvpi157 on each [[routes]] entry (docs/reports.md)",
        )
    # Here, after the supervisor's branch: it needs none of the web app (gateway/prepare.py).
    from gateway.observability import tracing
    from gateway.web.app import create_app
    from gateway.web.server import serve_forever

    # Here, not in the supervisor: each worker process exports its own spans.
    tracing.configure_from_environment()  # OTEL_* variables, with the `otel` extra installed
    with cli_errors(ConfigError):
        app = create_app(config)
    click.echo(f"GovTalk hub on {base}{https}  (POST /submission, /poll)", err=True)
    from gateway.web.workers import SUPERVISOR_ENV

    supervisor = os.environ.get(SUPERVISOR_ENV) if reuse_port else None
    asyncio.run(
        serve_forever(
            app, config, reuse_port=reuse_port, supervisor=int(supervisor) if supervisor else None
        )
    )


def _free_port(host: str) -> int:
    """A port free on host now, for `serve --port 0`.

    Chosen here rather than by the listener binding port 0, because the port is part of the
    configuration: the CRL and OCSP URLs written into certificates, the SSO issuer without
    HTTPS, the demo's URLs, the startup line, and every `--workers` process must share it.
    Another process could take it before the hub binds it: then the hub fails to start, as on
    any port in use.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.bind(address)
            port: int = probe.getsockname()[1]
    except OSError as exc:
        raise click.ClickException(f"no free port on {host}: {exc}") from exc
    return port


@main.group()
def db() -> None:
    """The hub's database."""


@db.command("upgrade")
@click.option("--revision", default="heads", show_default=True)
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Apply migrations up to REVISION."""
    from gateway.store.startup import upgrade_locked

    config = _load(ctx)
    with database_errors(config.database_url):
        asyncio.run(upgrade_locked(config.database_url, revision))
    click.echo(f"database at {config.database_url} is at {revision}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def routes(ctx: click.Context, as_json: bool) -> None:
    """The route table as configured."""
    from gateway.routing.bvpi157 import council_of

    config = _load(ctx)
    by_name = {c.name: c for c in config.connectors}
    rows: list[dict[str, Any]] = [
        {
            "class": r.class_,
            "organisation": r.organisation,
            "organisation_name": r.organisation_name,
            "connector": r.connector,
            "connector_type": by_name[r.connector].type,
            "test_connector": r.test_connector,
            "mode": r.mode,
            "poll_interval": r.poll_interval,
            "timeout": r.timeout,
            "retries": r.retries,
            "auth_level": r.auth_level,
            "bvpi157": r.bvpi157.value if r.bvpi157 is not None else None,
            "council": council_of(r),
        }
        for r in config.routes
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    headers = [
        "class",
        "organisation",
        "connector",
        "connector_type",
        "mode",
        "poll_interval",
        "timeout",
        "retries",
        "auth_level",
        "bvpi157",
        "council",
    ]
    table = [["-" if row[h] is None else str(row[h]) for h in headers] for row in rows]
    widths = [
        max(len(h), *(len(t[i]) for t in table)) if table else len(h) for i, h in enumerate(headers)
    ]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)))
    for t in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)))


@main.group()
def demo() -> None:
    """The demo councils and citizens."""


@demo.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the stable, documented form).")
@click.pass_context
def demo_info(ctx: click.Context, as_json: bool) -> None:
    """Everything a client needs to talk to the demo hub."""
    from gateway.demo import info

    data = info(_load(ctx))
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"submission URL: {data['submission_url']}\npoll URL:       {data['poll_url']}")
    for council in data["councils"]:
        click.echo(f"council {council['code']}: {council['name']}")
    for citizen in data["citizens"]:
        click.echo(f"citizen {citizen['user_id']} / password {citizen['password']}")
        for e in citizen["enrolments"]:
            keys = ", ".join(f"{k}={v}" for k, v in e["keys"].items())
            click.echo(f"  {e['class']} at {e['organisation']} ({keys})")


@demo.command("client")
@click.option("--hub", help="Hub base URL (default: this configuration's address).")
@click.option("--class", "class_", default="LA-CTAX-VIEW", show_default=True)
@click.option("--citizen", "user_id", help="Demo citizen user ID (default: the first).")
@click.option(
    "--wait", default=10.0, show_default=True, help="Seconds to wait for the hub to come up."
)
@click.option(
    "--auth",
    type=click.Choice(["password", "tls", "signed"]),
    default="password",
    show_default=True,
    help="User ID + password in the envelope, a TLS client certificate, or a W3Csigned envelope.",
)
@click.pass_context
def demo_client(
    ctx: click.Context, hub: str | None, class_: str, user_id: str | None, wait: float, auth: str
) -> None:
    """File one transaction as a GovTalk client would, printing every message on the wire."""
    from gateway.demo_client import run_demo_client

    config = _load(ctx)
    ok = asyncio.run(
        run_demo_client(config, hub=hub, class_=class_, user_id=user_id, wait=wait, auth=auth)
    )
    if not ok:
        sys.exit(1)


@main.group("deadletters")
def deadletters() -> None:
    """Transactions whose delivery was given up: list and replay."""


@deadletters.command("list")
@click.option("--all", "include_replayed", is_flag=True, help="Include replayed ones.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def deadletters_list(ctx: click.Context, include_replayed: bool, as_json: bool) -> None:
    """List dead letters."""
    from gateway.store import submissions as store

    letters = run_with_database(
        _load(ctx), lambda db: store.dead_letters(db, include_replayed=include_replayed)
    )
    rows = [
        {
            "id": d.id,
            "correlation_id": d.correlation_id,
            "class": d.class_,
            "organisation": d.organisation,
            "connector": d.connector,
            "error_number": d.error_number,
            "attempts": d.attempts,
            "reason": d.reason,
            "created_at": d.created_at.isoformat(),
            "replayed_at": d.replayed_at.isoformat() if d.replayed_at else None,
        }
        for d in letters
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no dead letters")
    for r in rows:
        click.echo(
            f"{r['id']:>5}  {r['correlation_id']}  {r['class']} @ {r['organisation']}  "
            f"{r['error_number']}  after {r['attempts']} attempt(s): {r['reason']}"
        )


@deadletters.command("replay")
@click.argument("letter_id", type=int)
@click.pass_context
def deadletters_replay(ctx: click.Context, letter_id: int) -> None:
    """Queue a dead letter's transaction for delivery again (a running hub picks it up)."""
    from gateway.store import submissions as store

    correlation_id = run_with_database(
        _load(ctx), lambda db: store.replay(db, letter_id, datetime.now(UTC))
    )
    if correlation_id is None:
        raise click.ClickException(
            f"dead letter {letter_id} does not exist, was replayed, or its submission is gone"
        )
    click.echo(f"requeued {correlation_id}")


def _register_subcommands() -> None:
    from gateway import cli_identity
    from gateway.cli_admin import admin
    from gateway.cli_audit import audit
    from gateway.cli_certs import certs
    from gateway.cli_connector import connector
    from gateway.cli_faults import faults
    from gateway.cli_report import report
    from gateway.cli_scenario import scenario
    from gateway.cli_sso import sso

    for command in (
        certs,
        cli_identity.register,
        cli_identity.enrol,
        cli_identity.activate,
        cli_identity.letters,
        sso,
        scenario,
        audit,
        faults,
        connector,
        report,
        admin,
    ):
        main.add_command(command)


_register_subcommands()


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
