"""Lab 4's checks: OrderWorkflow with the fraud screen still replays the histories of orders
already running, and a new order is screened before it is confirmed."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from concerto_contracts.http import OrderStatus
from concerto_order.workflows.inputs import OrderOutcome, Screening
from concerto_order.workflows.order_workflow import OrderWorkflow
from concerto_runtime.temporal import workflow_runner
from concerto_runtime.testing import load_module, time_skipping_environment

TREE = Path(os.environ.get("LAB_TREE", "."))
TESTS = TREE / "services" / "order" / "tests"
HISTORIES = TESTS / "histories"


def _order_tests():
    """The lab copy's own OrderWorkflow tests, for their helpers: an order, its events, a worker
    with stand-in activities (screen_order among them)."""
    path = TESTS / "test_order_workflow.py"
    assert path.exists(), f"{path} is missing: run `make lab 4` and work in .labs/lab-04"
    return load_module("lab04_order_tests", path)


tests = _order_tests()


@pytest.fixture(scope="module")
async def env():
    async with time_skipping_environment() as env:
        yield env


async def _replay_failure(history: WorkflowHistory) -> str | None:
    replayer = Replayer(workflows=[OrderWorkflow], data_converter=pydantic_data_converter, workflow_runner=workflow_runner())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    return None if result.replay_failure is None else str(result.replay_failure)


def _patches(history: WorkflowHistory) -> set[str]:
    """The ids of the patches a workflow run recorded (workflow.patched leaves a core_patch marker)."""
    found = set()
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == "core_patch":
                found.add(json.loads(marker.details["patch-data"].payloads[0].data)["id"])
    return found


def test_the_kept_histories_are_still_the_ones_running_orders_wrote():
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--", "services/order/tests/histories"], cwd=TREE, capture_output=True, text=True
    ).stdout.split("\n")
    changed = [line[3:] for line in changed if line and not line.startswith("??")]  # a new history is fine
    assert not changed, (
        f"the kept histories were changed ({', '.join(changed)}): they stand for orders already running in production, "
        "so recording them again proves nothing. Restore them (git checkout services/order/tests/histories) and guard the "
        "new step in OrderWorkflow instead"
    )


async def test_every_kept_history_still_replays():
    histories = sorted(HISTORIES.glob("*.json"))
    assert histories, f"no kept histories in {HISTORIES}: restore them (git checkout services/order/tests/histories)"
    failing = []
    for path in histories:
        if await _replay_failure(WorkflowHistory.from_json(path.stem, path.read_text())):
            failing.append(path.stem)
    assert not failing, (
        f"{len(failing)} of the {len(histories)} kept order histories no longer replay ({', '.join(failing)}): orders "
        "started before the fraud screen never asked for one, so running it unconditionally breaks them; guard the "
        "screening with workflow.patched(...) in OrderWorkflow.run"
    )


async def test_a_new_order_is_screened_before_it_is_confirmed(env):
    order = tests.place_order()
    async with tests.running(env.client, order) as (handle, recorder, _):
        await tests.signal(handle, *tests.whole_journey(order))
        outcome = await handle.result()
        history = await handle.fetch_history()

    assert "screen_order" in recorder.names, (
        f"a new order should go through the fraud screen (screen_order), but it ran only {recorder.names}: keep the "
        "step for new orders, guarded, rather than removing it"
    )
    assert recorder.names.index("screen_order") < recorder.names.index("confirm_order"), (
        f"a new order should be screened before it is confirmed (before OrderConfirmed sets the payment going); "
        f"it ran {recorder.names}"
    )
    assert outcome == OrderOutcome(status=OrderStatus.COMPLETED), f"a new order that passes the screen should complete, it ended {outcome}"
    assert _patches(history), (
        "a new order's history should record that it took the new branch (workflow.patched(\"...\") leaves a marker "
        "with its id; this one holds none): without one, a replay cannot tell old orders from new"
    )
    assert await _replay_failure(history) is None, (
        "a new order's own history should replay too (a worker restart replays it), but it fails: decide the branch "
        "with workflow.patched(...), not with anything that differs between a run and its replay"
    )


async def test_an_order_the_screen_holds_is_cancelled_before_it_is_confirmed(env):
    order = tests.place_order()
    held = Screening(passed=False, reason="fraud_suspected")
    async with tests.running(env.client, order, screening=held) as (handle, recorder, _):
        outcome = await handle.result()

    assert outcome == OrderOutcome(status=OrderStatus.CANCELLED, cancellation_reason="fraud_suspected"), (
        f"a new order the fraud screen holds should be cancelled `fraud_suspected`, it ended {outcome}"
    )
    assert "confirm_order" not in recorder.names, (
        f"an order the fraud screen holds should never be confirmed (nothing charged); it ran {recorder.names}"
    )
