"""GET /metrics as every Concerto app serves it: latency per route template (never per raw
path), metrics declared once however often their module is imported, and exemplars carrying
the trace id in the OpenMetrics format."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from concerto_observability.metrics import counter, histogram, install_metrics, on_scrape, trace_exemplar


def _app() -> FastAPI:
    app = FastAPI()
    install_metrics(app)

    @app.get("/orders/{order_id}")
    async def order(order_id: str) -> dict:
        return {"order_id": order_id}

    return app


def test_latency_is_labelled_by_the_route_template_not_the_order_id():
    client = TestClient(_app())
    for order_id in ("ord-1", "ord-2", "ord-3"):
        client.get(f"/orders/{order_id}")
    page = client.get("/metrics").text
    assert 'http_request_duration_seconds_count{handler="/orders/{order_id}",method="GET"}' in page
    assert 'http_requests_total{handler="/orders/{order_id}",method="GET",status="2xx"}' in page
    assert "ord-1" not in page
    assert "_created" not in page  # no twin series per counter


def test_a_metric_declared_twice_is_the_same_metric():
    # Temporal's sandbox may import a module again: that must not register a second metric.
    first = counter("concerto_test_declared", "declared twice")
    assert counter("concerto_test_declared", "declared twice") is first


def test_figures_read_at_scrape_time_are_fresh():
    app = _app()
    waiting = histogram("concerto_test_refreshed_seconds", "set by a refresher")
    reads = []

    async def refresh() -> None:
        reads.append(1)
        waiting.observe(0.2)

    on_scrape(app, refresh)
    client = TestClient(app)
    client.get("/metrics")
    page = client.get("/metrics").text
    assert len(reads) == 2
    assert "concerto_test_refreshed_seconds_count 2.0" in page


def test_an_exemplar_carries_the_trace_id_in_openmetrics():
    app = _app()
    durations = histogram("concerto_test_saga_seconds", "with exemplars")
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("saga") as span:
        durations.observe(3.2, trace_exemplar())
        trace_id = format(span.get_span_context().trace_id, "032x")
    assert trace.get_current_span().get_span_context().is_valid is False
    assert trace_exemplar() is None  # outside a trace: no exemplar

    client = TestClient(app)
    openmetrics = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert f'# {{trace_id="{trace_id}"}} 3.2' in openmetrics.text
    assert "trace_id" not in client.get("/metrics").text  # the classic text format has no exemplars
