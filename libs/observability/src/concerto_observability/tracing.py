"""Distributed tracing with OpenTelemetry: HTTP in and out, Temporal workflows and activities,
and Kafka (through the `traceparent` CloudEvents extension). Spans are exported over OTLP when
OTEL_EXPORTER_OTLP_ENDPOINT is set (the compose file points it at the collector); without it
they are still created, so trace ids flow through events and logs."""

from __future__ import annotations

import os

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

_configured = False


def configure_tracing(service: str, app: FastAPI) -> None:
    global _configured
    if not _configured:
        provider = TracerProvider(resource=Resource.create({"service.name": f"concerto-{service}"}))
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        HTTPXClientInstrumentor().instrument()
        _configured = True
    FastAPIInstrumentor.instrument_app(app, excluded_urls="health/.*")
