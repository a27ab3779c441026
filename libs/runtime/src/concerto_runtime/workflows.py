"""What every workflow shares, importable inside Temporal's sandbox (no I/O, no client)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

# Recorded in each workflow run that runs its database steps as local activities; runs that
# started before (their histories hold regular activities) keep doing so when they replay.
LOCAL_STEPS_PATCH = "database-steps-as-local-activities"


def activity_options(**overrides: Any) -> dict[str, Any]:
    """The one set of activity options: 30 s an attempt, retried from 200 ms backing off to 10 s.
    Keyword arguments override it for one call."""
    return {
        "start_to_close_timeout": timedelta(seconds=30),
        "retry_policy": RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10)),
        **overrides,
    }


async def run_step(activity: Callable, argument: Any) -> Any:
    """Run a short step against the service's own database, with the one set of options.

    It is a *local* activity: the worker runs it within the workflow task that asked for it and
    reports its result with that task, so a step costs no round trip through the Temporal
    server and no task of its own (ADR 8). Calls to anything outside the service (a payment
    gateway) stay regular activities: those may be slow, and their retries should show as such.
    """
    if workflow.patched(LOCAL_STEPS_PATCH):
        return await workflow.execute_local_activity_method(activity, argument, **activity_options())
    return await workflow.execute_activity_method(activity, argument, **activity_options())
