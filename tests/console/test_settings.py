"""Console settings: the route table, the effective configuration with every secret redacted, and
the BVPI 157 table per council matching the report."""

from __future__ import annotations

import base64
import re

from gateway.config import parse_config
from gateway.console.settings import effective_settings, redact_url
from tests.conftest import Hub, HubFactory
from tests.console.test_journeys import call, page, text_of
from tests.hub import wire
from tests.hub.test_dsp import demo, view_submission

MAIL_KEY = base64.b64encode(b"k" * 32).decode()
SECRETS = {
    "webhook": "whsec-do-not-show-1",
    "payments token": "pay-token-do-not-show-2",
    "mail key": MAIL_KEY,
    "council token": "mail-token-do-not-show-3",
    "redis password": "redis-pass-do-not-show-4",
    "header": "Bearer header-do-not-show-5",
    "url password": "url-pass-do-not-show-6",
    "url query": "query-key-do-not-show-7",
}


def secret_config() -> dict[str, object]:
    return {
        "payments": {
            "webhooks": [{"url": "https://hooks.example/pay", "secret": SECRETS["webhook"]}],
            "api_tokens": {"E08000024": SECRETS["payments token"]},
        },
        "mail": {
            "keys": {"k1": MAIL_KEY},
            "current_key": "k1",
            "council_tokens": {"E08000024": SECRETS["council token"]},
        },
        "limits": {"redis_url": f"redis://:{SECRETS['redis password']}@127.0.0.1:6379/0"},
        "connectors": {
            "supplier": {
                "type": "http-forward",
                "url": (
                    f"https://gw:{SECRETS['url password']}@backoffice.example/in"
                    f"?api_key={SECRETS['url query']}&council=E1"
                ),
                "headers": {"Authorization": SECRETS["header"]},
            }
        },
        "routes": [
            {
                "class": "LA-PLANNING-COMMENT",
                "organisation": "E08000024",
                "organisation_name": "Sunderland City Council",
                "connector": "supplier",
                "auth_level": 2,
                "timeout": 7.5,
                "bvpi157": "consultation",
            },
            {
                "class": "LA-PLANNING-TRIAL",
                "organisation": "E08000024",
                "connector": "supplier",
                "test_connector": "supplier",
                "auth_level": 0,
                "credentials": "ignore",
            },
        ],
    }


async def test_settings_show_routes_and_configuration_without_any_secret(
    hub_factory: HubFactory,
) -> None:
    hub: Hub = await hub_factory(secret_config())
    status, html = await page(hub, "/console/settings")
    assert status == 200
    for name, secret in SECRETS.items():
        assert secret not in html, name
    text = text_of(html)
    # Which secrets exist is shown, not what they are.
    assert "k1 = •••••• (set, not shown)" in text
    assert "E08000024 = •••••• (set, not shown)" in text
    assert "redis://:••••••@127.0.0.1:6379/0" in text
    assert "https://gw:••••••@backoffice.example/in?api_key=••••••&council=E1" in text
    assert "current_key k1" in text and "concurrency" in text
    assert re.search(
        r"LA-PLANNING-TRIAL E08000024 supplier \(http-forward\) GatewayTest: supplier 0 "
        r"credentials ignored",
        text,
    )

    status, html = await page(
        hub, "/console/settings?organisation=E08000024&class=la-planning-comment"
    )
    rows = text_of(html)[text_of(html).index("Route table") : text_of(html).index("Effective")]
    assert re.search(
        r"LA-PLANNING-COMMENT E08000024 Sunderland City Council supplier \(http-forward\) "
        r"2 yes Consultation async 7\.5 3 0\.5 1",
        rows,
    ), rows
    assert "LA-CTAX-VIEW" not in rows


def test_database_urls_lose_their_passwords() -> None:
    config = parse_config(
        {"database": {"url": "postgresql+asyncpg://gateway:db-secret-8@db.example:5432/hub"}}
    )
    shown = {(s.section, s.name): s.value for s in effective_settings(config)}
    assert shown[("database", "url")] == "postgresql+asyncpg://gateway:••••••@db.example:5432/hub"
    assert "db-secret-8" not in repr(shown)
    assert (
        redact_url("https://example.org/a?token=abc&x=1")
        == "https://example.org/a?token=••••••&x=1"
    )
    assert redact_url("sqlite+aiosqlite:///var/gateway.db") == "sqlite+aiosqlite:///var/gateway.db"


async def test_the_bvpi157_table_matches_the_report(hub: Hub) -> None:
    _citizen, enrolment = demo()
    for _ in range(3):
        reply = wire.read(await hub.post(view_submission()))
        assert reply.qualifier == "acknowledgement"
    status, report = await call(
        hub, "GET", f"/admin/reports/bvpi157?council={enrolment.organisation}"
    )
    assert status == 200
    [council] = report["councils"]
    volumes = {t["label"]: t["volume"] for t in council["types"]}
    assert volumes["Providing information"] == 3

    status, html = await page(hub, f"/console/settings/bvpi157?council={enrolment.organisation}")
    assert status == 200
    text = text_of(html)
    assert (
        f"{council['name']} ({enrolment.organisation}): {council['enabled']} of 10 types "
        f"e-enabled, {council['percentage']}%"
    ) in text
    for line in council["types"]:
        enabled = "yes" if line["enabled"] else "no"
        classes = ", ".join(line["classes"])
        row = f"{line['label']} {enabled} {classes} {line['volume']}".replace("  ", " ")
        assert row in text, row
    assert f"All transactions {council['percentage']}% {council['total_volume']}" in text

    # Every council by default; an unknown one is said so, and every council shown.
    status, html = await page(hub, "/console/settings/bvpi157")
    assert status == 200 and "E07000188" in text_of(html) and "E08000024" in text_of(html)
    status, html = await page(hub, "/console/settings/bvpi157?council=E99999999")
    assert status == 404 and "unknown council &#39;E99999999&#39;" in html
