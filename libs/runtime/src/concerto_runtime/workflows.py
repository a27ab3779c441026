"""What every workflow shares, importable inside Temporal's sandbox (no I/O, no client)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

# Every workflow.patched / workflow.deprecate_patch id in the workflows, with the day it came in
# (ADR 17): a patch is retired, its old branch deleted, by the first release after every run that
# could carry its marker has closed. Empty: the release of issue 19 retired the six there were.
# libs/runtime/tests/test_runtime_patches.py fails on an id in the code that is not listed here.
PATCHES: dict[str, str] = {}


class PermanentFailure(Exception):
    """Raised by a step when trying again cannot help: what it works on does not exist, or its
    input breaks a rule. The step fails at once and so does its workflow, visibly (the Temporal
    UI shows the error, the saga monitor the stuck saga), instead of retrying unseen forever."""


# Errors no retry can fix. Anything else (a database or a gateway away, a bug about to be fixed
# and deployed) is retried without limit, backing off to 10 s.
PERMANENT_FAILURES = [PermanentFailure.__name__, "ValidationError"]


def activity_options(**overrides: Any) -> dict[str, Any]:
    """The one set of activity options: 30 s an attempt, retried from 200 ms backing off to 10 s,
    except for permanent failures. Keyword arguments override it for one call."""
    return {
        "start_to_close_timeout": timedelta(seconds=30),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(milliseconds=200),
            maximum_interval=timedelta(seconds=10),
            non_retryable_error_types=PERMANENT_FAILURES,
        ),
        **overrides,
    }


async def run_step(activity: Callable, argument: Any) -> Any:
    """Run a short step against the service's own database, with the one set of options.

    It is a *local* activity: the worker runs it within the workflow task that asked for it and
    reports its result with that task, so a step costs no round trip through the Temporal
    server and no task of its own (ADR 8). Calls to anything outside the service (a payment
    gateway) stay regular activities: those may be slow, and their retries should show as such.
    """
    return await workflow.execute_local_activity_method(activity, argument, **activity_options())
