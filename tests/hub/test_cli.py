"""The `gateway` command: routes, demo info, db upgrade, configuration errors, dead letters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree

from gateway.cli import main
from gateway.config import load_config
from tests.conftest import table_names


def invoke(*args: str, config: Path | None = None):
    runner = CliRunner()
    full = (["--config", str(config)] if config else []) + list(args)
    return runner.invoke(main, full, catch_exceptions=False)


def test_demo_info_json_has_everything_a_client_needs(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'data_dir = "{tmp_path / "var"}"\n[pki]\ndir = "{tmp_path / "certs"}"\n')
    result = invoke("demo", "info", "--json", config=config)
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["submission_url"] == "http://127.0.0.1:8080/submission"
    assert data["poll_url"] == "http://127.0.0.1:8080/poll"
    assert data["https_submission_url"] == "https://localhost:8443/submission"
    bundle = Path(data["ca_bundle"]).read_text()
    assert bundle.count("BEGIN CERTIFICATE") == 2
    assert any(not c["enrolments"] for c in data["citizens"]), "one citizen is left to enrol"
    for citizen in data["citizens"]:
        assert "BEGIN CERTIFICATE" in Path(citizen["certificate"]).read_text()
        assert "PRIVATE KEY" in Path(citizen["key"]).read_text()
    assert {c["code"]: c["name"] for c in data["councils"]} == {
        "E08000024": "Sunderland City Council",
        "E07000188": "Sedgemoor District Council",
    }
    assert data["citizens"]
    for citizen in data["citizens"]:
        assert citizen["user_id"] and citizen["password"]
        for enrolment in citizen["enrolments"]:
            assert enrolment["class"] in ("LA-CTAX-VIEW", "LA-CTAX-SPD")
            assert enrolment["organisation"] in ("E08000024", "E07000188")
            assert set(enrolment["keys"]) == {"CTaxAccountRef"}
            body = etree.fromstring(enrolment["example_body"].encode())
            assert enrolment["keys"]["CTaxAccountRef"] in etree.tostring(body).decode()


def test_routes_lists_the_configured_table(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        """
[server]
port = 9090

[connectors.planning]
type = "receipt"
schema = "connectors/receipt/examples/planning-comment.xsd"

[[routes]]
class = "LA-PLANNING-COMMENT"
organisation = "E08000024"
connector = "planning"
mode = "sync"
auth_level = 0
"""
    )
    result = invoke("routes", "--json", config=config)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    keyed = {(r["class"], r["organisation"]): r for r in rows}
    assert keyed[("LA-PLANNING-COMMENT", "E08000024")]["mode"] == "sync"
    assert keyed[("LA-PLANNING-COMMENT", "E08000024")]["connector_type"] == "receipt"
    assert keyed[("LA-CTAX-VIEW", "E07000188")]["connector_type"] == "simulated-council"
    # The council each route counts towards in BVPI 157: its own, another's, or none.
    assert keyed[("LA-CTAX-VIEW", "E07000188")]["council"] == "E07000188"
    assert keyed[("ER-NOTIFY-MOVE", "ER-E08000024")]["council"] == "E08000024"
    assert keyed[("GW-CHANGE-OF-ADDRESS", "GW")]["council"] is None
    table = invoke("routes", config=config)
    assert "LA-PLANNING-COMMENT" in table.output and "simulated-council" in table.output
    info = json.loads(invoke("demo", "info", "--json", config=config).stdout)
    assert info["submission_url"] == "http://127.0.0.1:9090/submission"


def test_configuration_errors_are_clear(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nprot = 1\n")
    result = CliRunner().invoke(main, ["--config", str(config), "routes"])
    assert result.exit_code != 0
    assert "prot" in result.output
    config.write_text('[[routes]]\nclass = "X-Y"\norganisation = "O"\nconnector = "missing"\n')
    result = CliRunner().invoke(main, ["--config", str(config), "routes"])
    assert result.exit_code != 0 and "missing" in result.output


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    result = invoke("db", "upgrade", config=config)
    assert result.exit_code == 0, result.output
    tables = table_names(load_config(config).database_url)
    assert {"submissions", "dead_letters", "citizens", "enrolments", "alembic_version"} <= tables
    assert invoke("db", "upgrade", config=config).exit_code == 0  # idempotent


def test_deadletters_cli_on_an_empty_hub(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    invoke("db", "upgrade", config=config)
    assert "no dead letters" in invoke("deadletters", "list", config=config).output
    result = CliRunner().invoke(main, ["--config", str(config), "deadletters", "replay", "7"])
    assert result.exit_code != 0 and "does not exist" in result.output


async def test_demo_client_files_view_council_tax_end_to_end(hub) -> None:
    import asyncio

    result = await asyncio.to_thread(
        CliRunner().invoke, main, ["demo", "client", "--hub", hub.url, "--wait", "5"]
    )
    assert result.exit_code == 0, result.output
    assert "<Qualifier>acknowledgement</Qualifier>" in result.output
    assert "<Qualifier>response</Qualifier>" in result.output
    assert "LA-CTAX-VIEW for DEMO0SUN0001 at E08000024: answered" in result.output
    assert "balance £" in result.output


@pytest.mark.parametrize("auth", ["tls", "signed"])
async def test_demo_client_with_certificates(hub_factory, tmp_path: Path, auth: str) -> None:
    import asyncio

    hub = await hub_factory(https=True)
    config = tmp_path / "client.toml"
    config.write_text(
        f"[server]\nport = {hub.config.server.port}\nhttps_port = {hub.config.server.https_port}\n"
        f'[pki]\ndir = "{hub.config.pki_dir}"\n'
    )
    result = await asyncio.to_thread(
        CliRunner().invoke,
        main,
        ["--config", str(config), "demo", "client", "--auth", auth, "--wait", "5"],
    )
    assert result.exit_code == 0, result.output
    assert "answered" in result.output
    if auth == "signed":
        assert "<Method>W3Csigned</Method>" in result.output
        assert "SignatureValue" in result.output
    else:
        assert "<Value>" not in result.output


def test_example_configuration_documents_the_defaults() -> None:
    import dataclasses

    from gateway.config import load_config
    from tests.conftest import ROOT

    example = load_config(ROOT / "gateway.example.toml")
    defaults = load_config(None)
    assert (
        dataclasses.replace(example, base_dir=defaults.base_dir, data_dir=defaults.data_dir)
        == defaults
    )
