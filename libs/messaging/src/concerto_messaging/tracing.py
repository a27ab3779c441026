"""W3C trace context across the broker: the producer stamps `traceparent` on the event,
the consumer continues the trace from it, in a span of its own (ADR 18)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import context, propagate, trace

from concerto_contracts import Envelope

_tracer = trace.get_tracer("concerto_messaging")


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def context_from(traceparent: str | None) -> context.Context:
    return propagate.extract({"traceparent": traceparent} if traceparent else {})


@contextmanager
def consuming(envelope: Envelope, group: str) -> Iterator[None]:
    """Handle `envelope` in a consumer span whose parent is the span that published it: the Kafka
    hop is a parent id, like an HTTP call's, so the order's trace stays one tree. Events the
    handler publishes, calls it makes and workflows it starts or signals are the span's children."""
    with _tracer.start_as_current_span(
        f"consume {type(envelope.event).__name__}",
        context=context_from(envelope.traceparent),
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.consumer.group.name": group,
            "messaging.message.id": envelope.id,
            "cloudevents.event_type": envelope.type,
            "cloudevents.event_source": envelope.source,
            "messaging.kafka.message.key": envelope.key,
        },
    ):
        yield
