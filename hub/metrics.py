"""The hub's Prometheus metrics: one registry per hub, fed by the typed events it publishes.

``HubMetrics`` owns a ``CollectorRegistry`` of its own (never the library's global one), so several hubs
in one process (tests, benchmarks) keep apart. It listens to the bus (hub/bus.py) and counts what the events
say: offers made, missed and accepted, sends and failures by provider code. What no event carries is counted
by the part that knows it, through one small hook each: the ingest's group sizes and commit time
(``Ingestor.on_group``), webhook outcomes per channel (webhooks/_common.py), refused template renders
(``template_render_refused``), media fetches (``media_fetches``, from the fetcher's ``AttachmentChanged``),
and HTTP latency (hub/api/observe.py). Gauges of what the database holds (waiting conversations and the longest wait per
queue, agents per presence, outbox rows per state), the outbox's retry count and the outgoing webhooks' attempts are
read when scraped (``HubMetrics.scrape``). The database's gauges live in a registry of their own: when the database
cannot be read, a scrape leaves them out (never a stale figure) and still reports the process's own counts, which
are what tells of the outage. Every name starts with ``channelhub_``; docs/operations.md lists them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from hub.events import (
    AttachmentChanged,
    ConversationUpdated,
    HubEvent,
    MessageDelivery,
    Offer,
    OfferWithdrawn,
    unwrapped,
)
from hub.model import DeliveryState
from hub.store import Store
from hub.store.admin import queue_figures
from hub.store.gauges import presence_counts
from hub.store.outbox import outbox_counts

__all__ = ["CONTENT_TYPE", "HubMetrics", "template_render_refused"]

logger = logging.getLogger(__name__)

# prometheus-client adds a `_created` series (when the sample was made) beside every counter and histogram: it
# doubles the series a scrape stores, and nothing reads it (the dashboard in deploy/grafana neither)
disable_created_metrics()  # type: ignore[no-untyped-call]  # the library leaves it unannotated

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_GROUP_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_COMMIT_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_HTTP_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_PRESENCES = ("ready", "paused", "offline")
_OUTBOX_STATES = ("pending", "sending", "done", "failed")
_WITHDRAWN = {"timeout": "missed", "rejected": "rejected"}  # an offer withdrawn for another reason: "withdrawn"


class _Counts(Protocol):
    """What the scrape-time collector reads of the outbox: its running counts (hub/outbox.py)."""

    retried: int


class _Deliveries(Protocol):
    """What the scrape-time collector reads of the outgoing webhooks' dispatcher: its attempts (hub/webhooks_out.py)."""

    delivered: int
    failed_attempts: int


class _Ignored(Protocol):
    """What the scrape-time collector reads of the ingestor: the inbound events it acknowledged without handling,
    counted by ``channel:kind`` (hub/ingest.py)."""

    @property
    def ignored_counts(self) -> Mapping[str, int]: ...


class _ProcessCounts(Collector):
    """Counters the hub's parts keep themselves, read when scraped (no second bookkeeping)."""

    def __init__(self) -> None:
        self.outbox: _Counts | None = None
        self.webhooks_out: _Deliveries | None = None
        self.ingestor: _Ignored | None = None

    def collect(self) -> Iterable[CounterMetricFamily]:
        retries = CounterMetricFamily(
            "channelhub_send_retries", "Transient send failures that were scheduled for another attempt."
        )
        retries.add_metric([], self.outbox.retried if self.outbox is not None else 0)
        yield retries
        attempts = CounterMetricFamily(
            "channelhub_webhooks_out_attempts",
            "Outgoing webhook delivery attempts, by result (delivered, failed).",
            labels=["result"],
        )
        dispatcher = self.webhooks_out
        attempts.add_metric(["delivered"], dispatcher.delivered if dispatcher is not None else 0)
        attempts.add_metric(["failed"], dispatcher.failed_attempts if dispatcher is not None else 0)
        yield attempts
        ignored = CounterMetricFamily(
            "channelhub_inbound_ignored",
            "Inbound events acknowledged without being handled, by channel and kind (e.g. whatsapp, group_message).",
            labels=["channel", "kind"],
        )
        for key, count in sorted(self.ingestor.ignored_counts.items()) if self.ingestor is not None else ():
            channel, _, kind = key.partition(":")
            ignored.add_metric([channel, kind], count)
        yield ignored


