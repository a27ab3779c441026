"""Helpers for tests: Temporal's time-skipping test server from the installed wheel (never
downloaded), a real database of either kind, waiting on a condition with a deadline instead of
sleeping, and a script that is no package (the launcher, a workshop exercise) loaded as a module."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import pytest
import uvicorn
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from concerto_runtime.database import async_url, create_engine, create_tables
from concerto_runtime.temporal import workflow_runner

T = TypeVar("T")


def load_module(name: str, path: Path):
    """The Python file at `path`, imported once as the module `name` (registered in sys.modules,
    where dataclasses and pickling look a class's module up)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _binary(name: str) -> str:
    path = Path(sys.prefix) / "bin" / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: run `make setup` (it comes from the {name}-bin wheel)")
    return found


DATABASE_KINDS = ["sqlite", "postgresql"]  # a fixture's params: each test runs on both


def database_url(kind: str, directory: Path) -> str:
    """A SQLite file in `directory`, or the PostgreSQL server `make test` starts
    (TEST_DATABASE_URL); that variant is skipped, saying why, when there is none."""
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{directory / 'test.db'}"
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set: the PostgreSQL variant is skipped (SQLite ran)")
    return async_url(url)


@asynccontextmanager
async def fresh_database(kind: str, directory: Path, *metadatas: MetaData) -> AsyncIterator[AsyncEngine]:
    """An engine on empty tables of `metadatas` (dropped first on the shared PostgreSQL server;
    the tests run one at a time)."""
    url = database_url(kind, directory)
    engine = create_engine(url)
    if not url.startswith("sqlite"):
        async with engine.begin() as connection:
            for metadata in metadatas:
                await connection.run_sync(metadata.drop_all)
    await create_tables(engine, *metadatas)
    try:
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def local_server(app) -> AsyncIterator[str]:
    """An ASGI app served by uvicorn on a free local port, for as long as the block runs: a real
    HTTP peer for a test (a stand-in service, an issuer's JWKS). Yields its base URL."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        server.install_signal_handlers = lambda: None  # pytest keeps its Ctrl-C
        serving = asyncio.create_task(server.serve(sockets=[sock]))

        async def started() -> bool:
            return server.started

        await eventually(started, timeout=10, interval=0.02, what="the local server to serve")
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
            await serving


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


def assert_kept_histories(directory: Path, prefix: str, branches: list[str], *, recorded_by: str) -> None:
    """Every branch a workflow can take has its history kept as `<prefix>_<branch>.json`."""
    missing = [branch for branch in branches if not (directory / f"{prefix}_{branch}.json").exists()]
    assert not missing, (
        f"no history kept for {prefix} branch(es) {', '.join(missing)} in {directory}: record them with "
        f"RECORD_HISTORIES=1 .venv/bin/pytest {recorded_by}"
    )


async def keep_history(handle: WorkflowHandle, path: Path) -> None:
    """Saves the workflow's history as `path`, for the replay tests, but only when
    RECORD_HISTORIES=1: the committed histories change only when someone means them to
    (`RECORD_HISTORIES=1 .venv/bin/pytest services/<service>/tests/...`), not on every run.
    After a change to a workflow, keep the histories the old code wrote (git checkout them):
    they are what proves that running workflows survive the change; add the new branch's only.
    The one exception is a release that retires patches (ADR 17): it re-records them all and
    moves the old ones to histories/retired/."""
    if os.environ.get("RECORD_HISTORIES") != "1":
        return
    history = await handle.fetch_history()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(history.to_json() + "\n")
