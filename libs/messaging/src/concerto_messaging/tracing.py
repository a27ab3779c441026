"""W3C trace context across the broker: the producer stamps `traceparent` on the event,
the consumer continues the trace from it."""

from __future__ import annotations

from opentelemetry import context, propagate


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def context_from(traceparent: str | None) -> context.Context:
    return propagate.extract({"traceparent": traceparent} if traceparent else {})
