"""Prometheus metrics at /metrics: the realtime path, the HTTP API and the database pool.

Each Daphne process keeps its own counters; Prometheus scrapes every replica
and the dashboard sums them. The realtime code reports through the small
functions here, one call a site, so it never deals with label objects.

Labels only take values from short fixed sets (frame types, error codes, URL
patterns), never from ids or client text, so the number of series stays bounded.

/metrics is open with DEBUG on. In production it answers only a request with
`Authorization: Bearer $METRICS_TOKEN` or from an address in
`METRICS_ALLOWED_NETWORKS`; anything else gets 403.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from core.logs import route_of

METRICS_PATH = "/metrics"

# Every counter would get a `_created` twin series: noise for dashboards.
disable_created_metrics()

# --- WebSocket ------------------------------------------------------------------------------------

OPEN_SOCKETS = Gauge("chat_websocket_connections", "WebSocket connections open on this process.")
HANDSHAKES_REFUSED = Counter(
    "chat_websocket_handshakes_refused_total", "WebSocket handshakes refused, by reason.", ["reason"]
)
FRAMES_RECEIVED = Counter(
    "chat_websocket_frames_received_total",
    "Frames received from clients, by frame type ('other' if unknown).",
    ["type"],
)
FRAMES_SENT = Counter("chat_websocket_frames_sent_total", "Frames written to clients, by frame type.", ["type"])
FRAMES_REFUSED = Counter(
    "chat_websocket_frames_refused_total",
    "Client frames refused, by error code (rate_limited: over the per-socket rate).",
    ["code"],
)
RESUMES = Counter(
    "chat_websocket_resumes_total",
    "Connections that asked to resume from a cursor, by outcome (replayed, or resync when it was too old).",
    ["outcome"],
)
REPLAYED_FRAMES = Counter("chat_websocket_replayed_frames_total", "Frames replayed from the event record on resume.")
SOCKETS_DROPPED = Counter(
    "chat_websocket_dropped_total", "Sockets closed (4009) for falling too far behind, to resume later."
)
DELIVERY_LATENCY = Histogram(
    "chat_delivery_latency_seconds",
    "From an event's insert (just before its commit) to its frames being written to a process's sockets.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

# --- Events and the channel layer -------------------------------------------------------------------

EVENTS = Counter(
    "chat_events_total", "Committed events, by type, counted by the process that committed them.", ["type"]
)
MESSAGES_POSTED = Counter("chat_messages_posted_total", "Messages posted (committed message.new events).")
CHANNEL_LAYER_ERRORS = Counter(
    "chat_channel_layer_errors_total", "Channel-layer operations that failed, by operation.", ["operation"]
)
CHANNEL_LAYER_DROPPED = Counter(
    "chat_channel_layer_dropped_total",
    "Group messages the core channel layer dropped because a receiving process's channel was full"
    " (CHANNEL_CAPACITY), counted by the sending process, by group kind (doorbell, room, user).",
    ["group"],
)
EVENTS_FOUND_BY_POLL = Counter(
    "chat_events_found_by_poll_total",
    "Events the event pump delivered from its periodic poll, no doorbell having woken it:"
    " their doorbells were lost (Redis away, an expired group) or late.",
)

# --- HTTP ---------------------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "chat_http_requests_total",
    "HTTP requests answered, by method, URL pattern and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "chat_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and URL pattern.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Known label values start at 0, so rate() sees the first increment and panels show 0, not "no data".
for _reason in ("origin", "unauthenticated"):
    HANDSHAKES_REFUSED.labels(_reason)
for _code in (
    "bad_request",
    "unknown_type",
    "not_found",
    "forbidden",
    "invalid",
    "rate_limited",
    "server_error",
    "too_big",
):
    FRAMES_REFUSED.labels(_code)
for _outcome in ("replayed", "resync"):
    RESUMES.labels(_outcome)
for _operation in ("doorbell_send", "doorbell_receive", "group_add", "group_discard"):
    CHANNEL_LAYER_ERRORS.labels(_operation)
for _group in ("doorbell", "room", "user", "other"):
    CHANNEL_LAYER_DROPPED.labels(_group)
for _type in ("message.send", "read", "typing", "ping", "other"):
    FRAMES_RECEIVED.labels(_type)


# --- What the realtime code calls ----------------------------------------------------------------------


def socket_opened() -> None:
    OPEN_SOCKETS.inc()


def socket_closed() -> None:
    OPEN_SOCKETS.dec()


def handshake_refused(reason: str) -> None:
    HANDSHAKES_REFUSED.labels(reason).inc()


# The per-delivery path looks a frame type's counter up here: half the cost of `.labels()`.
_received_by_type: dict[str, Any] = {}
_sent_by_type: dict[str, Any] = {}


def _child(cache: dict[str, Any], metric: Counter, label: str) -> Any:
    child = cache.get(label)
    if child is None:
        child = cache[label] = metric.labels(label)
    return child


def frame_received(frame_type: str) -> None:
    _child(_received_by_type, FRAMES_RECEIVED, frame_type).inc()


def frame_sent(frame_type: str) -> None:
    _child(_sent_by_type, FRAMES_SENT, frame_type).inc()


def frames_sent(frame_type: str, count: int) -> None:
    _child(_sent_by_type, FRAMES_SENT, frame_type).inc(count)


def event_frames_sent(frame_type: str, count: int, created_at: datetime | None) -> None:
    """Count one event's live frames written to sockets, and (given `created_at`) how long after its insert."""
    _child(_sent_by_type, FRAMES_SENT, frame_type).inc(count)
    if created_at is not None:
        # Clocks of two replicas may differ by a little: never observe a negative latency.
        DELIVERY_LATENCY.observe(max(0.0, time.time() - created_at.timestamp()))


