"""`gateway admin`: credentials for the admin console and the admin API."""

from __future__ import annotations

import click

from gateway.config import ADMIN_PASSWORD_HASH_ENV


@click.group()
def admin() -> None:
    """The admin console's credentials (see docs/console.md)."""


@admin.command("hash-password")
@click.option("--user", default="admin", show_default=True, help="The admin user name.")
@click.option(
    "--password",
    prompt="Admin password",
    hide_input=True,
    confirmation_prompt=True,
    help="The password (prompted for if omitted; avoid putting it on a command line).",
)
def hash_password(user: str, password: str) -> None:
    """Print an [admin] section with a scrypt hash of PASSWORD, for the configuration file.

    The hub keeps no password itself: paste the lines into the file (or export the hash as
    GATEWAY_ADMIN_PASSWORD_HASH) and restart it. Changing the hash ends every console session.
    """
    from gateway.identity.passwords import hash_secret

    if len(password) < 12:
        raise click.ClickException("use an admin password of at least 12 characters")
    hashed = hash_secret(password)
    click.echo("[admin]")
    click.echo(f'user = "{user}"')
    click.echo(f'password_hash = "{hashed}"')
    click.echo(f"# or: export {ADMIN_PASSWORD_HASH_ENV}='{hashed}'", err=True)
