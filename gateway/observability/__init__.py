"""Metrics (Prometheus) and optional traces (OpenTelemetry): the hooks the hub calls.

The hub's code calls only the functions here. They find the hub's metrics through `current`
(set per request by the metrics middleware and for background tasks by the lifecycle, the way
`gateway.audit.log` finds its trail) and do nothing when none are in scope; tracing does nothing
when OpenTelemetry is not installed or not configured. This module imports neither
prometheus_client nor OpenTelemetry itself, so connectors and the audit log may import it freely.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from gateway.govtalk.model import MessageDetails
from gateway.observability import tracing

if TYPE_CHECKING:
    from gateway.observability.metrics import HubMetrics

__all__ = ["audited", "connector_call", "current", "dsp_message"]

current: contextvars.ContextVar[HubMetrics | None] = contextvars.ContextVar(
    "hub_metrics", default=None
)


def dsp_message(message: MessageDetails) -> None:
    """Called by the DSP engine for each parsed envelope: counted, and named on the span."""
    recorder = current.get()
    if recorder is not None:
        recorder.dsp_message(message)
    tracing.dsp_message(message.class_, message.qualifier, message.function)


def audited(event: str, correlation_id: str | None, fields: dict[str, Any]) -> None:
    """Called by `gateway.audit.log.audit` for every event: refusals counted, spans annotated."""
    recorder = current.get()
    if recorder is not None:
        recorder.audited(event, fields)
    tracing.audited(event, correlation_id, fields)


@contextlib.contextmanager
def connector_call(connector: str, correlation_id: str) -> Iterator[None]:
    """Around one connector call: its latency by outcome, and a span the back office joins."""
    recorder = current.get()
    started = time.perf_counter()
    outcome: str | None = None
    with tracing.connector_span(connector, correlation_id):
        try:
            yield
        except TimeoutError:
            outcome = "timeout"
            raise
        except Exception:
            outcome = "error"
            raise
        else:
            outcome = "answered"  # an Outcome came back (a Response, an error, a retry)
        finally:
            # None: cancelled (the hub stopping); no attempt finished, nothing to observe.
            if recorder is not None and outcome is not None:
                recorder.connector_latency(connector, outcome, time.perf_counter() - started)
