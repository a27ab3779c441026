"""SagaWatch, the monitor's one durable timer for every saga, on Temporal's time-skipping test
server, with a scripted `handle_due_sagas` in place of the database-backed WatchActivities.

The test server's clock only moves on when a test skips it: `env.sleep` jumps ahead by the
given amount, and awaiting a workflow's result skips to its next timer. So "an hour later"
costs nothing, and "not before" is checked by skipping to just before a deadline. Deadlines
are set from the server's clock (`env.get_current_time()`), as the monitor sets them from its own.

SagaWatch is a single workflow (WATCH_WORKFLOW_ID); each test runs its own copy under an id and
a task queue of its own, except the tests of `set_watch`, which use the real ones.

Each branch's test keeps its watch's history in tests/histories/saga_watch_<branch>.json, and
every history there is replayed with the current SagaWatch, so a change that would break the
running watch fails here. Record them again only when the change is safe:

    cd /work/main && RECORD_HISTORIES=1 .venv/bin/pytest services/monitor/tests/test_monitor_watch.py
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from concerto_monitor.messaging.handlers import set_watch
from concerto_monitor.workflows.inputs import TASK_QUEUE, WATCH_WORKFLOW_ID, WatchUpdate
from concerto_monitor.workflows.saga_watch import WAKES_PER_RUN, SagaWatch
from concerto_runtime import create_worker, signal_with_start
from concerto_runtime.testing import assert_kept_histories, assert_replays, eventually, keep_history, time_skipping_environment

HISTORIES = Path(__file__).parent / "histories"
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DONE = "no saga waits for anything"


class HandleDueSagas:
    """Stands in for WatchActivities.handle_due_sagas (same activity name): records the server
    time of each call and answers with the next scripted WatchUpdate. With a gate, each call
    waits for the test to open it, so the test can signal the workflow while it runs."""

    def __init__(self, *answers: WatchUpdate, gate: asyncio.Event | None = None) -> None:
        self.answers = list(answers)
        self.gate = gate
        self.times: list[datetime] = []

    def activities(self) -> list:
        @activity.defn(name="handle_due_sagas")
        async def handle_due_sagas() -> WatchUpdate:
            self.times.append(activity.info().scheduled_time)
            if self.gate is not None:
                await self.gate.wait()
            if not self.answers:
                raise ApplicationError("handle_due_sagas called more often than the test expected", non_retryable=True)
            return self.answers.pop(0)

        return [handle_due_sagas]

    async def called(self, count: int) -> None:
        async def probe() -> bool:
            return len(self.times) >= count

        await eventually(probe, timeout=20, interval=0.05, what=f"{count} call(s) of handle_due_sagas")


@asynccontextmanager
async def watching(client: Client, first: WatchUpdate, fake: HandleDueSagas | EveryMinute) -> AsyncIterator[tuple[WorkflowHandle, Worker]]:
    """A worker with the fake activity on a queue of its own, and a SagaWatch started by
    signal-with-start with its first deadline, as the monitor's consumer starts it."""
    task_queue = f"monitor-test-{uuid.uuid4().hex[:8]}"
    async with create_worker(client, task_queue, [SagaWatch], fake.activities()) as worker:
        handle = await signal_with_start(
            client, SagaWatch.run, [None], id=f"saga-watch-{uuid.uuid4().hex[:8]}", task_queue=task_queue, signal="watch", signal_args=[first]
        )
        try:
            yield handle, worker
        finally:
            await stop(client, handle.id)


async def stop(client: Client, workflow_id: str) -> None:
    """A failed test must not leave its timer behind for the next test's time skipping."""
    try:
        await client.get_workflow_handle(workflow_id).terminate("test over")
    except RPCError:
        pass  # already closed, as it should be


async def current(handle: WorkflowHandle) -> WatchUpdate | None:
    return await handle.query(SagaWatch.current)


@pytest.fixture(scope="module")
async def env():
    async with time_skipping_environment() as env:
        yield env


async def now(env: WorkflowEnvironment) -> datetime:
    return await env.get_current_time()


async def test_monitor_watch_handles_due_sagas_once_the_deadline_passes_and_not_before(env):
    """The activity runs when the deadline has passed, not a minute before; an answer without a deadline ends the watch."""
    deadline = await now(env) + HOUR
    fake = HandleDueSagas(WatchUpdate(version=2))
    async with watching(env.client, WatchUpdate(version=1, deadline=deadline), fake) as (handle, _):
        await env.sleep(HOUR - MINUTE)
        assert (await current(handle)).version == 1  # the workflow has the deadline and is waiting
        assert fake.times == []

        assert await handle.result() == DONE  # the server skips the last minute
    [scheduled] = fake.times
    assert scheduled >= deadline
    await keep_history(handle, HISTORIES / "saga_watch_fired.json")


