"""`gateway faults` on the hub's database: a running hub picks the change up within its cache
interval, without being told; refusals are the admin API's, as CLI errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner, Result

from gateway.cli import main
from tests.conftest import Hub
from tests.faults.conftest import CACHE_SECONDS, COUNCIL, view


def config_for(hub: Hub, tmp_path: Path) -> Path:
    """A configuration file naming the running hub's database (through its data_dir)."""
    path = tmp_path / "cli.toml"
    path.write_text(
        f'data_dir = "{hub.config.data_dir}"\n[pki]\ndir = "{hub.config.pki_dir}"\n',
        encoding="utf-8",
    )
    return path


async def gateway(config: Path, *args: str) -> Result:
    # The CLI runs its own event loop: off this one, as in a separate process.
    return await asyncio.to_thread(
        CliRunner().invoke, main, ["--config", str(config), "faults", *args]
    )


async def test_set_list_clear_reach_the_running_hub(council_hub: Hub, tmp_path: Path) -> None:
    config = config_for(council_hub, tmp_path)
    assert (await view(council_hub)).qualifier == "response"  # the hub has read the faults table

    result = await gateway(
        config,
        "set",
        COUNCIL,
        "business_error",
        "--param",
        "number=3001",
        "--param",
        "text=Closed for the annual audit",
        "--param",
        "location=/CTaxViewRequest/AccountRef",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["params"] == {
        "number": 3001,
        "text": "Closed for the annual audit",
        "location": "/CTaxViewRequest/AccountRef",
    }
    # The change is recorded as a structured event, on stderr so stdout stays the answer.
    [event] = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert (event["event"], event["connector"], event["via"]) == ("faults.set", COUNCIL, "cli")
    listing = await gateway(config, "list")
    assert listing.stdout.startswith(f"{COUNCIL}  business_error  ")

    await asyncio.sleep(CACHE_SECONDS + 0.2)
    refused = await view(council_hub)
    assert (refused.error_number, refused.errors[0]["text"]) == (
        3001,
        "Closed for the annual audit",
    )

    cleared = await gateway(config, "clear", COUNCIL)
    assert (cleared.exit_code, cleared.stdout) == (0, f"{COUNCIL}: business_error cleared\n")
    assert json.loads(cleared.stderr)["event"] == "faults.cleared"
    await asyncio.sleep(CACHE_SECONDS + 0.2)
    assert (await view(council_hub)).qualifier == "response"
    listing = await gateway(config, "list", "--json")
    assert json.loads(listing.stdout)["faults"] == []


async def test_refusals_are_cli_errors(council_hub: Hub, tmp_path: Path) -> None:
    config = config_for(council_hub, tmp_path)
    cases = [
        (["set", COUNCIL, "connection_refused"], "applies to http-forward connectors only"),
        (["set", "council-nowhere", "hang"], "no connector named 'council-nowhere'"),
        (["set", COUNCIL, "latency", "--param", "ms=slow"], "'ms' must be a number"),
        (["clear", COUNCIL], f"connector '{COUNCIL}' has no fault set"),
    ]
    for args, message in cases:
        result = await gateway(config, *args)
        assert result.exit_code == 1 and message in result.output, (args, result.output)
    bad = await gateway(config, "set", COUNCIL, "hang", "--param", "oops")
    assert bad.exit_code == 2 and "'oops' is not NAME=VALUE" in bad.output
