"""Structured logs that carry the correlation id, so one order can be followed across services."""

from concerto_observability.context import bind, correlation_id, new_correlation_id
from concerto_observability.logs import configure_logging
from concerto_observability.tracing import configure_tracing

__all__ = ["bind", "configure_logging", "configure_tracing", "correlation_id", "new_correlation_id"]
