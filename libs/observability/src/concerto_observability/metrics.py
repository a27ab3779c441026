"""Metrics in the Prometheus format, through prometheus-client (ADR 14).

Each process has one registry, served on `GET /metrics`: HTTP latency per route, the figures a
service counts where they happen (declared with `counter`, `gauge`, `histogram` below), and
figures read only when someone asks (`on_scrape`: a consumer's lag, the outbox backlog). The
catalogue of names is docs/metrics.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import cache

from fastapi import FastAPI, Request, Response
from opentelemetry import trace
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import choose_encoder
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator import metrics as http_metrics

log = logging.getLogger(__name__)

# No `_created` twin for every counter: Prometheus does not need it, and it doubles the series.
disable_created_metrics()

# Seconds: from a fast HTTP call to a saga that waits on a payment deadline.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

_declared: dict[str, Counter | Gauge | Histogram] = {}


def counter(name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
    return _declare(Counter, name, documentation, labels)


def gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
    return _declare(Gauge, name, documentation, labels)


def histogram(name: str, documentation: str, labels: Sequence[str] = (), buckets: Sequence[float] = DURATION_BUCKETS) -> Histogram:
    return _declare(Histogram, name, documentation, labels, buckets=buckets)


def _declare(kind, name: str, documentation: str, labels: Sequence[str], **options):
    # A metric is declared beside the code that counts it, and Temporal's sandbox may import
    # that module again: the same name gives the same metric, never a second registration.
    if name not in _declared:
        _declared[name] = kind(name, documentation, labels, **options)
    return _declared[name]


def trace_exemplar() -> dict[str, str] | None:
    """The current trace's id, for a histogram's exemplar: Grafana links the bucket to Jaeger."""
    context = trace.get_current_span().get_span_context()
    return {"trace_id": format(context.trace_id, "032x")} if context.is_valid else None


Refresh = Callable[[], Awaitable[None]]


def on_scrape(app: FastAPI, refresh: Refresh) -> None:
    """Run `refresh` before each scrape: for figures that cost a query, read only when asked."""
    app.state.metric_refreshers.append(refresh)


@cache
def _http_instrumentation():
    # Made once per process: every app in it (tests build many) feeds the same two metrics.
    return (
        http_metrics.requests(),  # http_requests_total{handler, method, status}
        http_metrics.latency(should_include_status=False, buckets=DURATION_BUCKETS[:10]),  # {handler, method}
    )


def install_metrics(app: FastAPI) -> None:
    """`GET /metrics` on the app, and the latency of every route by its template (never the
    raw path: an order id in a label would make one series per order)."""
    app.state.metric_refreshers = []
    instrumentator = Instrumentator(excluded_handlers=["/metrics", "/health/.*"], should_group_status_codes=True)
    instrumentator.add(*_http_instrumentation()).instrument(app)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        for refresh in app.state.metric_refreshers:
            try:
                await asyncio.wait_for(refresh(), timeout=2)
            except Exception:  # a figure that cannot be read now keeps its last value
                log.warning("a metric could not be refreshed", exc_info=True)
        # OpenMetrics when Prometheus asks for it: the format that carries exemplars.
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(REGISTRY), media_type=content_type)
