"""A service's long-running loops (the outbox relay, housekeeping, the consumer, a service's own
background loops) never end silently: each runs under a supervisor that starts it again when it
fails, after a pause that doubles (1, 2, 4 ... 30 s), and says so in the readiness check
(`problem()`) and in two metrics (restarts counted, loops failing now).

A loop is given as a factory, a callable that returns a fresh run of it (a coroutine can be
awaited only once). A loop should run until cancelled, so one that returns is restarted too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from concerto_observability.metrics import counter, gauge

log = logging.getLogger(__name__)

# A fresh run of a loop: called again for each restart.
Loop = Callable[[], Awaitable[None]]

# The pause before a restart: FIRST_PAUSE, doubled for each failure in a row, at most LONGEST_PAUSE.
FIRST_PAUSE, LONGEST_PAUSE = 1.0, 30.0


class SupervisedLoop:
    """Runs `loop` until cancelled, starting it again whenever it fails or ends. A run that
    lasts LONGEST_PAUSE counts as healthy: the next failure pauses FIRST_PAUSE again."""

    def __init__(self, name: str, loop: Loop, *, first_pause: float = FIRST_PAUSE, longest_pause: float = LONGEST_PAUSE) -> None:
        self.name = name
        self._loop = loop
        self._first_pause, self._longest_pause = first_pause, longest_pause
        self.restarts, self._failures_in_a_row = 0, 0
        self._failure: str | None = None  # why the last run ended, until the next one has settled
        self._pause = 0.0
        self._next_run_at = 0.0  # monotonic
        # Declared with the first supervised loop; each loop's series exist (at 0) from the start.
        self._restarts = counter("concerto_background_restarts", "Times a service's background loop failed (or ended) and was started again", ["loop"])
        self._failing = gauge("concerto_background_loops_failing", "1 while a background loop waits to start again after a failure, or has just started again; else 0", ["loop"])
        self._restarts.labels(name)
        self._failing.labels(name).set(0)

    def problem(self) -> str | None:
        """What the readiness check should report: the loop failed and waits to start again, or
        started again too recently to count as running (as long as it paused); None when well."""
        if self._failure is None:
            return None
        now = time.monotonic()
        if now < self._next_run_at:
            return f"{self.name} failed ({self._failure}) and starts again in {self._next_run_at - now:.0f} s (restart {self.restarts})"
        if now < self._next_run_at + self._pause:
            return f"{self.name} started again after failing ({self._failure}); restart {self.restarts}"
        return None

    async def measure(self) -> None:
        """For /metrics: whether the loop is failing now."""
        self._failing.labels(self.name).set(1 if self.problem() else 0)

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self._loop()
                error = "ended, though it should run until stopped"
            except Exception as exc:  # whatever stops the loop, it must not stay stopped
                error = f"{type(exc).__name__}: {exc}"
                log.exception("%s failed", self.name)
            if time.monotonic() - started >= self._longest_pause:
                self._failures_in_a_row = 0  # it had been running well
            self._failures_in_a_row += 1
            self._pause = min(self._first_pause * 2 ** (self._failures_in_a_row - 1), self._longest_pause)
            self._failure, self.restarts = error, self.restarts + 1
            self._next_run_at = time.monotonic() + self._pause
            self._restarts.labels(self.name).inc()
            self._failing.labels(self.name).set(1)
            log.error("%s stopped (%s); starting it again in %.0f s", self.name, error, self._pause)
            await asyncio.sleep(self._pause)
            log.warning("%s starting again (restart %s)", self.name, self.restarts)
