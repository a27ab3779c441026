"""What every workflow shares, importable inside Temporal's sandbox (no I/O, no client)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.common import RetryPolicy


def activity_options(**overrides: Any) -> dict[str, Any]:
    """The one set of activity options: 30 s an attempt, retried from 200 ms backing off to 10 s.
    Keyword arguments override it for one call."""
    return {
        "start_to_close_timeout": timedelta(seconds=30),
        "retry_policy": RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10)),
        **overrides,
    }
