"""`gateway sso`: portals registered from the command line are the ones the running hub serves."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner, Result

from gateway.cli import main
from tests.conftest import Hub, HubFactory


async def invoke(config: Path, *args: str) -> Result:
    # The CLI runs its own event loop; the test's loop is busy serving the hub.
    return await asyncio.to_thread(CliRunner().invoke, main, ["--config", str(config), *args])


async def test_cli_registers_portals_and_rotates_keys(
    tmp_path: Path, hub_factory: HubFactory
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('data_dir = "var"\n')

    added = await invoke(
        config,
        "sso", "clients", "add",
        "--name", "Sunderland portal",
        "--organisation", "E08000024",
        "--redirect-uri", "http://localhost:3000/callback",
        "--backchannel-logout-uri", "http://localhost:3000/logout",
        "--json",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    client = json.loads(added.stdout)
    assert client["token_endpoint_auth_method"] == "client_secret_basic"
    assert len(client["client_secret"]) >= 40

    refused = await invoke(
        config, "sso", "clients", "add", "--name", "Nowhere portal",
        "--organisation", "X99", "--redirect-uri", "http://localhost:3000/cb",
    )  # fmt: skip
    assert refused.exit_code != 0 and "not one this hub routes to" in refused.output
    insecure = await invoke(
        config, "sso", "clients", "add", "--name", "Plain portal",
        "--organisation", "E08000024", "--redirect-uri", "http://portal.example/cb",
    )  # fmt: skip
    assert insecure.exit_code != 0 and "plain http is for localhost" in insecure.output

    listed = json.loads((await invoke(config, "sso", "clients", "list", "--json")).stdout)
    assert [c["client_id"] for c in listed] == [client["client_id"]]
    assert "client_secret" not in listed[0]

    assert "signing with" in (await invoke(config, "sso", "keys", "rotate")).output
    keys = (await invoke(config, "sso", "keys", "list")).stdout.splitlines()
    assert len(keys) == 2 and sum("active" in line for line in keys) == 1

    # The hub on the same database serves that portal and publishes both keys.
    hub: Hub = await hub_factory(data_dir=tmp_path / "var")
    async with hub.session.get(f"{hub.url}/admin/sso/clients") as resp:
        served = await resp.json()
    assert [c["client_id"] for c in served["clients"]] == [client["client_id"]]
    async with hub.session.get(f"{hub.url}/sso/jwks") as resp:
        assert len((await resp.json())["keys"]) == 2

    assert (await invoke(config, "sso", "clients", "remove", client["client_id"])).exit_code == 0
    assert json.loads((await invoke(config, "sso", "clients", "list", "--json")).stdout) == []
