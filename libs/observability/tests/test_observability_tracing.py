"""Where spans go, by environment (ADR 18), and what reaches a Zipkin collector: its JSON (v2),
in batches, each span under its service's name."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from concerto_observability.tracing import chosen_exporter, span_exporter, tracer_provider


@pytest.mark.parametrize(
    "environ, chosen",
    [
        ({}, "none"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318"}, "otlp"),  # compose, as before
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "zipkin_json"}, "zipkin_json"),  # the local stack
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "none"),
    ],
)
def test_the_environment_chooses_where_spans_go(environ, chosen):
    assert chosen_exporter(environ) == chosen


def test_an_exporter_we_do_not_ship_is_refused_at_start():
    with pytest.raises(ValueError, match="zipkin_json, otlp, none"):
        chosen_exporter({"OTEL_TRACES_EXPORTER": "jaeger"})


def test_each_choice_gets_its_exporter_and_none_records_nothing():
    assert isinstance(span_exporter("zipkin_json"), ZipkinExporter)
    assert isinstance(span_exporter("otlp"), OTLPSpanExporter)
    assert span_exporter("none") is None
    # Nothing to export to: spans are not recorded, yet carry ids (ADR 8).
    with tracer_provider("order", None).get_tracer("test").start_as_current_span("call") as span:
        assert not span.is_recording() and span.get_span_context().is_valid


def test_spans_reach_a_zipkin_collector_as_its_json_in_batches(monkeypatch):
    received: list[list[dict]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_ZIPKIN_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}/api/v2/spans")
        provider = tracer_provider("payment", span_exporter("zipkin_json"))
        processors = provider._active_span_processor._span_processors
        assert [type(p) for p in processors] == [BatchSpanProcessor], "a span must never be sent on the call's own time"
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("consume OrderConfirmed") as parent:
            with tracer.start_as_current_span("charge"):
                pass
        provider.force_flush()
        provider.shutdown()
    finally:
        server.shutdown()
    spans = [span for batch in received for span in batch]
    assert {span["name"] for span in spans} == {"consume OrderConfirmed", "charge"}
    assert {span["localEndpoint"]["serviceName"] for span in spans} == {"concerto-payment"}
    assert {span["traceId"] for span in spans} == {format(parent.get_span_context().trace_id, "032x")}
