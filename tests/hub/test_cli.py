"""The `gateway` command: routes, demo info, db upgrade, configuration errors, dead letters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from lxml import etree

from gateway.cli import main
from gateway.config import load_config, parse_config
from gateway.errors import ConfigError
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


# --- settings of the wrong type or out of range --------------------------------------------

ROUTE = {"class": "LA-X", "organisation": "E08000024", "connector": "council-E08000024"}


def route(**settings: object) -> dict[str, object]:
    return {"routes": [{**ROUTE, **settings}]}


@pytest.mark.no_database
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        # Every number: its type (a string, a boolean) and its range, named by section and key.
        ({"server": {"port": "abc"}}, '[server]: port must be a whole number from 1 to 65535, not "abc"'),
        ({"server": {"port": 70000}}, "[server]: port must be a whole number from 1 to 65535"),
        ({"server": {"https_port": -1}}, "[server]: https_port must be a whole number from 0"),
        ({"server": {"max_body_bytes": "4MB"}}, "[server]: max_body_bytes must be a whole number"),
        ({"server": {"default_poll_interval": 0}}, "[server]: default_poll_interval must be"),
        ({"server": {"movable_clock": "yes"}}, "[server]: movable_clock must be true or false"),
        ({"pki": {"status_timeout": True}}, "[pki]: status_timeout must be a number above 0, not true"),
        ({"retention": {"purge_interval_seconds": "1h"}}, "[retention]: purge_interval_seconds"),
        ({"retention": {"response_days": 0}}, "[retention]: response_days must be a number above 0"),
        ({"enrolment": {"max_attempts": 2.5}}, "[enrolment]: max_attempts must be a whole number"),
        ({"payments": {"notify_timeout_seconds": -1}}, "[payments]: notify_timeout_seconds"),
        ({"mail": {"capacity": 0}}, "[mail]: capacity must be a whole number above 0, not 0"),
        ({"sso": {"code_seconds": float("inf")}}, "[sso]: code_seconds must be a number above 0"),
        ({"sso": {"session_minutes": "8h"}}, "[sso]: session_minutes must be a number above 0"),
        ({"audit": {"checkpoint_seconds": -1}}, "[audit]: checkpoint_seconds must be a number above 0, not -1"),
        ({"audit": {"body_days": -1}}, "[audit]: body_days must be a number of at least 0"),
        ({"limits": {"requests_per_minute": "many"}}, "[limits]: requests_per_minute must be"),
        ({"limits": {"max_xml_depth": 0}}, "[limits]: max_xml_depth must be a whole number above 0"),
        ({"limits": {"store": "disk"}}, "[limits]: store must be 'memory' or 'redis'"),
        ({"admin": {"session_minutes": 0}}, "[admin]: session_minutes must be a number above 0"),
        ({"dispatcher": {"concurrency": 0}}, "[dispatcher]: concurrency must be a whole number above 0"),
        ({"dispatcher": {"per_connector": 0}}, "[dispatcher]: per_connector must be a whole number above 0"),
        ({"dispatcher": {"idle_poll_seconds": 0}}, "[dispatcher]: idle_poll_seconds must be"),
        (route(timeout="10s"), 'routes[0] (LA-X @ E08000024): timeout must be a number above 0, not "10s"'),
        (route(timeout=0), "routes[0] (LA-X @ E08000024): timeout must be a number above 0"),
        (route(retries=-3), "routes[0] (LA-X @ E08000024): retries must be a whole number of at least 0"),
        (route(retries=1.5), "retries must be a whole number"),
        (route(poll_interval="1"), "routes[0] (LA-X @ E08000024): poll_interval must be"),
        (route(backoff=-0.5), "routes[0] (LA-X @ E08000024): backoff must be a number of at least 0"),
        (route(allow_sha1="false"), "allow_sha1 must be true or false"),
        (route(mode="batch"), "mode must be 'async' or 'sync'"),
        # auth_level: a number, and one of the levels the hub implements.
        (route(auth_level="1"), 'auth_level must be 0, 1 or 2, the levels this hub implements'),
        (route(auth_level=True), "auth_level must be 0, 1 or 2"),
        (route(auth_level=1.5), "auth_level must be 0, 1 or 2, the levels this hub implements (not the Gateway's 1.5"),
        (route(auth_level=3), "auth_level must be 0, 1 or 2"),
        (route(auth_level="2", credentials="ignore"), "auth_level must be 0, 1 or 2"),
        # Values once read as something else: a string as true, a string as its letters.
        ({"demo": "false"}, 'demo must be true or false, not "false"'),
        ({"pki": {"hosts": "hub.example"}}, '[pki]: hosts must be a list of strings, not "hub.example"'),
        ({"pki": {"hosts": ["hub", 1]}}, "[pki]: hosts must be a list of strings"),
        ({"admin": {"certificate_fingerprints": "ab:cd"}}, "[admin]: certificate_fingerprints must be a list of strings"),
        ({"admin": {"certificate_fingerprints": 5}}, "[admin]: certificate_fingerprints must be a list of strings, not 5"),
        ({"payments": {"api_tokens": {"E08000024": 5}}}, "[payments]: api_tokens must be a table of strings"),
        ({"mail": {"council_tokens": []}}, "[mail]: council_tokens must be a table of strings"),
        # Shapes that ended in a TypeError.
        ({"data_dir": 5}, "data_dir must be a string (a directory), not 5"),
        ({"routes": [1]}, "routes[0] must be a table ([[routes]]), not 1"),
        ({"routes": [{**ROUTE, "class": 5}]}, "routes[0]: class must be a non-empty string, not 5"),
        ({"connectors": {"x": {"type": 5}}}, "[connectors.x] needs a 'type'"),
        # Databases the hub has no driver for, or none it can share between its engines.
        ({"database": {"url": "mysql://u:secret@host/db"}}, "[database]: url must be sqlite+aiosqlite:///PATH (SQLite) or postgresql+asyncpg://"),
        ({"database": {"url": "postgresql://u@host/db"}}, "not postgresql://…"),
        ({"database": {"url": "sqlite+aiosqlite://"}}, "[database]: url must name a SQLite file"),
    ],
)  # fmt: skip
def test_bad_settings_are_refused_naming_the_key(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(settings)
    assert message in str(refused.value)
    assert "secret" not in str(refused.value)  # a database URL's password is never repeated


@pytest.mark.no_database
def test_settings_are_taken_as_written() -> None:
    config = parse_config(
        {
            "demo": False,
            "server": {"https_port": 0, "port": 65535},
            "pki": {"hosts": ["hub.example"]},
            "admin": {"certificate_fingerprints": ["AB:CD"]},
            "limits": {"requests_per_minute": 0, "auth_failures_per_sender": 0},
            "dispatcher": {"max_poll_interval": 0, "lease_margin_seconds": 0},
            "audit": {"flush_seconds": 0, "body_days": 0},
            "mail": {"default_expiry_days": 1.5},
            "connectors": {"c": {"type": "receipt"}},
            "routes": [
                {**ROUTE, "connector": "c", "auth_level": 0, "credentials": "ignore"},
                {**ROUTE, "connector": "c", "organisation": "O2", "auth_level": 2.0, "timeout": 3},
                {**ROUTE, "connector": "c", "organisation": "O3", "retries": 0, "backoff": 0},
            ],
        }
    )
    assert config.demo is False and not any(r.organisation == "E07000188" for r in config.routes)
    assert config.pki.hosts == ("hub.example",)
    assert config.admin.certificate_fingerprints == ("abcd",)
    assert [r.auth_level for r in config.routes] == [0, 2, 1]
    assert config.routes[1].timeout == 3 and config.routes[2].retries == 0


@pytest.mark.no_database
def test_a_database_url_from_the_environment_is_checked_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", "mysql://u:secret@host/db")
    with pytest.raises(ConfigError, match=r"^\$GATEWAY_DATABASE_URL must be sqlite\+aiosqlite"):
        parse_config({})


@pytest.mark.no_database
@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("data_dir = 5\n", "data_dir"),
        ("routes = [1]\n", "routes[0]"),
        ('demo = "false"\n', "demo"),
        ("[admin]\ncertificate_fingerprints = 5\n", "certificate_fingerprints"),
        ('[server]\nport = "abc"\n', "port"),
        ("[dispatcher]\nconcurrency = 0\n", "concurrency"),
        (
            '[[routes]]\nclass = "X"\norganisation = "Y"\nconnector = "council-E08000024"\n'
            'auth_level = "2"\ncredentials = "ignore"\n',
            "auth_level",
        ),
        ('[database]\nurl = "mysql://u@h/db"\n', "url"),
    ],
)
def test_configuration_mistakes_are_one_line_errors(tmp_path: Path, text: str, named: str) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(text)
    result = CliRunner().invoke(main, ["--config", str(config), "db", "upgrade"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    assert named in result.output and "Traceback" not in result.output


# --- the database the CLI cannot reach or migrate ------------------------------------------


@pytest.mark.no_database
@pytest.mark.parametrize(
    "command", [["db", "upgrade"], ["deadletters", "list"], ["serve"], ["audit", "verify"]]
)
def test_an_unreachable_database_is_one_line(tmp_path: Path, command: list[str]) -> None:
    from tests.conftest import free_port

    config = tmp_path / "gateway.toml"
    url = f"postgresql+asyncpg://gateway:secret@127.0.0.1:{free_port()}/gateway"  # nobody there
    config.write_text(f'data_dir = "{tmp_path / "var"}"\n[database]\nurl = "{url}"\n')
    result = CliRunner().invoke(main, ["--config", str(config), *command])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert result.output.startswith("Error: database postgresql+asyncpg://gateway:***@127.0.0.1:")
    assert "Connect call failed" in result.output and result.output.count("\n") == 1
    assert "secret" not in result.output


def test_db_upgrade_to_an_unknown_revision_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    result = CliRunner().invoke(main, ["--config", str(config), "db", "upgrade", "--revision", "nonsense"])  # fmt: skip
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert result.output.startswith("Error: database ") and result.output.count("\n") == 1
    assert "Can't locate revision identified by 'nonsense'" in result.output


# --- serve --port 0 ----------------------------------------------------------------------


def test_serve_on_port_0_listens_on_a_free_port_and_says_which(tmp_path: Path) -> None:
    import re
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.conftest import ROOT

    config = tmp_path / "gateway.toml"
    config.write_text(f'data_dir = "{tmp_path / "var"}"\n[pki]\ndir = "{tmp_path / "certs"}"\n')
    log = tmp_path / "hub.log"
    command = [sys.executable, "-m", "gateway.cli", "--config", str(config), "serve"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "--port", "0", "--https-port", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        deadline = time.monotonic() + 30
        while not (ready := re.search(r'"server.ready"', log.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        text = log.read_text()
        announced = re.search(r"GovTalk hub on http://127\.0\.0\.1:(\d+) ", text)
        assert ready and announced, text
        port = int(announced.group(1))
        assert port not in (0, 8080)
        assert f'"http": "http://127.0.0.1:{port}"' in text  # the startup log says it too
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
            assert answer.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
