"""`gateway audit verify|export`: check the tamper-evident trail, or take it away to check later."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gateway.cli_support import run_with_database
from gateway.config import Config

if TYPE_CHECKING:
    from gateway.store.engine import Database


def _config() -> Config:
    config: Config = click.get_current_context().obj["config"]
    return config


def _root_pem(config: Config) -> str | None:
    """The hub's root certificate, which checkpoint signers must chain to."""
    from gateway.pki.ca import Pki
    from gateway.pki.errors import PkiError

    try:
        return Pki.load(config.pki_dir).root_path.read_text(encoding="ascii")
    except (PkiError, OSError):
        return None


async def _chain(db: Database) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from gateway.audit.log import read_chain

    return await read_chain(db)


@click.group()
def audit() -> None:
    """The tamper-evident audit trail."""


@audit.command("verify")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Verify an export instead of the hub's database (offline).",
)
def verify_command(path: Path | None) -> None:
    """Check every record's hash link and every signed checkpoint; exit 1 naming the first break."""
    from gateway.audit import export

    if path is not None:
        try:
            data = export.load(path)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        records, checkpoints, root = (
            data["records"],
            data["checkpoints"],
            data["root_certificate_pem"],
        )
        where = str(path)
    else:
        config = _config()
        records, checkpoints = run_with_database(config, _chain, upgrade=True)
        root = _root_pem(config)
        where = "the hub's database"
    verdict = export.verify_chain(records, checkpoints, root)
    signer = f"; signed under root {export.fingerprint(root)[:16]}…" if root else ""
    if verdict.ok:
        click.echo(
            f"audit trail intact: {verdict.records} records, {verdict.checkpoints} signed "
            f"checkpoints in {where}{signer}"
        )
        return
    click.secho(f"audit trail BROKEN in {where}: {verdict.problem}", fg="red", bold=True, err=True)
    sys.exit(1)


@audit.command("export")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def export_command(out: Path) -> None:
    """Write the trail, its checkpoints and the hub's root certificate to one file."""
    from gateway.audit import export
    from gateway.clock import utcnow

    config = _config()
    records, checkpoints = run_with_database(config, _chain, upgrade=True)
    root = _root_pem(config)
    if root is None:
        raise click.ClickException(f"no root certificate under {config.pki_dir}")
    data = export.build(records, checkpoints, root, utcnow())
    out.write_text(json.dumps(data, indent=1), encoding="utf-8")
    click.echo(f"wrote {len(records)} records and {len(checkpoints)} checkpoints to {out}")
