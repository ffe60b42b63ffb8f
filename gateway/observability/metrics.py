"""The hub's Prometheus metrics: definitions, recording helpers, and the values read at scrape.

Each hub has its own `CollectorRegistry` (tests run many hubs in one process; the global default
registry would mix them). The hub's code reaches it through the hooks in `gateway.observability`.
Under `gateway serve --workers N` the counters and histograms are kept in files that every
worker's scrape adds up (prometheus_client's multiprocess mode, `PROMETHEUS_MULTIPROC_DIR`, which
the supervisor sets): one hub, whichever worker answers the scrape.

Every label value comes from a fixed set or from configuration, never from a client's text:
unrouted Classes, unknown methods and unmatched paths are each one fixed value.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from gateway.govtalk.model import TIL_SUFFIX, Function, MessageDetails, Qualifier
from gateway.store.engine import Database
from gateway.store.models import LEASED, PENDING_STATES, QUEUED, DeadLetter, Submission

# No `*_created` series: in the text format each would be one more gauge per series, and
# Prometheus learns a counter's resets without them. (Process-wide; this process is the hub.)
disable_created_metrics()  # type: ignore[no-untyped-call]

UNROUTED = "unrouted"  # a Class no route serves: one label value however many are tried
UNMATCHED = "unmatched"  # a path no route matches
OTHER = "other"

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
QUALIFIERS = frozenset(q.value for q in Qualifier)
FUNCTIONS = frozenset(f.value for f in Function)
# Connector calls range from a local simulation (milliseconds) to a back office at its route
# timeout (tens of seconds).
CONNECTOR_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Refusals that are about who the sender is (the numbers the lockout counts, and MD5 off).
AUTH_NUMBERS = frozenset({1002, 1040, 1046, 1047})
AUTH_REASONS = {1002: "signature", 1040: "credentials_malformed", 1047: "md5_disabled"}
# problem+json titles are fixed strings in the code; this caps them should one ever vary.
MAX_TITLES = 64


def auth_reason(number: int, text: str) -> str:
    """A short, fixed label for an authentication refusal (1046 covers several causes)."""
    if number != 1046:
        return AUTH_REASONS.get(number, OTHER)
    lowered = text.lower()
    if lowered.startswith("too many failed authentication"):
        return "locked_out"
    if "not enrolled" in lowered:
        return "not_enrolled"
    if "certificate" in lowered:
        return "certificate"
    if "requires" in lowered or "required" in lowered or "needs" in lowered:
        return "credentials_missing"
    return "bad_credentials"


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """Submissions pending (by connector and state) and dead letters (by connector)."""

    pending: dict[tuple[str, str], int] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)


async def queue_snapshot(db: Database) -> QueueSnapshot:
    """Two GROUP BY counts; the pending one reads only pending rows (ix_submissions_due leads
    with state), so it stays cheap however many answered submissions are kept."""
    async with db.read() as session:
        pending = await session.execute(
            select(Submission.connector, Submission.state, func.count())
            .where(Submission.state.in_(PENDING_STATES))
            .group_by(Submission.connector, Submission.state)
        )
        dead = await session.execute(
            select(DeadLetter.connector, func.count()).group_by(DeadLetter.connector)
        )
        return QueueSnapshot(
            pending={(str(c), str(s)): int(n) for c, s, n in pending},
            dead_letters={str(c): int(n) for c, n in dead},
        )


class _ScrapeCollector(Collector):
    """Values read at scrape time: the queue from the database (fetched by the view just before,
    since collectors cannot await), the certificate-status cache from the running checker."""

    def __init__(self, metrics: HubMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return []  # nothing to check at registration; names are fixed below

    def collect(self) -> Iterator[Metric]:
        hub = self._metrics
        if hub.snapshot is not None:
            yield from self._queue(hub.snapshot)
        yield from self._pacing(hub.queue_waits())
        ages = hub.certificate_status_ages()
        age = GaugeMetricFamily(
            "gateway_certificate_status_cache_age_seconds",
            "Age of the oldest and newest certificate-status (OCSP/CRL) answers still cached",
            labels=["answer"],
        )
        if ages:
            age.add_metric(["oldest"], max(ages))
            age.add_metric(["newest"], min(ages))
        yield age
        yield GaugeMetricFamily(
            "gateway_certificate_status_cache_entries",
            "Certificate-status answers cached and still within their nextUpdate",
            value=len(ages),
        )

    def _queue(self, snapshot: QueueSnapshot) -> Iterator[Metric]:
        # Every routed connector is shown, at 0 when idle: a series that vanishes reads as "no
        # data", not as "empty queue".
        connectors = self._metrics.connectors
        depth = GaugeMetricFamily(
            "gateway_queue_depth",
            "Submissions waiting for (queued) or being worked by (leased) a connector",
            labels=["connector", "state"],
        )
        pending = dict(snapshot.pending)
        for connector in connectors:
            for state in (QUEUED, LEASED):
                pending.setdefault((connector, state), 0)
        for (connector, state), count in sorted(pending.items()):
            depth.add_metric([connector, state], count)
        yield depth
        dead = GaugeMetricFamily(
            "gateway_dead_letters",
            "Submissions given up on and kept in dead_letters (until replayed), by connector",
            labels=["connector"],
        )
        letters = dict(snapshot.dead_letters)
        for connector in connectors:
            letters.setdefault(connector, 0)
        for connector, count in sorted(letters.items()):
            dead.add_metric([connector], count)
        yield dead

    def _pacing(self, waits: dict[str, tuple[float, int]]) -> Iterator[Metric]:
        wait = GaugeMetricFamily(
            "gateway_queue_wait_seconds",
            "How long each connector's first due submission has waited to be taken",
            labels=["connector"],
        )
        interval = GaugeMetricFamily(
            "gateway_paced_poll_interval_seconds",
            "PollInterval asked of a submission queued now, before its route's own (0: none)",
            labels=["connector"],
        )
        for connector in sorted({*self._metrics.connectors, *waits}):
            waited, paced = waits.get(connector, (0.0, 0))
            wait.add_metric([connector], waited)
            interval.add_metric([connector], paced)
        yield wait
        yield interval


class HubMetrics:
    """One hub's metrics in its own registry; the recording helpers bound label values."""

    def __init__(
        self, *, routed_classes: Iterable[str] = (), connectors: Iterable[str] = ()
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.routed_classes = frozenset(routed_classes)
        self.connectors = tuple(sorted(set(connectors)))
        # Read by the view just before each scrape; None when the database could not be asked.
        self.snapshot: QueueSnapshot | None = QueueSnapshot()
        # Set by the lifecycle once the revocation checker exists: seconds since each cached
        # certificate-status answer was obtained.
        self.certificate_status_ages: Callable[[], list[float]] = list
        # Set by the app: each connector's queue head wait and paced PollInterval (routing/pacing).
        self.queue_waits: Callable[[], dict[str, tuple[float, int]]] = dict
        self._titles: set[str] = set()
        r = self.registry
        self.http_requests = Counter(
            "gateway_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "gateway_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method",
            ["route", "method"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.dsp_messages = Counter(
            "gateway_dsp_messages",
            "GovTalk envelopes parsed on /submission and /poll, by Class, Qualifier and Function",
            ["class", "qualifier", "function"],
            registry=r,
        )
        self.dsp_refusals = Counter(
            "gateway_dsp_refusals",
            "GovTalk error replies given by the hub itself, by error number",
            ["number"],
            registry=r,
        )
        self.auth_refusals = Counter(
            "gateway_auth_refusals",
            "Authentication refusals on the DSP, by GovTalk error number and reason",
            ["number", "reason"],
            registry=r,
        )
        self.api_refusals = Counter(
            "gateway_api_refusals",
            "problem+json refusals (the api.refused audit event), by status and title",
            ["status", "title"],
            registry=r,
        )
        self.connector_duration = Histogram(
            "gateway_connector_duration_seconds",
            "Connector calls by the dispatcher, by connector and outcome "
            "(answered: an Outcome came back; timeout: the route deadline passed; error: raised)",
            ["connector", "outcome"],
            buckets=CONNECTOR_BUCKETS,
            registry=r,
        )
        self.scrape_collector = _ScrapeCollector(self)
        r.register(self.scrape_collector)

    # -- recording ---------------------------------------------------------------------------

    def http_request(self, route: str, method: str, status: int, seconds: float) -> None:
        method = method if method in HTTP_METHODS else OTHER
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_duration.labels(route, method).observe(seconds)

    def dsp_message(self, message: MessageDetails) -> None:
        base = message.class_.removesuffix(TIL_SUFFIX)
        class_ = message.class_ if base in self.routed_classes else UNROUTED
        qualifier = message.qualifier if message.qualifier in QUALIFIERS else OTHER
        function = message.function or Function.SUBMIT.value
        self.dsp_messages.labels(
            class_, qualifier, function if function in FUNCTIONS else OTHER
        ).inc()

    def dsp_refused(self, number: int, text: str) -> None:
        self.dsp_refusals.labels(str(number)).inc()
        if number in AUTH_NUMBERS:
            self.auth_refusals.labels(str(number), auth_reason(number, text)).inc()

    def api_refused(self, status: int, title: str) -> None:
        if title not in self._titles:
            if len(self._titles) >= MAX_TITLES:
                title = OTHER
            else:
                self._titles.add(title)
        self.api_refusals.labels(str(status), title).inc()

    def connector_latency(self, connector: str, outcome: str, seconds: float) -> None:
        self.connector_duration.labels(connector, outcome).observe(seconds)

    def audited(self, event: str, fields: dict[str, Any]) -> None:
        """Count the refusals the audit trail records (`dsp.refused`, `api.refused`)."""
        if event == "dsp.refused" and isinstance(fields.get("number"), int):
            self.dsp_refused(fields["number"], str(fields.get("text") or ""))
        elif event == "api.refused" and isinstance(fields.get("status"), int):
            self.api_refused(fields["status"], str(fields.get("title") or ""))


MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def scrape_registry(hub: HubMetrics) -> CollectorRegistry:
    """What a scrape reads: this hub's registry, or, with workers, every worker's counters and
    histograms added up, beside the values read at scrape time (the same database for all)."""
    if not os.environ.get(MULTIPROCESS_ENV):
        return hub.registry
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(hub.scrape_collector)
    return registry