async def test_monitor_watch_a_deadline_already_past_is_handled_at_once(env):
    """A first deadline in the past (the monitor caught up late) is handled without waiting."""
    started = await now(env)
    fake = HandleDueSagas(WatchUpdate(version=2))
    async with watching(env.client, WatchUpdate(version=1, deadline=started - MINUTE), fake) as (handle, _):
        await fake.called(1)
        assert await handle.result() == DONE
    assert fake.times[0] - started < MINUTE
    await keep_history(handle, HISTORIES / "saga_watch_past_deadline.json")


async def test_monitor_watch_a_newer_earlier_deadline_fires_earlier(env):
    """A newer version with a nearer deadline (a new saga due sooner) wakes the watch then, not at the old deadline."""
    start = await now(env)
    fake = HandleDueSagas(WatchUpdate(version=3))
    async with watching(env.client, WatchUpdate(version=1, deadline=start + HOUR), fake) as (handle, _):
        await handle.signal(SagaWatch.watch, WatchUpdate(version=2, deadline=start + 5 * MINUTE))
        assert await handle.result() == DONE
    [scheduled] = fake.times
    assert start + 5 * MINUTE <= scheduled < start + HOUR
    await keep_history(handle, HISTORIES / "saga_watch_moved_earlier.json")


async def test_monitor_watch_a_newer_later_deadline_moves_the_timer(env):
    """A newer version before the deadline replaces it: the old deadline passes without the activity running."""
    start = await now(env)
    fake = HandleDueSagas(WatchUpdate(version=3))
    async with watching(env.client, WatchUpdate(version=1, deadline=start + 10 * MINUTE), fake) as (handle, _):
        await handle.signal(SagaWatch.watch, WatchUpdate(version=2, deadline=start + HOUR))
        await env.sleep(20 * MINUTE)  # well past the old deadline
        assert (await current(handle)).version == 2
        assert fake.times == []

        assert await handle.result() == DONE
    [scheduled] = fake.times
    assert scheduled >= start + HOUR


async def test_monitor_watch_ignores_an_older_version(env):
    """A signal whose version is not newer than the current one changes nothing, even with a nearer deadline."""
    start = await now(env)
    fake = HandleDueSagas(WatchUpdate(version=6))
    async with watching(env.client, WatchUpdate(version=5, deadline=start + HOUR), fake) as (handle, _):
        await handle.signal(SagaWatch.watch, WatchUpdate(version=4, deadline=start + MINUTE))
        await handle.signal(SagaWatch.watch, WatchUpdate(version=5, deadline=start + MINUTE))  # the same version: not newer either
        await env.sleep(10 * MINUTE)
        assert await current(handle) == WatchUpdate(version=5, deadline=start + HOUR)
        assert fake.times == []

        assert await handle.result() == DONE
    [scheduled] = fake.times
    assert scheduled >= start + HOUR


async def test_monitor_watch_ends_when_told_there_is_no_deadline(env):
    """A newer WatchUpdate without a deadline (no saga waits for anything) ends the watch at once, no activity."""
    start = await now(env)
    fake = HandleDueSagas()
    async with watching(env.client, WatchUpdate(version=1, deadline=start + HOUR), fake) as (handle, _):
        await handle.signal(SagaWatch.watch, WatchUpdate(version=2))
        assert await handle.result() == DONE
        description = await handle.describe()
    assert fake.times == []
    assert description.status == WorkflowExecutionStatus.COMPLETED
    assert description.close_time - description.start_time < HOUR  # it did not wait for the old deadline
    await keep_history(handle, HISTORIES / "saga_watch_ended.json")


async def test_monitor_watch_sets_the_next_deadline_the_activity_answers(env):
    """After handling the due sagas, the watch sleeps until the next earliest deadline the activity answers with."""
    start = await now(env)
    fake = HandleDueSagas(WatchUpdate(version=2, deadline=start + 2 * HOUR), WatchUpdate(version=3))
    async with watching(env.client, WatchUpdate(version=1, deadline=start + HOUR), fake) as (handle, _):
        assert await handle.result() == DONE
    first, second = fake.times
    assert start + HOUR <= first < start + 2 * HOUR
    assert second >= start + 2 * HOUR
    await keep_history(handle, HISTORIES / "saga_watch_next_deadline.json")


