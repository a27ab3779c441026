"""The Kafka hop in the trace (ADR 18): the consumer handles an event in a span whose parent is the
span that published it, and what the handler publishes is that span's child."""

from __future__ import annotations

from datetime import datetime, timezone

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from concerto_contracts import Envelope
from concerto_messaging import tracing


def test_a_consumed_event_continues_its_publishers_trace_in_a_consumer_span(monkeypatch):
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    with provider.get_tracer("test").start_as_current_span("activity that published") as publisher:
        traceparent = tracing.current_traceparent()

    class OrderConfirmed:
        key = "ord-1"

    envelope = Envelope(id="evt-1", type="concerto.order.OrderConfirmed.v1", source="/concerto/order", time=datetime.now(timezone.utc),
                        correlation_id="corr-1", causation_id=None, traceparent=traceparent, event=OrderConfirmed())
    with tracing.consuming(envelope, "payment-service"):
        published_with = tracing.current_traceparent()
        consumer = trace.get_current_span().get_span_context()

    (span,) = [s for s in spans.get_finished_spans() if s.name == "consume OrderConfirmed"]
    assert span.kind == trace.SpanKind.CONSUMER
    assert span.parent.span_id == publisher.get_span_context().span_id
    assert span.context.trace_id == publisher.get_span_context().trace_id
    assert span.attributes["messaging.consumer.group.name"] == "payment-service"
    assert published_with.split("-")[1:3] == [format(consumer.trace_id, "032x"), format(consumer.span_id, "016x")]
