"""LoyaltyAccountWorkflow on Temporal's time-skipping test server, with a test apply_change in
place of the database-backed LoyaltyActivities. The workflow has no query, so the tests watch
the calls the test activity records.

Changes reach the workflow as the loyalty handlers send them: signal-with-start, one workflow
per customer, the second change signalling the running workflow.

Each branch's test keeps its account's history in tests/histories/loyalty_<branch>.json, and
every history there is replayed with the current LoyaltyAccountWorkflow, so a change that would
break the accounts' running workflows fails here. Record them again only when the change is safe,
or a release retires patches (ADR 17: the histories recorded before it move to
tests/histories/retired/, which is not replayed):

    cd /work/main && RECORD_HISTORIES=1 .venv/bin/pytest services/loyalty/tests/test_loyalty_workflow.py
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

from concerto_loyalty.workflows.inputs import AccountChange
from concerto_loyalty.messaging.handlers import send_to_account
from concerto_loyalty.workflows.loyalty_workflow import CHANGES_PER_RUN, LoyaltyAccountWorkflow
from concerto_runtime.temporal import create_worker
from concerto_runtime.testing import Executions, assert_kept_histories, assert_replays, eventually, keep_history, time_skipping_environment


HISTORIES = Path(__file__).parent / "histories"


class Recorder:
    """Stands in for LoyaltyActivities.apply_change: records each change (with the run that
    applied it) and how many calls were ever in flight at once. Each call takes a moment, so
    that a second change arriving meanwhile would overlap if the workflow let it."""

    def __init__(self, delay: float = 0.1) -> None:
        self.delay = delay
        self.changes: list[AccountChange] = []
        self.run_ids: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def activities(self) -> list:
        executions = Executions()

        @activity.defn(name="apply_change")
        async def apply_change(change: AccountChange) -> None:
            if not executions.first():
                return  # a change re-run with its workflow task counts once
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await asyncio.sleep(self.delay)
                self.changes.append(change)
                self.run_ids.append(activity.info().workflow_run_id)
            finally:
                self.in_flight -= 1

        return [apply_change]

    @property
    def order_ids(self) -> list[str]:
        return [change.order_id for change in self.changes]

    async def applied(self, count: int) -> None:
        async def probe() -> bool:
            return len(self.changes) >= count

        await eventually(probe, timeout=20, interval=0.05, what=f"{count} changes applied")


def change(customer_id: str, order_id: str, kind: str = "award", amount: str = "62.59", first_order: bool = False) -> AccountChange:
    return AccountChange(
        kind=kind, customer_id=customer_id, order_id=order_id, correlation_id=f"corr-{order_id}",
        causation_id=f"evt-{order_id}", amount=Decimal(amount), first_order=first_order,
    )


@asynccontextmanager
async def account(client: Client, recorder: Recorder) -> AsyncIterator[tuple[str, Callable[[AccountChange], Awaitable[WorkflowHandle]]]]:
    """A worker with the test activity on a queue of its own, a fresh customer, and `send`,
    which signals-with-start a change to the customer's account workflow as the handlers do."""
    customer_id = f"cust-{uuid.uuid4().hex[:8]}"
    task_queue = f"loyalty-test-{uuid.uuid4().hex[:8]}"
    handles: list[WorkflowHandle] = []

    async def send(c: AccountChange) -> WorkflowHandle:
        handle = await send_to_account(client, c, task_queue)
        handles.append(handle)
        return handle

    async with create_worker(client, task_queue, [LoyaltyAccountWorkflow], recorder.activities()):
        try:
            yield customer_id, send
        finally:
            # The account workflow never ends by itself.
            try:
                await client.get_workflow_handle(f"loyalty-{customer_id}").terminate("test over")
            except RPCError:
                pass


async def keep_account_history(client: Client, customer_id: str, changes: int, path: Path) -> None:
    """The account workflow never ends: keep the history of its current run once the run's
    `changes` are all in it (an applied change reaches the history with the workflow task that
    applied it, a moment after the test activity returns)."""
    handle = client.get_workflow_handle(f"loyalty-{customer_id}")

    async def all_in_history() -> bool:
        events = (await handle.fetch_history()).events
        markers = [event.marker_recorded_event_attributes.marker_name for event in events if event.HasField("marker_recorded_event_attributes")]
        return markers.count("core_local_activity") >= changes

    await eventually(all_in_history, timeout=10, interval=0.05, what=f"{changes} changes in the account's history")
    await keep_history(handle, path)


