"""`gateway sso`: register council portals (OIDC relying parties) and rotate signing keys."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from gateway.cli_support import cli_errors, run_with_database
from gateway.config import Config
from gateway.errors import ProblemError

if TYPE_CHECKING:
    from gateway.sso.clients import ClientRegistry
    from gateway.sso.keyring import Keyring
    from gateway.store.engine import Database

T = TypeVar("T")


def _config() -> Config:
    config: Config = click.get_current_context().obj["config"]
    return config


def _with_sso(work: Callable[[ClientRegistry, Keyring], Awaitable[T]]) -> T:
    """Run work on the hub's database with the client registry and keyring, as the hub has them."""
    from gateway.clock import utcnow
    from gateway.identity.replay import ReplayStore
    from gateway.routing.table import RouteTable
    from gateway.sso.clients import ClientRegistry
    from gateway.sso.keyring import Keyring

    config = _config()

    async def go(db: Database) -> T:
        replay = ReplayStore(db, timedelta(seconds=config.pki.replay_window_seconds))
        registry = ClientRegistry(db, replay, utcnow, RouteTable(config.routes).organisations)
        keyring = Keyring(db, utcnow, timedelta(days=config.sso.retired_key_days))
        await keyring.load()
        return await work(registry, keyring)

    with cli_errors(ProblemError):
        return run_with_database(config, go, upgrade=True)


@click.group()
def sso() -> None:
    """Single sign-on: the hub as an OpenID Connect provider for council portals."""


@sso.group()
def clients() -> None:
    """Council portals registered as relying parties."""


@clients.command("add")
@click.option("--name", required=True, help="The portal's name, shown on the sign-in page.")
@click.option("--organisation", required=True, help="Its council's code, e.g. E08000024.")
@click.option("--redirect-uri", "redirect_uris", multiple=True, required=True, help="Repeatable.")
@click.option("--post-logout-redirect-uri", "post_logout", multiple=True, help="Repeatable.")
@click.option("--backchannel-logout-uri", help="Where the hub POSTs logout tokens.")
@click.option(
    "--auth",
    "auth_method",
    type=click.Choice(["client_secret_basic", "client_secret_post", "private_key_jwt"]),
    default="client_secret_basic",
    show_default=True,
)
@click.option(
    "--jwks",
    "jwks_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The portal's public JWK Set (JSON file), for private_key_jwt.",
)
@click.option("--json", "as_json", is_flag=True)
def clients_add(
    name: str,
    organisation: str,
    redirect_uris: tuple[str, ...],
    post_logout: tuple[str, ...],
    backchannel_logout_uri: str | None,
    auth_method: str,
    jwks_file: Path | None,
    as_json: bool,
) -> None:
    """Register a portal; prints its client_id (and secret, shown this once)."""
    jwks: dict[str, Any] | None = None
    if jwks_file is not None:
        try:
            jwks = json.loads(jwks_file.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise click.ClickException(f"{jwks_file}: not JSON ({exc})") from exc

    async def work(registry: ClientRegistry, keyring: Keyring) -> dict[str, Any]:
        client, secret = await registry.register(
            name=name,
            organisation=organisation,
            redirect_uris=redirect_uris,
            auth_method=auth_method,
            jwks=jwks,
            post_logout_redirect_uris=post_logout,
            backchannel_logout_uri=backchannel_logout_uri,
        )
        body = client.to_json()
        if secret is not None:
            body["client_secret"] = secret
        return body

    body = _with_sso(work)
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    click.echo(f"client_id:     {body['client_id']}")
    if "client_secret" in body:
        click.echo(f"client_secret: {body['client_secret']}  (shown this once; keep it safe)")
    click.echo(f"discovery:     {_config().sso_issuer}/.well-known/openid-configuration")


@clients.command("list")
@click.option("--json", "as_json", is_flag=True)
def clients_list(as_json: bool) -> None:
    """The registered portals."""

    async def work(registry: ClientRegistry, keyring: Keyring) -> list[dict[str, Any]]:
        return [c.to_json() for c in await registry.list()]

    rows = _with_sso(work)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no portals registered")
    for row in rows:
        click.echo(
            f"{row['client_id']}  {row['organisation']}  {row['token_endpoint_auth_method']}  "
            f"{row['client_name']}"
        )


@clients.command("remove")
@click.argument("client_id")
def clients_remove(client_id: str) -> None:
    """Remove a portal: its tokens stop working at the token endpoint at once."""

    async def work(registry: ClientRegistry, keyring: Keyring) -> bool:
        return await registry.remove(client_id)

    if not _with_sso(work):
        raise click.ClickException(f"no portal with client_id {client_id}")
    click.echo(f"removed {client_id}")


@sso.group()
def keys() -> None:
    """The provider's signing keys (ES256)."""


@keys.command("list")
def keys_list() -> None:
    """Keys that verify tokens now; the active one signs."""

    async def work(registry: ClientRegistry, keyring: Keyring) -> list[str]:
        active = keyring.signing_key().kid
        return [
            f"{k.kid}  {'active ' if k.kid == active else 'retired'}  created {k.created_at:%Y-%m-%d %H:%M}"
            for k in keyring.keys()
        ]

    for line in _with_sso(work):
        click.echo(line)


@keys.command("rotate")
def keys_rotate() -> None:
    """Sign with a new key from now on; the old one keeps verifying for [sso] retired_key_days."""

    async def work(registry: ClientRegistry, keyring: Keyring) -> str:
        return (await keyring.rotate()).kid

    click.echo(f"signing with {_with_sso(work)}; running hubs pick it up within 30 s")
