"""`gateway register`, `enrol`, `activate` and `letters list` on the hub's database."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
from click.testing import CliRunner

from connectors.simcouncil.dataset import generate
from gateway.cli import main
from gateway.cli_identity import activate, enrol, letters, register

SUNDERLAND = "E08000024"


def cli() -> click.Group:
    # The lead registers these on `gateway`; do it here on a copy for the test.
    group = click.Group(name="gateway", params=main.params, callback=main.callback)
    for command in (*main.commands.values(), register, enrol, activate, letters):
        group.add_command(command)
    return group


def invoke(config: Path, *args: str):
    result = CliRunner().invoke(cli(), ["--config", str(config), *args], catch_exceptions=False)
    return result


def test_cli_register_enrol_letters_activate(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('data_dir = "var"\n\n[enrolment]\nmax_attempts = 2\n')

    result = invoke(
        config,
        "register",
        "--kind",
        "organisation",
        "--name",
        "Acme",
        "--password",
        "s3cret-enough",
    )
    assert result.exit_code == 0, result.output
    user_id = result.stdout.strip()
    assert re.fullmatch(r"[A-Z0-9]{12}", user_id)

    result = invoke(config, "register", "--name", "Nobody")
    assert result.exit_code != 0 and "password, a certificate" in result.output

    prop = generate(SUNDERLAND)[20]
    base = ["enrol", user_id, "--class", "LA-CTAX-VIEW", "--organisation", SUNDERLAND]
    facts = [
        "--fact", f"CTaxAccountRef={prop.account_ref}",
        "--fact", f"PostCode={prop.address.postcode}",
    ]  # fmt: skip
    result = invoke(config, *base, *facts, "--fact", "Surname=Wrong")
    assert result.exit_code != 0 and "1 attempt remaining" in result.output  # max_attempts = 2
    result = invoke(config, *base, *facts, "--fact", f"Surname={prop.liable[0].surname}", "--json")
    assert result.exit_code == 0, result.output
    enrolment = json.loads(result.stdout)
    assert enrolment["state"] == "awaiting_activation"

    result = invoke(config, "letters", "list", "--user", user_id, "--json")
    assert result.exit_code == 0, result.output
    [letter] = json.loads(result.stdout)
    assert letter["address"][-1] == prop.address.postcode
    pin = re.search(r"activation PIN is: (\w+)", letter["text"])
    assert pin

    result = invoke(config, "letters", "list")
    assert result.exit_code == 0 and prop.address.postcode in result.output
    assert f"letter {letter['id']} to {user_id}" in result.output

    result = invoke(config, "activate", user_id, str(enrolment["id"]), pin.group(1))
    assert result.exit_code == 0, result.output
    assert f"active; Keys CTaxAccountRef={prop.account_ref}" in result.output