async def test_monitor_watch_looks_again_a_second_later_when_nothing_was_due_yet(env):
    """An answer with the same deadline (not due yet by the database's clock) is retried a second later, not dropped."""
    start = await now(env)
    first_watch = WatchUpdate(version=1, deadline=start + MINUTE)
    fake = HandleDueSagas(WatchUpdate(version=2, deadline=start + MINUTE), WatchUpdate(version=3))
    async with watching(env.client, first_watch, fake) as (handle, _):
        assert await handle.result() == DONE
    first, second = fake.times
    assert timedelta(seconds=1) <= second - first < MINUTE
    await keep_history(handle, HISTORIES / "saga_watch_looked_again.json")


async def test_monitor_watch_handles_a_full_batch_again_at_once(env):
    """An answer of "now" (a full batch: more sagas due) makes the watch handle the rest without waiting."""
    start = await now(env)
    fake = HandleDueSagas(WatchUpdate(version=2, deadline=start + MINUTE + timedelta(milliseconds=1)), WatchUpdate(version=3))
    async with watching(env.client, WatchUpdate(version=1, deadline=start + MINUTE), fake) as (handle, _):
        assert await handle.result() == DONE
    first, second = fake.times
    assert second - first < timedelta(seconds=1)
    await keep_history(handle, HISTORIES / "saga_watch_full_batch.json")


async def test_monitor_watch_a_signal_during_the_activity_wins_over_an_older_answer(env):
    """A newer signal that arrives while the activity runs is kept: the activity's older answer does not replace it."""
    start = await now(env)
    gate = asyncio.Event()
    fake = HandleDueSagas(WatchUpdate(version=2, deadline=start + 2 * HOUR), gate=gate)
    # A deadline already past: the activity starts at once (no time skipping while an activity runs).
    async with watching(env.client, WatchUpdate(version=1, deadline=start - MINUTE), fake) as (handle, _):
        await fake.called(1)
        await handle.signal(SagaWatch.watch, WatchUpdate(version=3))  # meanwhile: nothing waits any more
        gate.set()
        assert await handle.result() == DONE
    assert len(fake.times) == 1
    await keep_history(handle, HISTORIES / "saga_watch_signal_during_activity.json")


class EveryMinute:
    """Stands in for handle_due_sagas on a busy shop: each call answers "the next saga is due a
    minute from now", `calls` times, then "nothing waits any more". Records the run each call
    came from and its server time."""

    def __init__(self, calls: int) -> None:
        self.calls = calls
        self.runs: list[str] = []
        self.times: list[datetime] = []

    def activities(self) -> list:
        @activity.defn(name="handle_due_sagas")
        async def handle_due_sagas() -> WatchUpdate:
            info = activity.info()
            self.runs.append(info.workflow_run_id)
            self.times.append(info.scheduled_time)
            version = len(self.runs) + 1
            if len(self.runs) >= self.calls:
                return WatchUpdate(version=version)
            return WatchUpdate(version=version, deadline=info.scheduled_time + MINUTE)

        return [handle_due_sagas]


async def test_monitor_watch_continues_as_new_with_its_timer(env):
    """After WAKES_PER_RUN wake-ups the watch goes on in a fresh run that keeps its timer: no wake-up lost, none early."""
    start = await now(env)
    fake = EveryMinute(calls=WAKES_PER_RUN + 3)
    async with watching(env.client, WatchUpdate(version=1, deadline=start + MINUTE), fake) as (handle, _):
        assert await handle.result() == DONE  # follows the chain of runs to the last one
        first = await env.client.get_workflow_handle(handle.id, run_id=handle.result_run_id).describe()
    assert first.status == WorkflowExecutionStatus.CONTINUED_AS_NEW
    assert len(fake.runs) == WAKES_PER_RUN + 3
    assert set(fake.runs[:WAKES_PER_RUN]) == {handle.result_run_id}
    [second_run] = set(fake.runs[WAKES_PER_RUN:])
    assert second_run != handle.result_run_id
    # Every wake-up, across the two runs, came a minute after the one before: the carried timer
    # was neither dropped nor fired at once.
    gaps = [later - earlier for earlier, later in zip(fake.times, fake.times[1:])]
    assert all(MINUTE <= gap < 2 * MINUTE for gap in gaps), sorted(gaps)[-3:]


