"""Helpers for tests: Temporal's time-skipping test server from the installed wheel (never
downloaded), and waiting on a condition with a deadline instead of sleeping."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from temporalio import activity
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from concerto_runtime.temporal import workflow_runner

T = TypeVar("T")


def _binary(name: str) -> str:
    path = Path(sys.prefix) / "bin" / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: run `make setup` (it comes from the {name}-bin wheel)")
    return found


@asynccontextmanager
async def time_skipping_environment() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=_binary("temporal-test-server"),
    )
    try:
        yield env
    finally:
        await env.shutdown()


async def eventually(probe: Callable[[], Awaitable[T]], *, timeout: float = 30, interval: float = 0.2, what: str = "condition") -> T:
    """Polls `probe` until it returns something truthy, or fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


class Executions:
    """Tells a test activity whether this execution is one it has seen before.

    A local activity runs again, under the same activity id and attempt, when the workflow
    task that ran it is retried: for instance when a signal arrives just as the workflow
    completes, the server refuses that completion and the task runs again. Like any activity it
    runs at least once; a test that counts steps counts each one once."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str, int]] = set()

    def first(self) -> bool:
        info = activity.info()
        key = (info.workflow_run_id or "", info.activity_id, info.attempt)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


async def assert_replays(history, workflows: list[type]) -> None:
    """The workflows' current code replays `history` (a WorkflowHistory, or the path of one
    saved as JSON) without a non-determinism error, in the sandbox the services use."""
    if isinstance(history, Path):
        history = WorkflowHistory.from_json(history.stem, history.read_text())
    replayer = Replayer(workflows=workflows, data_converter=pydantic_data_converter, workflow_runner=workflow_runner())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{history.workflow_id} no longer replays: {result.replay_failure}"
