"""Who may use the console and the admin API: loopback, credentials, certificates; CSRF."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from gateway.config import parse_config
from gateway.identity.passwords import hash_secret
from gateway.pki.ca import Pki
from gateway.pki.tls import client_ssl_context
from tests.conftest import Hub, HubFactory, free_port
from tests.console.conftest import Console, audit_records
from tests.faults.conftest import COUNCIL, set_fault

PASSWORD = "correct horse battery staple"


def with_password(**admin: Any) -> dict[str, Any]:
    """A hub that treats loopback like any other address, with admin credentials."""
    return {
        "admin": {
            "allow_loopback": False,
            "user": "ops",
            "password_hash": hash_secret(PASSWORD, n=2**10),
            **admin,
        }
    }


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(user, password)}


async def test_loopback_peers_are_admins_by_default(console: Console) -> None:
    status, page = await console.get("/console/transactions")
    assert status == 200
    assert "Admin: a loopback peer" in page
    for href in (
        "/console/transactions",
        "/console/journeys",
        "/console/connectors",
        "/console/services",
        "/console/audit",
        "/console/settings",
    ):
        assert f'href="{href}"' in page
    assert 'class="skip-link" href="#main"' in page
    async with console.session.get(f"{console.base}/console/transactions") as resp:
        csp = resp.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert resp.headers["Cache-Control"] == "no-store"


async def test_off_loopback_with_nothing_configured_is_refused_and_audited(
    hub_factory: HubFactory, console_for: Callable[..., Console]
) -> None:
    hub: Hub = await hub_factory({"admin": {"allow_loopback": False}})
    console = console_for(hub)
    status, page = await console.get("/console/transactions")
    assert status == 403
    assert "<h1>Forbidden</h1>" in page and "configure [admin]" in page
    # The admin JSON API is behind the same gate: problem+json there.
    async with console.session.get(f"{hub.url}/admin/faults") as resp:
        assert resp.status == 403
        assert resp.content_type == "application/problem+json"
    # No password sign-in exists to be guessed at.
    status, _ = await console.get("/console/sign-in")
    assert status == 404
    refused = await audit_records(hub, "console.refused")
    assert refused[0].detail["status"] == 403
    assert refused[0].detail["path"] == "/console/transactions"
    assert (await audit_records(hub, "api.refused"))[0].detail["status"] == 403


async def test_credentials_sign_in_and_wrong_ones_are_refused_and_audited(
    hub_factory: HubFactory, console_for: Callable[..., Console]
) -> None:
    hub: Hub = await hub_factory(with_password())
    console = console_for(hub)
    # Not signed in: the sign-in form itself, 401, at the address asked for.
    status, page = await console.get("/console/connectors?x=1")
    assert status == 401
    assert 'action="/console/sign-in"' in page
    assert 'value="/console/connectors?x=1"' in page

    wrong = await console.post(
        "/console/sign-in", {"user": "ops", "password": "guess", "next": "/console/connectors"}
    )
    assert wrong.status == 401
    assert "gw_console" not in {c.key for c in console.session.cookie_jar}
    refused = await audit_records(hub, "console.sign_in_refused")
    assert refused[0].detail["user"] == "ops" and refused[0].outcome == "refused"

    right = await console.post(
        "/console/sign-in", {"user": "ops", "password": PASSWORD, "next": "/console/connectors"}
    )
    assert right.status == 303
    assert right.headers["Location"] == "/console/connectors"
    cookie = right.cookies["gw_console"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert cookie["path"] == "/console"  # never sent to /admin, whose endpoints take no token
    status, page = await console.get("/console/connectors")
    assert status == 200 and "ops, signed in" in page
    assert (await audit_records(hub, "console.signed_in"))[0].actor == "ops"

    signed_out = await console.post("/console/sign-out", {})
    assert signed_out.status == 303
    status, _ = await console.get("/console/connectors")
    assert status == 401


async def test_a_tampered_session_cookie_is_not_a_session(
    hub_factory: HubFactory, console_for: Callable[..., Console]
) -> None:
    hub: Hub = await hub_factory(with_password())
    console = console_for(hub)
    resp = await console.post("/console/sign-in", {"user": "ops", "password": PASSWORD})
    value = resp.cookies["gw_console"].value
    payload, signature = value.rsplit(".", 1)
    forged = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    for bad in (f"{forged}.{signature}", f"{payload}.{signature[:-1]}x", "garbage"):
        async with aiohttp.ClientSession() as other:
            async with other.get(
                f"{hub.url}/console/transactions", headers={"Cookie": f"gw_console={bad}"}
            ) as r:
                assert r.status == 401


async def test_sign_in_goes_only_to_console_pages(
    hub_factory: HubFactory, console_for: Callable[..., Console]
) -> None:
    hub: Hub = await hub_factory(with_password())
    console = console_for(hub)
    for target in ("https://evil.example/", "//evil.example/console", "/pay/1"):
        resp = await console.post(
            "/console/sign-in", {"user": "ops", "password": PASSWORD, "next": target}
        )
        assert resp.headers["Location"] == "/console/transactions", target


async def test_basic_credentials_open_the_admin_api(hub_factory: HubFactory) -> None:
    hub: Hub = await hub_factory(with_password())
    url = f"{hub.url}/admin/faults"
    async with hub.session.get(url, headers=basic("ops", PASSWORD)) as resp:
        assert resp.status == 200
    async with hub.session.get(url, headers=basic("ops", "nope")) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Basic")
    async with hub.session.get(url) as resp:
        assert resp.status == 401
    refused = await audit_records(hub, "console.sign_in_refused")
    assert refused[0].detail["via"] == "basic"
    # What the admin then changes is theirs in the trail.
    fault = f"{url}/{COUNCIL}"
    body = {"fault": "hang", "params": {}}
    async with hub.session.put(fault, json=body, headers=basic("ops", PASSWORD)) as resp:
        assert resp.status == 200, await resp.text()
    async with hub.session.delete(fault, headers=basic("ops", PASSWORD)) as resp:
        assert resp.status == 204
    for event in ("admin.faults.set", "admin.faults.cleared"):
        [record] = await audit_records(hub, event)
        assert (record.actor, record.detail["via"]) == ("ops", "api"), event


async def test_console_posts_need_the_csrf_token(console: Console) -> None:
    # A fault to clear, so that the one accepted POST has something to do.
    async with console.session.put(
        f"{console.base}/admin/faults/council-E08000024", json={"fault": "hang"}
    ) as resp:
        assert resp.status == 200
    path = "/console/connectors/council-E08000024/fault/clear"
    missing = await console.post(path, {}, token=False)
    assert missing.status == 403
    await console.csrf()  # the browser has a token cookie now; a forged form has another
    wrong = await console.post(path, {"csrf_token": "A" * 43}, token=False)
    assert wrong.status == 403
    # A right token from another site (another port of the same host is "same-site").
    for headers in ({"Origin": "http://127.0.0.1:1"}, {"Sec-Fetch-Site": "same-site"}):
        other_site = await console.post(path, {}, headers=headers)
        assert other_site.status == 403, headers
    refused = await audit_records(console.hub, "console.refused", at_least=4)
    assert {r.detail["status"] for r in refused} == {403}
    _status, page = await console.get("/console/connectors")
    assert "Current fault: <strong>hang</strong>" in page
    right = await console.post(path, {})
    assert right.status == 303
    _, page = await console.get("/console/connectors")
    assert "Current fault" not in page


async def test_an_admin_certificate_on_the_https_listener(
    hub_factory: HubFactory, console_for: Callable[..., Console], tmp_path: Path
) -> None:
    port, https_port = free_port(), free_port()
    settings: dict[str, Any] = {
        "pki": {"dir": str(tmp_path / "certs")},
        "server": {"port": port, "https_port": https_port},
    }
    config = parse_config(settings)
    pki = Pki.ensure(config.pki_dir, base_url=config.pki_base_url, hosts=config.pki.hosts)
    admin_cert = pki.issue("admin-ops", common_name="Ops Admin", kind="council")
    other_cert = pki.issue("not-admin", common_name="Someone Else", kind="council")
    settings["admin"] = {
        "allow_loopback": False,
        "certificate_fingerprints": [admin_cert.fingerprint.upper()],
    }
    hub: Hub = await hub_factory(settings, https=True)
    assert hub.https_url

    def tls(cert: Any) -> ssl.SSLContext:
        return client_ssl_context(pki.ca_bundle_path, cert.cert_path, cert.key_path)

    admin = console_for(hub, base=hub.https_url, ssl=tls(admin_cert))
    status, page = await admin.get("/console/transactions")
    assert status == 200 and "Ops Admin" in page and "admin certificate" in page
    other = console_for(hub, base=hub.https_url, ssl=tls(other_cert))
    status, _ = await other.get("/console/transactions")
    assert status == 401
    nobody = console_for(hub, base=hub.https_url, ssl=client_ssl_context(pki.ca_bundle_path))
    status, _ = await nobody.get("/console/transactions")
    assert status == 401

    # A revoked admin certificate is an admin no more.
    pki.revoke(admin_cert.serial)
    status, page = await admin.get("/console/transactions")
    assert status == 401 and "admin certificate refused" in page


def test_hash_password_prints_an_admin_section() -> None:
    from click.testing import CliRunner

    from gateway.cli import main
    from gateway.identity.passwords import verify_secret

    result = CliRunner().invoke(
        main, ["admin", "hash-password", "--user", "ops"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if "=" in line]
    assert lines[0] == 'user = "ops"'
    hashed = lines[1].split('"')[1]
    assert verify_secret(PASSWORD, hashed) and not verify_secret("wrong", hashed)
    short = CliRunner().invoke(main, ["admin", "hash-password", "--password", "short"])
    assert short.exit_code != 0 and "at least 12" in short.output


async def test_another_site_cannot_post_to_the_loopback_admin_api(hub: Hub) -> None:
    # A page open in the admin's browser could send "simple" cross-site requests to loopback;
    # the admin JSON API takes no CSRF token, so browsers' own headers are what refuse them.
    await set_fault(hub, COUNCIL, "hang")
    url = f"{hub.url}/admin/faults/{COUNCIL}"
    for headers in (
        {"Origin": "http://attacker.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"},
    ):
        async with hub.session.delete(url, headers=headers) as resp:
            assert resp.status == 403, headers
            assert resp.content_type == "application/problem+json"
    refused = await audit_records(hub, "api.refused", at_least=3)
    assert all(r.detail["status"] == 403 for r in refused)
    # Nothing changed; reading stays open to a browser; tooling sends neither header.
    async with hub.session.get(
        f"{hub.url}/admin/faults", headers={"Sec-Fetch-Site": "cross-site"}
    ) as resp:
        assert resp.status == 200
        assert COUNCIL in json.dumps(await resp.json())
    async with hub.session.delete(url) as resp:
        assert resp.status == 204


def rebound(hub: Hub, name: str) -> dict[str, str]:
    """The headers a browser sends from a page at `name` once its DNS points at the hub."""
    host = f"{name}:{urlsplit(hub.url).port}"
    return {"Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"}


async def test_a_page_rebound_to_loopback_is_not_an_admin(hub: Hub) -> None:
    """DNS rebinding: a loopback peer naming another site gets no keys, PINs or console pages."""
    attacker = rebound(hub, "rebind.attacker.example")
    async with hub.session.post(
        f"{hub.url}/admin/certificates", json={"user_id": "DEMO0SUN0001"}, headers=attacker
    ) as resp:
        assert resp.status == 403
        assert "PRIVATE KEY" not in await resp.text()
    async with hub.session.get(f"{hub.url}/admin/letters", headers=attacker) as resp:
        assert resp.status == 403
    async with hub.session.get(f"{hub.url}/console/transactions", headers=attacker) as resp:
        assert resp.status == 403
        assert "own host names" in await resp.text()
    refused = await audit_records(hub, "api.refused", at_least=2)
    assert all("own host names" in r.detail["reason"] for r in refused)
    [console_refused] = await audit_records(hub, "console.refused")
    assert "own host names" in console_refused.detail["reason"]
    # The hub's own names, from the same loopback peer, are still an admin's.
    for name in ("localhost", "127.0.0.1", "[::1]"):
        async with hub.session.get(f"{hub.url}/admin/letters", headers=rebound(hub, name)) as resp:
            assert resp.status == 200, name


async def test_the_hubs_configured_names_count_as_its_own(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    """The public URL's host and the server certificate's names are the hub's, as localhost is."""
    hub: Hub = await hub_factory(
        {
            "server": {"public_url": "https://Gateway.Council.example/"},
            "pki": {"dir": str(tmp_path / "certs"), "hosts": ["hub.internal"]},
        }
    )
    for name, status in (
        ("gateway.council.example", 200),
        ("hub.internal", 200),
        ("council.example", 403),
    ):
        async with hub.session.get(f"{hub.url}/admin/letters", headers=rebound(hub, name)) as resp:
            assert resp.status == status, name
