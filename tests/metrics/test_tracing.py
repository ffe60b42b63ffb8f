"""OpenTelemetry traces: a submission forwarded over http-forward is one trace from the hub's
request to the supplier's back office (spans recorded with the SDK's in-memory exporter)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from examples.supplier_backoffice.app import make_app
from gateway.observability import tracing
from tests.conftest import Hub
from tests.hub import wire
from tests.hub.test_dsp import poll_until_final
from tests.serving import serving

VIEW = "LA-CTAX-VIEW"
BODY = (
    '<CTaxViewRequest xmlns="urn:govtalk-hub:example:ctax-view:v1">'
    "<AccountReference>10000001</AccountReference></CTaxViewRequest>"
)
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@dataclass
class BackOffice:
    url: str
    traceparents: list[str | None] = field(default_factory=list)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider)
    yield exporter
    tracing.use_provider(None)
    provider.shutdown()


@pytest.fixture
async def back_office() -> AsyncIterator[BackOffice]:
    """The example supplier back office, noting the traceparent of each transaction it gets."""
    app = make_app()
    seen = BackOffice("")

    async def note(request: web.Request, response: web.StreamResponse) -> None:
        if request.method == "POST" and request.path == "/transactions":
            seen.traceparents.append(request.headers.get("traceparent"))

    app.on_response_prepare.append(note)
    async with serving(app) as seen.url:
        yield seen


async def forwarding_hub(hub_factory, back_office: BackOffice) -> Hub:
    return await hub_factory(
        {
            "connectors": {
                "supplier": {
                    "type": "http-forward",
                    "url": f"{back_office.url}/transactions",
                    "timeout": 2,
                }
            },
            "routes": [
                {
                    "class": VIEW,
                    "organisation": "SUPPLIER",
                    "connector": "supplier",
                    "auth_level": 0,
                }
            ],
        }
    )


async def forward_one(hub: Hub, **post: object) -> str:
    xml = wire.submission(VIEW, BODY, organisation="SUPPLIER")
    ack = wire.read(await hub.post(xml, **post))  # type: ignore[arg-type]
    assert ack.correlation_id, ack.errors
    final = await poll_until_final(hub, VIEW, ack.correlation_id)
    assert final.qualifier == "response", final.errors
    return ack.correlation_id


def _hex(number: int, width: int) -> str:
    return format(number, f"0{width}x")


def named(finished: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in finished if s.name == name]


async def test_one_trace_from_the_hub_to_the_back_office(
    hub_factory, back_office: BackOffice, spans: InMemorySpanExporter
) -> None:
    hub = await forwarding_hub(hub_factory, back_office)
    correlation_id = await forward_one(hub)

    finished = spans.get_finished_spans()
    (request,) = [
        s
        for s in named(finished, "POST /submission")
        if (s.attributes or {}).get("govtalk.correlation_id") == correlation_id
    ]
    assert request.kind == SpanKind.SERVER
    assert request.attributes is not None
    assert request.attributes["govtalk.class"] == VIEW
    assert request.attributes["govtalk.qualifier"] == "request"
    assert request.attributes["http.response.status_code"] == 200
    (call,) = named(finished, "connector supplier")
    assert call.kind == SpanKind.CLIENT
    assert call.attributes is not None
    assert call.attributes["govtalk.correlation_id"] == correlation_id
    # Dispatch runs after the acknowledgement, yet the connector call is in the request's trace.
    assert call.context.trace_id == request.context.trace_id
    assert call.parent is not None and call.parent.span_id == request.context.span_id

    # The back office got the connector span's context: one trace across the three.
    (traceparent,) = back_office.traceparents
    assert traceparent is not None
    version, trace_id, parent_id, _flags = traceparent.split("-")
    assert version == "00"
    assert trace_id == _hex(request.context.trace_id, 32)
    assert parent_id == _hex(call.context.span_id, 16)


async def test_a_client_trace_is_continued(
    hub_factory, back_office: BackOffice, spans: InMemorySpanExporter
) -> None:
    hub = await forwarding_hub(hub_factory, back_office)
    await forward_one(hub, headers={"traceparent": f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"})
    (traceparent,) = back_office.traceparents
    assert traceparent is not None and traceparent.split("-")[1] == CLIENT_TRACE


async def test_without_a_provider_nothing_is_traced_or_sent(
    hub_factory, back_office: BackOffice
) -> None:
    assert not tracing.active()  # no SDK provider is installed globally in the tests
    hub = await forwarding_hub(hub_factory, back_office)
    await forward_one(hub)
    assert back_office.traceparents == [None]
    assert tracing.trace_headers() == {}


async def test_dispatch_in_another_process_starts_a_trace_of_its_own(
    spans: InMemorySpanExporter,
) -> None:
    # What a dispatcher that never saw the request does: a new trace, joined by CorrelationID.
    with tracing.connector_span("supplier", "A" * 32):
        headers = tracing.trace_headers()
        await asyncio.sleep(0)
    (call,) = spans.get_finished_spans()
    assert call.parent is None
    assert (call.attributes or {}).get("govtalk.correlation_id") == "A" * 32
    assert headers["traceparent"].split("-")[1] == _hex(call.context.trace_id, 32)


def test_configured_only_by_the_standard_variables() -> None:
    assert not tracing.configure_from_environment({})
    assert not tracing.configure_from_environment({"OTEL_TRACES_EXPORTER": "none"})
    assert not tracing.configure_from_environment(
        {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}
    )
