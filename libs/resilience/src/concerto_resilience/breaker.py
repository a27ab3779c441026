"""A circuit breaker per remote system, with its state and call counts on show.

Closed: calls go through. After `failure_threshold` failures in a row it opens: calls fail at
once (BreakerOpen) for `recovery_seconds`. Then it is half-open: the next call is a trial,
closing it on success and opening it again on failure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

from circuitbreaker import CircuitBreaker

T = TypeVar("T")


class BreakerOpen(Exception):
    def __init__(self, name: str, retry_in: float) -> None:
        super().__init__(f"{name} circuit is open; next trial in {retry_in:.1f}s")
        self.name = name


class Breaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        recovery_seconds: float,
        counts_as_failure: tuple[type[BaseException], ...],
    ) -> None:
        self.name = name
        self.calls: Counter[str] = Counter()
        self._counts_as_failure = counts_as_failure
        self._breaker = CircuitBreaker(
            name=name,
            failure_threshold=failure_threshold,
            recovery_timeout=recovery_seconds,
            expected_exception=counts_as_failure,  # anything else (a decline) leaves it alone
        )

    @property
    def state(self) -> str:
        return self._breaker.state  # "closed", "open" or "half_open"

    async def call(self, function: Callable[[], Awaitable[T]]) -> T:
        # The library's decorator makes this check; its call_async does not.
        if self._breaker.opened:
            self.calls["rejected"] += 1
            raise BreakerOpen(self.name, self._breaker.open_remaining)
        try:
            result = await self._breaker.call_async(function)
        except BaseException as exc:
            self.calls["failed" if isinstance(exc, self._counts_as_failure) else "succeeded"] += 1
            raise
        self.calls["succeeded"] += 1
        return result

    def snapshot(self) -> dict:
        return {
            "state": self.state,
            "consecutive_failures": self._breaker.failure_count,
            "retry_in_seconds": round(max(self._breaker.open_remaining, 0), 1) if self.state != "closed" else 0,
            "calls": dict(self.calls),
        }
