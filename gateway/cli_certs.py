"""`gateway certs`: create the development PKI, issue, revoke and list certificates."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from gateway.cli_support import cli_errors
from gateway.clock import utcnow
from gateway.config import Config, load_config
from gateway.errors import ConfigError
from gateway.pki import IndexEntry, Pki, PkiError
from gateway.pki.builders import CLIENT_KINDS

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class _Settings:
    dir: Path
    base_url: str
    hosts: tuple[str, ...]


def _settings(pki_dir: Path | None) -> _Settings:
    """The parent `gateway` group's Config when there is one, else the defaults; --dir wins."""
    obj = click.get_current_context().obj
    config: Config | None = obj.get("config") if isinstance(obj, dict) else None
    if config is None:
        with cli_errors(ConfigError):
            config = load_config(None)
    return _Settings(pki_dir or config.pki_dir, config.pki_base_url, config.pki.hosts)


def _dir_option(func: F) -> F:
    option = click.option(
        "--dir",
        "pki_dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="PKI directory (default: [pki] dir from the configuration, certs/).",
    )
    return option(func)


def _load(pki_dir: Path | None) -> Pki:
    with cli_errors(PkiError):
        return Pki.load(_settings(pki_dir).dir)


def _status(entry: IndexEntry) -> str:
    if entry.revoked_at is not None:
        return f"revoked ({entry.reason})"
    return "expired" if entry.not_after <= utcnow() else "valid"


@click.group()
def certs() -> None:
    """The hub's development PKI (private keys stay in the directory; never commit them)."""


@certs.command("init")
@_dir_option
@click.option("--force", is_flag=True, help="Discard existing material and start over.")
def init_cmd(pki_dir: Path | None, force: bool) -> None:
    """Create the root CA, citizen CA, server certificate and OCSP responder."""
    settings = _settings(pki_dir)
    with cli_errors(PkiError):
        pki = Pki.init(settings.dir, base_url=settings.base_url, hosts=settings.hosts, force=force)
    click.echo(f"PKI ready in {pki.dir} (CRL and OCSP URLs under {pki.base_url}/pki/)")
    click.echo(f"  trust bundle:   {pki.ca_bundle_path}")
    click.echo(f"  server:         {pki.server_chain_path} + {pki.server_key_path}")
    click.echo(f"  OCSP responder: {pki.ocsp_responder_path}")


@certs.command("issue")
@click.argument("name")
@click.option("--cn", "common_name", required=True, help='Subject common name, e.g. "Jane Doe".')
@click.option("--kind", type=click.Choice(CLIENT_KINDS), default="citizen", show_default=True)
@click.option("--email", help="rfc822Name for the subjectAltName (default: a synthetic one).")
@click.option("--days", type=click.IntRange(min=1), default=365, show_default=True)
@click.option(
    "--passphrase",
    prompt="PKCS#12 passphrase",
    hide_input=True,
    confirmation_prompt=True,
    help="Passphrase for the .p12 bundle (prompted for if omitted).",
)
@_dir_option
def issue_cmd(
    name: str,
    common_name: str,
    kind: str,
    email: str | None,
    days: int,
    passphrase: str,
    pki_dir: Path | None,
) -> None:
    """Issue a client certificate NAME (PEM, key and PKCS#12 under issued/)."""
    pki = _load(pki_dir)
    with cli_errors(PkiError):
        issued = pki.issue(
            name, common_name=common_name, kind=kind, email=email, days=days, passphrase=passphrase
        )
    click.echo(f"serial {issued.serial:x}")
    click.echo(f"  certificate: {issued.cert_path}")
    click.echo(f"  key:         {issued.key_path}")
    click.echo(f"  PKCS#12:     {issued.p12_path}")
    click.echo(f"  SHA-256:     {issued.fingerprint}")


def _resolve_serial(text: str, entries: list[IndexEntry]) -> int:
    """SERIAL as hex (with or without 0x or colons) or decimal, whichever names a known entry."""
    raw = text.strip().lower().replace(":", "")
    candidates: list[int] = []
    if raw.startswith("0x"):
        raw = raw[2:]
    elif raw.isdigit():
        candidates.append(int(raw, 10))
    if re.fullmatch(r"[0-9a-f]+", raw):
        candidates.append(int(raw, 16))
    if not candidates:
        raise click.BadParameter(f"{text!r} is not a hex or decimal serial number")
    known = {e.serial for e in entries}
    matches = sorted({c for c in candidates if c in known})
    if len(matches) > 1:
        raise click.BadParameter(f"{text!r} is ambiguous: prefix hex serials with 0x")
    return matches[0] if matches else candidates[-1]


@certs.command("revoke")
@click.argument("serial")
@click.option(
    "--reason",
    default="unspecified",
    show_default=True,
    help="key_compromise, affiliation_changed, superseded, cessation_of_operation, ...",
)
@_dir_option
def revoke_cmd(serial: str, reason: str, pki_dir: Path | None) -> None:
    """Revoke the certificate with SERIAL (hex or decimal)."""
    pki = _load(pki_dir)
    number = _resolve_serial(serial, pki.entries())
    with cli_errors(PkiError):
        entry = pki.revoke(number, reason)
    click.echo(f"revoked {entry.serial_hex} ({entry.name}): {entry.reason}")


@certs.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_dir_option
def list_cmd(as_json: bool, pki_dir: Path | None) -> None:
    """List every issued certificate."""
    entries = _load(pki_dir).entries()
    if as_json:
        click.echo(json.dumps([e.to_json() | {"status": _status(e)} for e in entries], indent=2))
        return
    for e in entries:
        click.echo(
            f"{e.serial_hex:<40}  {e.kind:<8}  {e.name:<20}  "
            f"{e.not_after:%Y-%m-%d}  {_status(e)}  {e.subject}"
        )
