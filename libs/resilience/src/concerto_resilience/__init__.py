"""Resilience for calls to systems Concerto does not own: bounded retries with exponential
backoff and jitter (tenacity) and a circuit breaker per remote system (circuitbreaker)."""

from concerto_resilience.breaker import Breaker, BreakerOpen
from concerto_resilience.retries import retrying

__all__ = ["Breaker", "BreakerOpen", "retrying"]
