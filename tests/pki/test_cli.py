"""`gateway certs` through click's CliRunner, standalone and under a parent with a Config."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from cryptography import x509

from gateway.cli_certs import certs
from gateway.config import parse_config
from gateway.pki import Pki

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass


def _ok(result) -> str:
    assert result.exit_code == 0, result.output + repr(result.exception)
    return str(result.output)


def test_init_issue_list_revoke(tmp_path: Path) -> None:
    runner = CliRunner()
    d = str(tmp_path / "pki")
    assert "PKI ready" in _ok(runner.invoke(certs, ["init", "--dir", d]))
    _ok(runner.invoke(certs, ["init", "--dir", d]))  # idempotent
    out = _ok(
        runner.invoke(
            certs,
            ["issue", "kate", "--cn", "Kate Bush", "--kind", "council", "--email", "k@example.org",
             "--days", "30", "--dir", d],
            input="pw\npw\n",
        )
    )  # fmt: skip
    serial_hex = out.split("serial ", 1)[1].split()[0]
    assert (tmp_path / "pki/issued/kate.p12").is_file()
    listed = json.loads(_ok(runner.invoke(certs, ["list", "--json", "--dir", d])))
    kate = next(e for e in listed if e["name"] == "kate")
    assert kate["serial"] == serial_hex and kate["kind"] == "council" and kate["status"] == "valid"
    assert "kate" in _ok(runner.invoke(certs, ["list", "--dir", d]))

    bad = runner.invoke(certs, ["revoke", serial_hex, "--reason", "bored", "--dir", d])
    assert bad.exit_code != 0 and "unknown revocation reason" in bad.output
    out = _ok(
        runner.invoke(
            certs, ["revoke", str(int(serial_hex, 16)), "--reason", "superseded", "--dir", d]
        )
    )
    assert f"revoked {serial_hex}" in out
    again = runner.invoke(certs, ["revoke", f"0x{serial_hex}", "--dir", d])
    assert again.exit_code != 0 and "already revoked" in again.output
    listed = json.loads(_ok(runner.invoke(certs, ["list", "--json", "--dir", d])))
    assert next(e for e in listed if e["name"] == "kate")["status"] == "revoked (superseded)"


def test_init_keeps_a_pki_whose_root_key_is_elsewhere(tmp_path: Path) -> None:
    runner = CliRunner()
    d = tmp_path / "pki"
    _ok(runner.invoke(certs, ["init", "--dir", str(d)]))
    citizen_ca = (d / "citizen-ca.pem").read_bytes()
    (d / "root-ca.key").unlink()
    assert "PKI ready" in _ok(runner.invoke(certs, ["init", "--dir", str(d)]))
    assert (d / "citizen-ca.pem").read_bytes() == citizen_ca
    (d / "citizen-ca.key").unlink()  # now the root would have to sign a new citizen CA
    refused = runner.invoke(certs, ["init", "--dir", str(d)])
    assert refused.exit_code != 0 and "root-ca.key is missing" in refused.output
    assert "restore" in refused.output and "--force" in refused.output
    assert (d / "citizen-ca.pem").read_bytes() == citizen_ca


def test_commands_before_init_fail_clearly(tmp_path: Path) -> None:
    result = CliRunner().invoke(certs, ["list", "--dir", str(tmp_path)])
    assert result.exit_code != 0 and "certs init" in result.output


def test_uses_the_parent_config(tmp_path: Path) -> None:
    config = parse_config(
        {
            "pki": {
                "dir": "mycerts",
                "base_url": "https://hub.example.test/",
                "hosts": ["hub.example.test"],
            }
        },
        base_dir=tmp_path,
    )

    @click.group()
    @click.pass_context
    def main(ctx: click.Context) -> None:
        ctx.obj = {"config": config}

    main.add_command(certs)
    runner = CliRunner()
    _ok(runner.invoke(main, ["certs", "init"]))
    _ok(runner.invoke(main, ["certs", "issue", "leo", "--cn", "Leo", "--passphrase", "x"]))
    pki = Pki.load(tmp_path / "mycerts")
    assert pki.base_url == "https://hub.example.test"
    server = x509.load_pem_x509_certificate(pki.server_cert_path.read_bytes())
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "hub.example.test" in san.get_values_for_type(x509.DNSName)
    leo = x509.load_pem_x509_certificate((tmp_path / "mycerts/issued/leo.pem").read_bytes())
    dp = leo.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert dp[0].full_name == [x509.UniformResourceIdentifier("https://hub.example.test/pki/crl")]
