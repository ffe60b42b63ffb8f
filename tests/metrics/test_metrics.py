"""GET /metrics on a running hub: the counts move the way an operator would expect."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.clock import MovableClock
from gateway.dsp.engine import new_submission
from gateway.observability.metrics import HubMetrics, auth_reason
from gateway.store.models import LEASED
from gateway.web.app import CLOCK
from gateway.web.keys import DB, ROUTES
from tests.conftest import Hub, free_port
from tests.console.test_auth import PASSWORD, basic, with_password
from tests.hub import wire
from tests.hub.test_dsp import VIEW, acknowledged, demo, poll_until_final, submit, view_submission
from tests.hub.test_identity_e2e import CITIZEN, https_post, unsigned
from tests.metrics.scrape import scrape


def council(hub_organisation: str) -> str:
    return f"council-{hub_organisation}"


async def test_a_submission_is_counted_by_class_qualifier_and_function(hub: Hub) -> None:
    _, enrolment = demo()
    before = await scrape(hub)
    final = await poll_until_final(hub, VIEW, await acknowledged(hub))
    assert final.qualifier == "response"
    after = await scrape(hub)

    name = "gateway_dsp_messages_total"
    request = {"class": VIEW, "qualifier": "request", "function": "submit"}
    assert before.value(name, **request) == 0
    assert after.value(name, **request) == 1
    assert after.value(name, **{"class": VIEW, "qualifier": "poll", "function": "submit"}) >= 1
    # Requests are counted by route template and status; the scrape itself is one of them.
    posted = {"route": "/submission", "method": "POST", "status": "200"}
    requests = "gateway_http_requests_total"
    assert after.value(requests, **posted) == before.value(requests, **posted) + 1
    assert after.value("gateway_http_requests_total", route="/metrics", status="200") >= 1
    # The council's back office answered once, and its latency was observed.
    connector = council(enrolment.organisation)
    histogram = "gateway_connector_duration_seconds_count"
    assert after.value(histogram, connector=connector, outcome="answered") == 1
    assert after.value(histogram, connector=connector, outcome="timeout") == 0
    # No refusal was given.
    assert after.value("gateway_dsp_refusals_total") == 0


async def test_a_wrong_password_is_an_auth_refusal_1046(hub: Hub) -> None:
    reply = await submit(hub, view_submission(password="not-the-password"))
    assert reply.error_number == 1046
    after = await scrape(hub)
    assert after.value("gateway_auth_refusals_total", number="1046", reason="bad_credentials") == 1
    assert after.value("gateway_dsp_refusals_total", number="1046") == 1
    # A refusal that is not about credentials is not an authentication refusal.
    unknown = await submit(hub, wire.submission("NO-SUCH-CLASS-1", "<Nothing/>", user=None))
    assert unknown.error_number == 1001
    again = await scrape(hub)
    assert again.value("gateway_dsp_refusals_total", number="1001") == 1
    assert again.value("gateway_auth_refusals_total") == 1


async def test_unknown_classes_and_paths_are_one_label_value_each(hub: Hub) -> None:
    for n in range(3):
        await submit(hub, wire.submission(f"MADE-UP-CLASS-{n}", "<Nothing/>", user=None))
        async with hub.session.get(f"{hub.url}/no/such/path/{n}") as resp:
            assert resp.status == 404
    async with hub.session.get(f"{hub.url}/api/journeys/NOT-A-JOURNEY-ID") as resp:
        journey_status = resp.status
    after = await scrape(hub)

    classes = after.label_values("gateway_dsp_messages_total", "class")
    assert "unrouted" in classes
    assert not any(c.startswith("MADE-UP") for c in classes)
    assert after.value("gateway_dsp_messages_total", **{"class": "unrouted"}) == 3
    routes = after.label_values("gateway_http_requests_total", "route")
    assert after.value("gateway_http_requests_total", route="unmatched", status="404") == 3
    assert "/api/journeys/{id}" in routes
    journey = {"route": "/api/journeys/{id}", "status": str(journey_status)}
    assert after.value("gateway_http_requests_total", **journey) == 1
    assert not any("no/such" in r or "NOT-A-JOURNEY" in r for r in routes)
    # The 404s were problem+json refusals too (the api.refused audit event).
    assert after.value("gateway_api_refusals_total", status="404", title="Not Found") >= 3


async def test_queue_depth_and_dead_letters(hub_factory) -> None:
    closed = free_port()  # nothing listens: every forward is refused at once
    hub = await hub_factory(
        {
            "connectors": {
                "down": {
                    "type": "http-forward",
                    "url": f"http://127.0.0.1:{closed}/transactions",
                    "timeout": 2,
                }
            },
            "routes": [
                {
                    "class": "LA-CTAX-VIEW",
                    "organisation": "DOWN",
                    "connector": "down",
                    "auth_level": 0,
                    "retries": 0,
                }
            ],
        }
    )
    before = await scrape(hub)
    # Every routed connector is listed, idle at 0.
    assert before.value("gateway_queue_depth", connector="down", state="queued") == 0
    assert before.value("gateway_dead_letters", connector="down") == 0

    ack = await submit(hub, wire.submission(VIEW, "<View/>", organisation="DOWN"))
    assert ack.correlation_id, ack.errors
    final = await poll_until_final(hub, VIEW, ack.correlation_id)
    assert final.error_number == 3000

    # Rows no dispatcher will take yet: queued for tomorrow, and leased by another process.
    route = hub.app[ROUTES].get(VIEW, "DOWN")
    assert route is not None
    now = hub.app[CLOCK]()
    rows = [
        new_submission(
            route,
            correlation_id=f"{n:032X}",
            class_=VIEW,
            base_class=VIEW,
            identity=None,
            keys={},
            request_body=b"<View/>",
            now=now,
        )
        for n in range(5)
    ]
    for row in rows[:3]:
        row.next_attempt_at = now + timedelta(days=1)
    for row in rows[3:]:
        row.state, row.lease_owner, row.lease_until = LEASED, "elsewhere", now + timedelta(days=1)
    async with hub.app[DB].transaction() as session:
        session.add_all(rows)

    after = await scrape(hub)
    assert after.value("gateway_queue_depth", connector="down", state="queued") == 3
    assert after.value("gateway_queue_depth", connector="down", state="leased") == 2
    assert after.value("gateway_dead_letters", connector="down") == 1
    assert (
        after.value("gateway_connector_duration_seconds_count", connector="down", outcome="error")
        == 1
    )


async def test_certificate_status_cache_age(hub_factory) -> None:
    hub = await hub_factory({"server": {"movable_clock": True}}, https=True)
    empty = await scrape(hub)
    assert empty.value("gateway_certificate_status_cache_entries") == 0
    assert empty.label_values("gateway_certificate_status_cache_age_seconds", "answer") == set()

    from gateway.demo import certificate_paths

    cert, key = certificate_paths(hub.config, CITIZEN.user_id)
    ack = await https_post(hub, unsigned(), cert, key)
    assert ack.qualifier == "acknowledgement", ack.errors
    clock = hub.app[CLOCK]
    assert isinstance(clock, MovableClock)
    clock.advance(timedelta(seconds=120))

    after = await scrape(hub)
    assert after.value("gateway_certificate_status_cache_entries") == 1
    oldest = after.value("gateway_certificate_status_cache_age_seconds", answer="oldest")
    newest = after.value("gateway_certificate_status_cache_age_seconds", answer="newest")
    assert 120 <= newest <= oldest < 3600


async def test_only_admins_may_scrape(hub_factory) -> None:
    # Loopback is treated like any other address here: what a scraper off the host meets.
    hub: Hub = await hub_factory(with_password())
    url = f"{hub.url}/metrics"
    async with hub.session.get(url) as resp:
        assert resp.status == 401
        assert resp.content_type == "application/problem+json"
    async with hub.session.get(url, headers=basic("ops", "wrong")) as resp:
        assert resp.status == 401
    async with hub.session.get(url, headers=basic("ops", PASSWORD)) as resp:
        assert resp.status == 200
        assert "gateway_http_requests_total" in await resp.text()


async def test_off_loopback_with_no_admin_configured_nobody_may_scrape(hub_factory) -> None:
    hub: Hub = await hub_factory({"admin": {"allow_loopback": False}})
    async with hub.session.get(f"{hub.url}/metrics") as resp:
        assert resp.status == 403


def test_registries_are_per_hub() -> None:
    one, two = HubMetrics(connectors=["a"]), HubMetrics(connectors=["a"])
    one.connector_latency("a", "answered", 0.01)
    name, labels = (
        "gateway_connector_duration_seconds_count",
        {"connector": "a", "outcome": "answered"},
    )
    assert one.registry.get_sample_value(name, labels) == 1
    assert two.registry.get_sample_value(name, labels) is None


@pytest.mark.parametrize(
    ("number", "text", "reason"),
    [
        (1046, "Authentication failure: wrong user ID or password", "bad_credentials"),
        (1046, "Too many failed authentication attempts from this sender; try again", "locked_out"),
        (1046, "Authentication failure: X is not enrolled for Class 'C'", "not_enrolled"),
        (1046, "certificate revoked (keyCompromise)", "certificate"),
        (1046, "Class 'C' requires authentication (level 1)", "credentials_missing"),
        (1002, "signature does not verify", "signature"),
        (1040, "Value missing", "credentials_malformed"),
        (1047, "MD5 off", "md5_disabled"),
    ],
)
def test_auth_reasons_are_a_fixed_set(number: int, text: str, reason: str) -> None:
    assert auth_reason(number, text) == reason


async def test_prometheus_may_ask_for_openmetrics(hub: Hub) -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    async with hub.session.get(f"{hub.url}/metrics", headers={"Accept": accept}) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/openmetrics-text"
        text = await resp.text()
    assert "# TYPE gateway_queue_depth gauge" in text
    assert text.endswith("# EOF\n")
