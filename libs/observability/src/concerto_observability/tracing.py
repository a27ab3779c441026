"""Distributed tracing with OpenTelemetry: HTTP in and out, Temporal workflows and activities,
and Kafka (through the `traceparent` CloudEvents extension). Where spans go is the environment's
choice (ADR 18), by OpenTelemetry's own names:

- `OTEL_TRACES_EXPORTER=zipkin_json`: to Zipkin's collector at `OTEL_EXPORTER_ZIPKIN_ENDPOINT`
  (the local stack's trace viewer, infra/devstack/stack.py);
- `OTEL_TRACES_EXPORTER=otlp`, or no choice but `OTEL_EXPORTER_OTLP_ENDPOINT` set: over OTLP/HTTP
  (the compose file points it at the collector, which hands them to Jaeger);
- `OTEL_TRACES_EXPORTER=none`, or nothing set: nowhere. Then spans are not recorded (ADR 8), but
  still carry their ids, so trace ids flow through events and logs.

Spans leave through a BatchSpanProcessor: a background thread sends them in batches, never the
call or event that made them."""

from __future__ import annotations

import os
from collections.abc import Mapping

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

EXPORTERS = ("zipkin_json", "otlp", "none")

_configured = False


def chosen_exporter(environ: Mapping[str, str] = os.environ) -> str:
    """Which of EXPORTERS the environment asks for (see the module's docstring)."""
    chosen = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not chosen:
        return "otlp" if environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") else "none"
    if chosen not in EXPORTERS:
        raise ValueError(f"OTEL_TRACES_EXPORTER={chosen!r}: Concerto exports spans with one of {', '.join(EXPORTERS)}")
    return chosen


def span_exporter(chosen: str) -> SpanExporter | None:
    """The exporter for `chosen`, configured by its own environment variables; None for none."""
    if chosen == "zipkin_json":
        from opentelemetry.exporter.zipkin.json import ZipkinExporter

        return ZipkinExporter()  # OTEL_EXPORTER_ZIPKIN_ENDPOINT, else Zipkin's usual localhost:9411
    if chosen == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    return None


def tracer_provider(service: str, exporter: SpanExporter | None) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"concerto-{service}"}),
        # With nowhere to send them, spans are not recorded (that costs CPU on every call
        # and event): each still gets its ids, so trace ids flow through events and logs.
        sampler=ALWAYS_ON if exporter is not None else ALWAYS_OFF,
    )
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def configure_tracing(service: str, app: FastAPI) -> None:
    global _configured
    if not _configured:
        trace.set_tracer_provider(tracer_provider(service, span_exporter(chosen_exporter())))
        HTTPXClientInstrumentor().instrument()
        _configured = True
    # Probes and scrapes are no one's order: they would only bury the orders' traces.
    FastAPIInstrumentor.instrument_app(app, excluded_urls="health/.*,metrics")
