"""Distributed tracing with OpenTelemetry: HTTP in and out, Temporal workflows and activities,
and Kafka (through the `traceparent` CloudEvents extension). Spans are exported over OTLP when
OTEL_EXPORTER_OTLP_ENDPOINT is set (the compose file points it at the collector); without it
they are not recorded, but still carry their ids, so trace ids flow through events and logs."""

from __future__ import annotations

import os

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

_configured = False


def configure_tracing(service: str, app: FastAPI) -> None:
    global _configured
    if not _configured:
        exporting = bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
        provider = TracerProvider(
            resource=Resource.create({"service.name": f"concerto-{service}"}),
            # With nowhere to send them, spans are not recorded (that costs CPU on every call
            # and event): each still gets its ids, so trace ids flow through events and logs.
            sampler=ALWAYS_ON if exporting else ALWAYS_OFF,
        )
        if exporting:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        HTTPXClientInstrumentor().instrument()
        _configured = True
    FastAPIInstrumentor.instrument_app(app, excluded_urls="health/.*")