def frame_refused(code: str) -> None:
    FRAMES_REFUSED.labels(code).inc()


def resumed(outcome: str) -> None:
    RESUMES.labels(outcome).inc()


def frame_replayed() -> None:
    REPLAYED_FRAMES.inc()


def socket_dropped() -> None:
    SOCKETS_DROPPED.inc()


def channel_layer_error(operation: str) -> None:
    CHANNEL_LAYER_ERRORS.labels(operation).inc()


def events_found_by_poll(count: int) -> None:
    EVENTS_FOUND_BY_POLL.inc(count)


# channels_redis reports group_send drops only as this INFO line of its own logger.
_OVER_CAPACITY_LINE = "%s of %s channels over capacity in group %s"


def _group_kind(group: object) -> str:
    name = str(group)
    if name == "events.doorbell":
        return "doorbell"
    kind = name.partition(".")[0]
    return kind if kind in ("room", "user") else "other"


class ChannelLayerDropCounter(logging.Filter):
    """Count the channel layer's "over capacity" reports; let records through at `passes` and above.

    The channels_redis logger is set to INFO so the report always happens;
    `passes` is the level it logged at before, so its output stays as configured.
    """

    def __init__(self, passes: int) -> None:
        super().__init__()
        self.passes = passes

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.msg == _OVER_CAPACITY_LINE and isinstance(args, tuple) and len(args) == 3:
            dropped, _members, group = args
            if isinstance(dropped, int) and dropped > 0:
                CHANNEL_LAYER_DROPPED.labels(_group_kind(group)).inc(dropped)
        return record.levelno >= self.passes


def _count_channel_layer_drops() -> None:
    channel_logger = logging.getLogger("channels_redis.core")
    if any(isinstance(existing, ChannelLayerDropCounter) for existing in channel_logger.filters):
        return
    channel_logger.addFilter(ChannelLayerDropCounter(channel_logger.getEffectiveLevel()))
    if channel_logger.getEffectiveLevel() > logging.INFO:
        channel_logger.setLevel(logging.INFO)


def event_committed(event_type: str) -> None:
    """Count a committed event of `event_type` (the event record's app reports each)."""
    EVENTS.labels(event_type).inc()
    if event_type == "message.new":
        MESSAGES_POSTED.inc()


def events_expected(event_types: Iterable[str]) -> None:
    """Create every event type's series at zero, so dashboards see them before the first event."""
    for event_type in event_types:
        EVENTS.labels(event_type)


def install() -> None:
    """Count every message the channel layer drops, from now on."""
    _count_channel_layer_drops()


# --- The database pool ---------------------------------------------------------------------------------