async def test_monitor_watch_a_signal_older_than_the_carried_timer_is_ignored_after_continue_as_new(env):
    """A run started with a carried-over timer ignores a signal older than it, as the first run would have."""
    start = await now(env)
    fake = HandleDueSagas(WatchUpdate(version=9))
    task_queue = f"monitor-test-{uuid.uuid4().hex[:8]}"
    workflow_id = f"saga-watch-{uuid.uuid4().hex[:8]}"
    async with create_worker(env.client, task_queue, [SagaWatch], fake.activities()):
        carried = WatchUpdate(version=8, deadline=start + HOUR)
        handle = await signal_with_start(
            env.client, SagaWatch.run, [carried], id=workflow_id, task_queue=task_queue, signal="watch",
            signal_args=[WatchUpdate(version=7, deadline=start + MINUTE)],
        )
        try:
            assert await handle.result() == DONE
        finally:
            await stop(env.client, workflow_id)
    [scheduled] = fake.times
    assert scheduled >= start + HOUR
    await keep_history(handle, HISTORIES / "saga_watch_carried_over.json")


# --- started as the monitor's consumer starts it ------------------------------------------


async def test_monitor_set_watch_starts_the_watch_then_signals_the_same_run(env):
    """messaging.handlers.set_watch starts SagaWatch with signal-with-start, signals the running one after, and starts a new one once it ended."""
    runtime = SimpleNamespace(temporal=env.client)  # set_watch needs only the Temporal client
    start = await now(env)
    fake = HandleDueSagas(WatchUpdate(version=3), WatchUpdate(version=5))
    async with create_worker(env.client, TASK_QUEUE, [SagaWatch], fake.activities()):
        try:
            await set_watch(runtime, WatchUpdate(version=1, deadline=start + HOUR))
            handle = env.client.get_workflow_handle(WATCH_WORKFLOW_ID)
            first_run = (await handle.describe()).run_id

            await set_watch(runtime, WatchUpdate(version=2, deadline=start + 10 * MINUTE))  # a saga due sooner
            assert (await handle.describe()).run_id == first_run  # signalled, not started again
            assert await current(handle) == WatchUpdate(version=2, deadline=start + 10 * MINUTE)
            # set_watch returns no handle, and only a handle from start_workflow skips time by
            # itself: skip past the nearer deadline explicitly.
            await env.sleep(15 * MINUTE)
            await fake.called(1)
            assert await handle.result() == DONE
            assert start + 10 * MINUTE <= fake.times[0] < start + HOUR

            # No saga waited for anything, so no watch runs; the next deadline starts one.
            await set_watch(runtime, WatchUpdate(version=4, deadline=await now(env) + MINUTE))
            again = env.client.get_workflow_handle(WATCH_WORKFLOW_ID)
            assert (await again.describe()).run_id != first_run
            await env.sleep(2 * MINUTE)
            await fake.called(2)
            assert await again.result() == DONE
        finally:
            await stop(env.client, WATCH_WORKFLOW_ID)
    assert len(fake.times) == 2


# --- determinism -----------------------------------------------------------------------


async def test_monitor_watch_replays_its_own_history(env):
    """A SagaWatch history with a moved timer, a look-again and two wake-ups replays without a nondeterminism error."""
    start = await now(env)
    fake = HandleDueSagas(
        WatchUpdate(version=3, deadline=start + 30 * MINUTE),  # nothing due yet: look again a second later
        WatchUpdate(version=4, deadline=start + 2 * HOUR),
        WatchUpdate(version=5),
    )
    async with watching(env.client, WatchUpdate(version=1, deadline=start + 10 * MINUTE), fake) as (handle, _):
        await handle.signal(SagaWatch.watch, WatchUpdate(version=2, deadline=start + 30 * MINUTE))
        assert await handle.result() == DONE
        history = await handle.fetch_history()
    assert len(fake.times) == 3

    await assert_replays(history, [SagaWatch])


# SagaWatch's branches, each with its history kept by the test that takes it. (Continue-as-new
# comes after WAKES_PER_RUN wake-ups: too long a history to keep.)
BRANCHES = [
    "fired",
    "past_deadline",
    "moved_earlier",
    "ended",
    "next_deadline",
    "looked_again",
    "full_batch",
    "signal_during_activity",
    "carried_over",
]


def test_monitor_watch_keeps_a_history_of_every_branch():
    """Deleting a branch's history must not silently drop its replay test."""
    assert_kept_histories(HISTORIES, "saga_watch", BRANCHES, recorded_by=__file__)


@pytest.mark.parametrize("history", sorted(HISTORIES.glob("*.json")), ids=lambda path: path.name)
async def test_monitor_watch_replays_every_kept_history(history):
    """The running watch, whatever it went through, survives a change to SagaWatch."""
    await assert_replays(history, [SagaWatch])
