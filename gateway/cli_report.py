"""`gateway report bvpi157`: the BVPI 157 interaction types each council e-enables, with volumes."""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING

import click

from gateway.cli_support import cli_errors, run_with_database
from gateway.config import Config
from gateway.routing.bvpi157 import VOLUMES_NOTE, Bvpi157Report, UnknownCouncil, check_council

if TYPE_CHECKING:
    from gateway.store.engine import Database


def _config() -> Config:
    config: Config = click.get_current_context().obj["config"]
    return config


@click.group()
def report() -> None:
    """Reports over the route table and the hub's database."""


@report.command("bvpi157")
@click.option("--council", help="One organisation code (default: every council in the routes).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def bvpi157_command(council: str | None, as_json: bool) -> None:
    """BVPI 157: per council, the interaction types e-enabled through the hub, with volumes."""
    from gateway.clock import utcnow
    from gateway.reports import bvpi157_report

    config = _config()
    if council is not None:
        # A typo is refused before the database is opened (or migrated).
        with cli_errors(UnknownCouncil):
            check_council(config.routes, council)

    async def work(db: Database) -> Bvpi157Report:
        return await bvpi157_report(db, config.routes, as_of=utcnow(), council=council)

    result = run_with_database(config, work, upgrade=True)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    click.echo(render(result))


def render(result: Bvpi157Report) -> str:
    """The report as text tables, one per council."""
    as_of = f"{result.as_of:%Y-%m-%d %H:%M} UTC"
    out = [f"BVPI 157 — interaction types e-enabled through the hub, as of {as_of}"]
    headers = ("TYPE", "E-ENABLED", "TRANSACTIONS", "CLASSES")
    for council in result.councils:
        out.append("")
        out.append(
            f"{council.code}  {council.name}: {council.enabled} of {len(council.types)} types "
            f"e-enabled ({council.percentage:g}%), {council.total_volume} transaction(s)"
        )
        rows = [
            (
                line.type.label,
                "yes" if line.enabled else "no",
                str(line.volume),
                ", ".join(line.classes) or "-",
            )
            for line in council.types
        ]
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        for row in (headers, *rows):
            cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
            cells += [row[2].rjust(widths[2]), row[3]]
            out.append("  " + "  ".join(cells))
        if council.undeclared_classes:
            out.append(
                f"  no bvpi157 type declared: {', '.join(council.undeclared_classes)} "
                "(counted under no type)"
            )
        if council.unclassified_volume:
            out.append(f"  {council.unclassified_volume} transaction(s) under no declared type")
    out.append("")
    out.append(textwrap.fill(VOLUMES_NOTE, 100))
    return "\n".join(out)
