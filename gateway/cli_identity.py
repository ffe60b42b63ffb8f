"""CLI commands for identity: register, enrol, activate, and the letters outbox.

They work on the hub's database directly (the same one a running hub uses); `enrol` starts the
configured connectors to check known facts, exactly as the hub would. Register them with:

    from gateway.cli_identity import activate, enrol, letters, register
    for command in (register, enrol, activate, letters):
        main.add_command(command)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from gateway.cli_support import with_database
from gateway.config import Config

if TYPE_CHECKING:
    from gateway.identity.enrolment import EnrolmentService
    from gateway.store.engine import Database

T = TypeVar("T")


def _config() -> Config:
    config: Config = click.get_current_context().obj["config"]
    return config


def _run(work: Callable[[Config], Coroutine[Any, Any, T]]) -> T:
    """Run work against the hub's database (brought up to date first), refusals as CLI errors."""
    from gateway.identity.enrolment import EnrolmentError
    from gateway.identity.registration import RegistrationError

    config = _config()
    try:
        return asyncio.run(work(config))
    except EnrolmentError as exc:
        raise click.ClickException(f"{exc.title}: {exc.detail}") from exc
    except RegistrationError as exc:
        raise click.ClickException(str(exc)) from exc


def _run_on_database(work: Callable[[Database], Awaitable[T]]) -> T:
    """Run work on the hub's database, brought up to date first, refusals as CLI errors."""
    return _run(lambda config: with_database(config, work, upgrade=True))


@click.command()
@click.option(
    "--kind",
    type=click.Choice(["individual", "organisation", "agent"]),
    default="individual",
    show_default=True,
)
@click.option("--name", "display_name", default="", help="Display name.")
@click.option("--password", help="Password (8 characters or more).")
@click.option(
    "--certificate",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM certificate file to register (by its SHA-256 fingerprint).",
)
def register(kind: str, display_name: str, password: str | None, certificate: Path | None) -> None:
    """Register a user; prints the generated 12-character User ID."""
    from gateway.identity import registration

    pem = certificate.read_bytes() if certificate is not None else None

    click.echo(
        _run_on_database(
            lambda db: registration.register(
                db, kind=kind, display_name=display_name, password=password, certificate_pem=pem
            )
        )
    )


def _fact(values: tuple[str, ...]) -> dict[str, str]:
    facts: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--fact")
        facts[name.strip()] = value
    return facts


async def _with_enrolments(config: Config, work: Callable[[EnrolmentService], Awaitable[T]]) -> T:
    from gateway.identity.enrolment import build_services, route_lookup
    from gateway.routing.registry import ConnectorSet
    from gateway.routing.table import RouteTable

    async def with_connectors(db: Database) -> T:
        connectors = ConnectorSet.build(config.connectors, config.data_dir, config.base_dir)
        try:
            await connectors.start()
            _letters, enrolments = build_services(
                config.enrolment, db, route_lookup(RouteTable(config.routes), connectors)
            )
            return await work(enrolments)
        finally:
            await connectors.aclose()

    return await with_database(config, with_connectors, upgrade=True)


@click.command()
@click.argument("user_id")
@click.option("--class", "class_", required=True, help="Service class, e.g. LA-CTAX-VIEW.")
@click.option("--organisation", required=True, help="Organisation code, e.g. E08000024.")
@click.option("--fact", "facts", multiple=True, help="A known fact NAME=VALUE (repeatable).")
@click.option("--json", "as_json", is_flag=True)
def enrol(
    user_id: str, class_: str, organisation: str, facts: tuple[str, ...], as_json: bool
) -> None:
    """Ask to enrol USER_ID for a service with known facts; a match posts an activation PIN."""
    given = _fact(facts)

    async def work(enrolments: EnrolmentService) -> dict[str, Any]:
        return (await enrolments.request(user_id, class_, organisation, given)).to_json()

    view = _run(lambda config: _with_enrolments(config, work))
    if as_json:
        click.echo(json.dumps(view, indent=2))
    else:
        click.echo(
            f"enrolment {view['id']}: {view['state']}; the activation PIN is in the post "
            f"(see `gateway letters list --user {user_id}`)"
        )


@click.command()
@click.argument("user_id")
@click.argument("enrolment_id", type=int)
@click.argument("pin")
@click.option("--json", "as_json", is_flag=True)
def activate(user_id: str, enrolment_id: int, pin: str, as_json: bool) -> None:
    """Activate USER_ID's enrolment ENROLMENT_ID with the PIN from the letter."""

    async def work(enrolments: EnrolmentService) -> dict[str, Any]:
        return (await enrolments.activate(user_id, enrolment_id, pin)).to_json()

    view = _run(lambda config: _with_enrolments(config, work))
    if as_json:
        click.echo(json.dumps(view, indent=2))
    else:
        keys = ", ".join(f"{k}={v}" for k, v in view["keys"].items())
        click.echo(f"enrolment {view['id']}: {view['state']}; Keys {keys}")


@click.group()
def letters() -> None:
    """The hub's post: letters sent (activation PINs)."""


@letters.command("list")
@click.option("--user", "user_id", help="Only this User ID's letters.")
@click.option("--json", "as_json", is_flag=True)
def letters_list(user_id: str | None, as_json: bool) -> None:
    """List letters, oldest first, with their full text (this is the post)."""
    from gateway.services.letters import LetterService

    async def go(db: Database) -> list[dict[str, object]]:
        return [letter.to_json() for letter in await LetterService(db).list(user_id)]

    rows = _run_on_database(go)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no letters")
    for row in rows:
        address = row["address"]
        assert isinstance(address, list)
        click.echo(
            f"--- letter {row['id']} to {row['user_id']} from {row['organisation']} "
            f"({row['kind']}, sent {row['created_at']}, arrives {row['arrives_at']})"
        )
        click.echo("\n".join(str(line) for line in address))
        click.echo("")
        click.echo(str(row["text"]))