class DatabasePoolCollector(Collector):
    """Read psycopg's pool statistics at scrape time, for each PostgreSQL alias with a pool.

    On SQLite, or before the pool exists, the families are there without samples.
    """

    def describe(self) -> Iterable[Metric]:
        return list(self._families().values())

    def collect(self) -> Iterable[Metric]:
        families = self._families()
        for alias, stats in _pool_stats():
            in_use = stats.get("pool_size", 0) - stats.get("pool_available", 0)
            families["size"].add_metric([alias, "in_use"], in_use)
            families["size"].add_metric([alias, "idle"], stats.get("pool_available", 0))
            families["max"].add_metric([alias], stats.get("pool_max", 0))
            families["min"].add_metric([alias], stats.get("pool_min", 0))
            families["waiting"].add_metric([alias], stats.get("requests_waiting", 0))
            families["requests"].add_metric([alias], stats.get("requests_num", 0))
            families["queued"].add_metric([alias], stats.get("requests_queued", 0))
            families["wait"].add_metric([alias], stats.get("requests_wait_ms", 0) / 1000)
            families["timeouts"].add_metric([alias], stats.get("requests_errors", 0))
            families["connection_errors"].add_metric([alias], stats.get("connections_errors", 0))
            families["lost"].add_metric([alias], stats.get("connections_lost", 0))
        return list(families.values())

    def _families(self) -> dict[str, GaugeMetricFamily | CounterMetricFamily]:
        alias = ["alias"]
        return {
            "size": GaugeMetricFamily(
                "chat_db_pool_connections", "Pooled database connections, by state.", labels=[*alias, "state"]
            ),
            "max": GaugeMetricFamily("chat_db_pool_max_connections", "The pool's upper size.", labels=alias),
            "min": GaugeMetricFamily("chat_db_pool_min_connections", "The pool's lower size.", labels=alias),
            "waiting": GaugeMetricFamily(
                "chat_db_pool_requests_waiting", "Callers waiting for a connection right now.", labels=alias
            ),
            "requests": CounterMetricFamily(
                "chat_db_pool_requests_total", "Connections handed out by the pool.", labels=alias
            ),
            "queued": CounterMetricFamily(
                "chat_db_pool_requests_queued_total", "Requests that had to wait for a connection.", labels=alias
            ),
            "wait": CounterMetricFamily(
                "chat_db_pool_wait_seconds_total", "Time callers spent waiting for a connection.", labels=alias
            ),
            "timeouts": CounterMetricFamily(
                "chat_db_pool_request_errors_total",
                "Requests that got no connection (timed out, or the pool was closed).",
                labels=alias,
            ),
            "connection_errors": CounterMetricFamily(
                "chat_db_pool_connection_errors_total", "Failed attempts to open a new connection.", labels=alias
            ),
            "lost": CounterMetricFamily(
                "chat_db_pool_connections_lost_total", "Connections found broken and thrown away.", labels=alias
            ),
        }


def _pool_stats() -> Iterator[tuple[str, dict[str, int]]]:
    """Yield (alias, stats) for each pool Django's PostgreSQL backend has opened, creating none."""
    backend = sys.modules.get("django.db.backends.postgresql.base")
    if backend is None:
        return  # PostgreSQL is not in use in this process
    # Django keeps one psycopg pool per alias in this class attribute.
    pools = getattr(backend.DatabaseWrapper, "_connection_pools", {})
    for alias, pool in list(pools.items()):
        yield alias, pool.get_stats()


REGISTRY.register(DatabasePoolCollector())


# --- The endpoint --------------------------------------------------------------------------------------


@functools.cache
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def scrape_allowed(request: HttpRequest) -> bool:
    """Whether this request may read /metrics: DEBUG, the bearer token, or an allowed address."""
    return scrape_allowed_for(request.META)


def scrape_allowed_for(meta: Mapping[str, Any]) -> bool:
    """`scrape_allowed` for a request's META or a WSGI environ (the job worker's own metrics listener)."""
    if settings.DEBUG:
        return True
    token: str = settings.METRICS_TOKEN
    kind, _, credential = str(meta.get("HTTP_AUTHORIZATION", "")).partition(" ")
    if token and kind.lower() == "bearer" and hmac.compare_digest(credential.strip().encode(), token.encode()):
        return True
    networks = _networks(tuple(settings.METRICS_ALLOWED_NETWORKS))
    try:
        address = ipaddress.ip_address(str(meta.get("REMOTE_ADDR", "")))
    except ValueError:
        return False
    return any(address in network for network in networks)


def metrics_response(request: HttpRequest) -> HttpResponse:
    """Return the Prometheus text exposition of this process's metrics, or 403."""
    if not scrape_allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_PLAIN_0_0_4)


class MetricsMiddleware:
    """Answer /metrics, and count and time every other request by method, URL pattern and status.

    /metrics is answered before any other middleware: a scraper addresses
    each replica by its IP, which ALLOWED_HOSTS cannot list, and the reply
    builds no URL from the Host header. It has its own access check.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.path_info == METRICS_PATH:
            return metrics_response(request)
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in _METHODS else "other"
        route = route_of(request)
        if route == "<unmatched>" and request.path_info.startswith(settings.STATIC_URL):
            route = "<static>"
        HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
        HTTP_DURATION.labels(method, route).observe(time.perf_counter() - started)
        return response