@pytest.fixture(scope="module")
async def env():
    async with time_skipping_environment() as env:
        yield env


async def test_loyalty_workflow_two_changes_are_applied_in_order(env):
    recorder = Recorder()
    async with account(env.client, recorder) as (customer_id, send):
        first = change(customer_id, "ord-1", first_order=True)
        second = change(customer_id, "ord-1", kind="reverse", amount="0")
        started = await send(first)
        again = await send(second)  # finds the running workflow and signals it
        await recorder.applied(2)
        await keep_account_history(env.client, customer_id, 2, HISTORIES / "loyalty_points_reversed.json")

    assert recorder.changes == [first, second]
    assert recorder.max_in_flight == 1  # one at a time: the balance never races
    # One workflow for the account: the second send signalled the run the first one started.
    assert again.id == started.id
    assert len(set(recorder.run_ids)) == 1


async def test_loyalty_workflow_a_burst_of_changes_is_applied_one_at_a_time_in_order(env):
    recorder = Recorder(delay=0.05)
    async with account(env.client, recorder) as (customer_id, send):
        changes = [change(customer_id, f"ord-{i}") for i in range(6)]
        for c in changes:
            await send(c)
        await recorder.applied(len(changes))
        await asyncio.sleep(0.3)  # nothing more arrives: each change is applied once
        await keep_account_history(env.client, customer_id, len(changes), HISTORIES / "loyalty_points_awarded.json")

    assert recorder.changes == changes
    assert recorder.max_in_flight == 1


async def test_loyalty_workflow_starts_afresh_after_its_changes_per_run(env):
    # Continue-as-new keeps each run's history short; the account carries on in the new run.
    recorder = Recorder(delay=0)
    async with account(env.client, recorder) as (customer_id, send):
        changes = [change(customer_id, f"ord-{i}") for i in range(CHANGES_PER_RUN)]
        first_run = (await send(changes[0])).result_run_id
        for c in changes[1:]:
            await send(c)
        await recorder.applied(CHANGES_PER_RUN)

        latest = env.client.get_workflow_handle(f"loyalty-{customer_id}")

        async def continued() -> bool:
            return (await latest.describe()).run_id != first_run

        await eventually(continued, timeout=10, interval=0.05, what="the account workflow to continue as new")
        first = await env.client.get_workflow_handle(f"loyalty-{customer_id}", run_id=first_run).describe()
        assert first.status == WorkflowExecutionStatus.CONTINUED_AS_NEW

        later = [change(customer_id, "ord-late-1"), change(customer_id, "ord-late-2")]
        for c in later:
            await send(c)
        await recorder.applied(CHANGES_PER_RUN + len(later))
        # The new run's history (the first one's, CHANGES_PER_RUN changes long, is too big to keep).
        await keep_account_history(env.client, customer_id, len(later), HISTORIES / "loyalty_continued_as_new.json")

    assert recorder.changes == changes + later
    assert recorder.max_in_flight == 1
    assert recorder.run_ids[:CHANGES_PER_RUN] == [first_run] * CHANGES_PER_RUN
    new_runs = set(recorder.run_ids[CHANGES_PER_RUN:])
    assert len(new_runs) == 1 and first_run not in new_runs


async def test_loyalty_workflow_replays_its_own_history(env):
    recorder = Recorder(delay=0)
    async with account(env.client, recorder) as (customer_id, send):
        handle = await send(change(customer_id, "ord-1", first_order=True))
        await send(change(customer_id, "ord-2"))
        await recorder.applied(2)
        history = await env.client.get_workflow_handle(handle.id).fetch_history()
    await assert_replays(history, [LoyaltyAccountWorkflow])


# The account workflow's branches, each with its history kept by the test that takes it.
BRANCHES = ["points_awarded", "points_reversed", "continued_as_new"]


def test_loyalty_workflow_keeps_a_history_of_every_branch():
    """Deleting a branch's history must not silently drop its replay test."""
    assert_kept_histories(HISTORIES, "loyalty", BRANCHES, recorded_by=__file__)


@pytest.mark.parametrize("history", sorted(HISTORIES.glob("*.json")), ids=lambda path: path.name)
async def test_loyalty_workflow_replays_every_kept_history(history):
    """The accounts' workflows running in production, whatever they went through, survive a
    change to LoyaltyAccountWorkflow."""
    await assert_replays(history, [LoyaltyAccountWorkflow])
