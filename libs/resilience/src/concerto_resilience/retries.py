"""Bounded retries with exponential backoff and full jitter, on the errors named only."""

from __future__ import annotations

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential


def retrying(
    *, attempts: int, on: tuple[type[BaseException], ...], first_wait: float = 0.1, max_wait: float = 1.0
) -> AsyncRetrying:
    """`async for attempt in retrying(attempts=3, on=(Unavailable,)): with attempt: ...`

    Anything not listed in `on` (a card decline, say) is raised at once, never retried."""
    return AsyncRetrying(
        stop=stop_after_attempt(attempts),
        # Full jitter: a random wait up to first_wait * 2^n (capped), so retries spread out.
        wait=wait_random_exponential(multiplier=first_wait, max=max_wait),
        retry=retry_if_exception_type(on),
        reraise=True,
    )
