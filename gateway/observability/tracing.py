"""Optional OpenTelemetry traces: hub → connector → back office as one trace.

Only the OpenTelemetry *API* is used here, and only when it is importable (the `otel` extra) and a
real tracer provider is set (by `configure_from_environment` under `gateway serve`, by
`opentelemetry-instrument`, or by `use_provider`); otherwise every function returns at once.

Spans: a server span per HTTP request (`POST /submission`, parented by an incoming
`traceparent`), and a client span per connector call, whose context the http-forward connector
sends on as `traceparent`. Dispatch runs after the acknowledgement, often in another task: the
request span's context is remembered in this process by CorrelationID, and the connector span is
its child when this process still has it (the usual case); otherwise (another worker or host,
after a restart, or long evicted) the connector span starts a new trace. Either way it carries
`govtalk.correlation_id`, by which the two can be joined.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import structlog

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode

    AVAILABLE = True
except ImportError:  # the `otel` extra is not installed: tracing is off, at no cost
    AVAILABLE = False

log = structlog.get_logger("gateway.tracing")

TRACER_NAME = "gateway"
# Request span contexts kept for the dispatcher, by CorrelationID: enough for the submissions
# of a busy minute or so; older ones fall back to a new trace.
REMEMBERED = 10_000

_provider: Any = None  # set by use_provider; otherwise the global tracer provider
_requests: OrderedDict[str, Any] = OrderedDict()


def use_provider(provider: Any) -> None:
    """Trace with this TracerProvider instead of the global one (None: the global one again)."""
    global _provider
    _provider = provider
    _requests.clear()


def active() -> bool:
    """True when spans would be recorded somewhere."""
    if not AVAILABLE:
        return False
    if _provider is not None:
        return True
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _tracer() -> Any:
    provider = _provider if _provider is not None else trace.get_tracer_provider()
    return provider.get_tracer(TRACER_NAME)


@contextlib.contextmanager
def server_span(
    method: str, route: str, headers: Mapping[str, str], path: str
) -> Iterator[Any | None]:
    """The span for one HTTP request (None when tracing is off); the caller sets the status."""
    if not active():
        yield None
        return
    parent = propagate.extract(headers)
    with _tracer().start_as_current_span(
        f"{method} {route}",
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": method, "http.route": route, "url.path": path},
    ) as span:
        yield span


def finish_server_span(span: Any | None, status: int) -> None:
    """Record the HTTP status on a server span; 5xx is an error (4xx is the client's)."""
    if span is None:
        return
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(StatusCode.ERROR)


def dsp_message(class_: str, qualifier: str, function: str | None) -> None:
    """Name the GovTalk message on the current request's span."""
    if not active():
        return
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(
            {
                "govtalk.class": class_,
                "govtalk.qualifier": qualifier,
                "govtalk.function": function or "submit",
            }
        )


def audited(event: str, correlation_id: str | None, fields: Mapping[str, Any]) -> None:
    """On `dsp.received`: tag the request span and remember it for the dispatcher."""
    if event != "dsp.received" or not correlation_id or not active():
        return
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.set_attribute("govtalk.correlation_id", correlation_id)
    _requests[correlation_id] = span.get_span_context()
    while len(_requests) > REMEMBERED:
        _requests.popitem(last=False)


@contextlib.contextmanager
def connector_span(connector: str, correlation_id: str) -> Iterator[None]:
    """The current span while a connector handles a submission (see the module docstring)."""
    if not active():
        yield
        return
    remembered: SpanContext | None = _requests.get(correlation_id)
    parent = trace.set_span_in_context(NonRecordingSpan(remembered)) if remembered else None
    with _tracer().start_as_current_span(
        f"connector {connector}",
        context=parent,
        kind=SpanKind.CLIENT,
        attributes={"gateway.connector": connector, "govtalk.correlation_id": correlation_id},
    ):
        yield


def trace_headers() -> dict[str, str]:
    """W3C trace-context headers (`traceparent`, …) for an outgoing request, or none."""
    if not AVAILABLE:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def configure_from_environment(environ: Mapping[str, str] = os.environ) -> bool:
    """Install an SDK tracer provider exporting spans, when the standard OTEL_* variables ask
    for one and the SDK is installed; True if tracing is now on.

    On when OTEL_TRACES_EXPORTER is `otlp` or `console`, or an OTLP endpoint is set
    (OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); off with
    OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none. The exporter reads its own OTEL_* settings.
    """
    if not AVAILABLE or environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter_name = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    if exporter_name == "none" or not (exporter_name in ("otlp", "console") or endpoint):
        return False
    if active():
        return True  # someone (opentelemetry-instrument) set a provider already
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )

        exporter: SpanExporter
        if exporter_name == "console":
            exporter = ConsoleSpanExporter()
        else:
            # By name: the exporter comes with the `otel` extra only, and type checkers of code
            # that imports the hub (a connector's, say) must not need it.
            otlp = importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
            exporter = otlp.OTLPSpanExporter()
    except ImportError as exc:
        log.warning("tracing.not_installed", error=str(exc), hint="pip install '.[otel]'")
        return False
    service = environ.get("OTEL_SERVICE_NAME", "govtalk-gateway-hub")
    # Resource.create also reads OTEL_RESOURCE_ATTRIBUTES.
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    log.info("tracing.enabled", exporter=exporter_name or "otlp", service=service)
    return True