class HubMetrics:
    """Every metric of one hub; ``registry`` (the process's own) and ``database`` (the gauges read from the
    database when scraped) are what ``/metrics`` renders."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.database = CollectorRegistry(auto_describe=True)
        r, d = self.registry, self.database
        self.webhooks_received = Counter(
            "channelhub_webhooks_received", "Webhook deliveries received, per channel.", ["channel"], registry=r
        )
        self.webhooks_refused = Counter(
            "channelhub_webhooks_refused",
            "Webhook deliveries refused (bad signature, malformed, unknown account, too large, not stored).",
            ["channel", "code"],
            registry=r,
        )
        self.webhooks_duplicated = Counter(
            "channelhub_webhooks_duplicated",
            "Webhook deliveries that held only events stored before (a provider's redelivery).",
            ["channel"],
            registry=r,
        )
        self.ingest_group_size = Histogram(
            "channelhub_ingest_group_size",
            "Deliveries committed together in one ingest transaction.",
            buckets=_GROUP_SIZES,
            registry=r,
        )
        self.ingest_commit_seconds = Histogram(
            "channelhub_ingest_commit_seconds",
            "Time one ingest group's transaction took.",
            buckets=_COMMIT_SECONDS,
            registry=r,
        )
        self.offers = Counter(
            "channelhub_offers",
            "Offers to agents by outcome: made, accepted, missed (ran out), withdrawn, rejected.",
            ["outcome"],
            registry=r,
        )
        self.sends = Counter(
            "channelhub_sends", "Messages of ours by delivery outcome (sent, failed).", ["result"], registry=r
        )
        self.send_failures = Counter(
            "channelhub_send_failures",
            "Messages of ours that failed, by the provider's (or the policy's) code.",
            ["code"],
            registry=r,
        )
        self.media_fetches = Counter(
            "channelhub_media_fetches", "Media fetched from providers, by result.", ["result"], registry=r
        )
        self.template_renders_refused = Counter(
            "channelhub_template_renders_refused",
            "Template renders refused when sending, by the template error's code.",
            ["code"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "channelhub_http_request_duration_seconds",
            "HTTP request latency per route (the route's declared path) and method.",
            ["route", "method"],
            buckets=_HTTP_SECONDS,
            registry=r,
        )
        self.http_requests = Counter(
            "channelhub_http_requests",
            "HTTP requests per route, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.waiting = Gauge(
            "channelhub_conversations_waiting", "Conversations waiting in each queue.", ["queue"], registry=d
        )
        self.longest_wait = Gauge(
            "channelhub_longest_wait_seconds",
            "How long the longest-waiting conversation of each queue has waited.",
            ["queue"],
            registry=d,
        )
        self.agents = Gauge("channelhub_agents", "Active agents per presence state.", ["presence"], registry=d)
        self.outbox_rows = Gauge("channelhub_outbox_rows", "Outbox rows per state.", ["state"], registry=d)
        self.outbox_depth = Gauge(
            "channelhub_outbox_depth", "Messages queued to send and not sent yet (pending or sending).", registry=d
        )
        self._counts = _ProcessCounts()
        r.register(self._counts)
        # the process's CPU, memory and open files (Linux): one event loop near a whole core of CPU is the sign to
        # add a process (docs/scaling.md)
        ProcessCollector(namespace="channelhub", registry=r)
        for presence in _PRESENCES:
            self.agents.labels(presence=presence).set(0)
        for state in _OUTBOX_STATES:
            self.outbox_rows.labels(state=state).set(0)
        for outcome in ("made", "accepted", "missed", "withdrawn", "rejected"):
            self.offers.labels(outcome=outcome)
        for result in ("sent", "failed"):
            self.sends.labels(result=result)

    # ---------------------------------------------------------------- wiring

    def watch_outbox(self, outbox: _Counts) -> None:
        """Read the outbox's own retry count when scraped."""
        self._counts.outbox = outbox

    def watch_ingestor(self, ingestor: _Ignored) -> None:
        """Read the ingestor's own counts of the inbound events it acknowledged without handling when scraped."""
        self._counts.ingestor = ingestor

    def watch_webhooks_out(self, dispatcher: _Deliveries) -> None:
        """Read the outgoing webhooks' dispatcher's own attempt counts when scraped."""
        self._counts.webhooks_out = dispatcher

    def observe_ingest_group(self, deliveries: int, seconds: float) -> None:
        """``Ingestor.on_group``: one group committed."""
        self.ingest_group_size.observe(deliveries)
        self.ingest_commit_seconds.observe(seconds)

    def webhook_received(self, channel: str, *, duplicate: bool) -> None:
        """A delivery was stored (``duplicate``: it held nothing new)."""
        self.webhooks_received.labels(channel=channel).inc()
        if duplicate:
            self.webhooks_duplicated.labels(channel=channel).inc()

    def webhook_refused(self, channel: str, code: str) -> None:
        """A delivery was answered with an error (or kept as a dead letter)."""
        self.webhooks_received.labels(channel=channel).inc()
        self.webhooks_refused.labels(channel=channel, code=code).inc()

    def observe_http(self, route: str, method: str, status: int, seconds: float | None) -> None:
        """One answered request; ``seconds`` None: not timed (a WebSocket session)."""
        if seconds is not None:
            self.http_seconds.labels(route=route, method=method).observe(seconds)
        self.http_requests.labels(route=route, method=method, status=str(status)).inc()

    # ---------------------------------------------------------------- events

    def on_event(self, event: HubEvent) -> None:
        """A bus listener (``EventBus.listen``): count what the event says; never raises into the publisher."""
        match unwrapped(event):
            case Offer():
                self.offers.labels(outcome="made").inc()
            case OfferWithdrawn(reason=reason):
                self.offers.labels(outcome=_WITHDRAWN.get(reason, "withdrawn")).inc()
            case ConversationUpdated(action="accepted"):
                self.offers.labels(outcome="accepted").inc()
            case MessageDelivery(state=state) if state == DeliveryState.SENT.value:
                self.sends.labels(result="sent").inc()
            case MessageDelivery(state=state, error_code=code) if state == DeliveryState.FAILED.value:
                self.sends.labels(result="failed").inc()
                self.send_failures.labels(code=code or "unknown").inc()
            case AttachmentChanged(attachment=attachment) if attachment.get("state") in ("stored", "failed"):
                self.media_fetches.labels(result=str(attachment["state"])).inc()  # the media fetcher's outcomes
            case _:
                pass

    # ---------------------------------------------------------------- scraping

    async def scrape(self, store: Store, now: datetime) -> bytes:
        """The text exposition, after reading the gauges of what the database holds now; without them when the
        database cannot be read (logged), so an outage does not hide the process's own counts."""
        try:
            figures = await queue_figures(store, now)
            presences = await presence_counts(store)
            rows = await outbox_counts(store)
        except (SQLAlchemyError, OSError) as exc:
            logger.warning("metrics: the database's gauges are left out of this scrape (%s)", exc)
            return generate_latest(self.registry)
        self.waiting.clear()
        self.longest_wait.clear()
        for queue_id, queue in sorted(figures.items()):
            self.waiting.labels(queue=queue_id).set(queue.waiting)
            self.longest_wait.labels(queue=queue_id).set(queue.longest_wait_seconds or 0)
        for presence in sorted(set(_PRESENCES) | set(presences)):
            self.agents.labels(presence=presence).set(presences.get(presence, 0))
        for state in sorted(set(_OUTBOX_STATES) | set(rows)):
            self.outbox_rows.labels(state=state).set(rows.get(state, 0))
        self.outbox_depth.set(rows.get("pending", 0) + rows.get("sending", 0))
        return generate_latest(self.registry) + generate_latest(self.database)


def template_render_refused(parts: Any, code: str) -> None:
    """Count a refused template render on ``parts``' metrics, when the hub running the use case has them
    (the CLI's parts have none)."""
    metrics = getattr(parts, "metrics", None)
    if isinstance(metrics, HubMetrics):
        metrics.template_renders_refused.labels(code=code).inc()
