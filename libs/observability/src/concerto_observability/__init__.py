"""Structured logs that carry the correlation id, so one order can be followed across services."""

from concerto_observability.context import bind, correlation_id, new_correlation_id
from concerto_observability.logs import configure_logging

__all__ = ["bind", "configure_logging", "correlation_id", "new_correlation_id"]
