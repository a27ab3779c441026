"""The one set of step options, on Temporal's time-skipping test server: a permanent failure
(or invalid data) ends the step and its workflow at the first attempt, visibly; anything else
is tried again until it succeeds."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.client import WorkflowFailureError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from concerto_runtime.testing import time_skipping_environment
from concerto_runtime.workflows import PermanentFailure, run_step

attempts: Counter = Counter()


class Amount(BaseModel):
    value: int


@activity.defn
async def step(kind: str) -> str:
    attempts[kind] += 1
    if kind == "missing":
        raise PermanentFailure("order ord-404 does not exist")
    if kind == "invalid":
        Amount.model_validate({"value": "not a number"})
    if kind == "flaky" and attempts[kind] < 3:
        raise ConnectionError("the database is away")
    return f"{kind} done"


@workflow.defn
class OneStep:
    @workflow.run
    async def run(self, kind: str) -> str:
        return await run_step(step, kind)


def causes(error: BaseException) -> list[BaseException]:
    chain = []
    while (error := getattr(error, "cause", None)) is not None:
        chain.append(error)
    return chain


async def run_one(kind: str) -> str:
    async with time_skipping_environment() as env:
        queue = f"steps-{uuid.uuid4().hex[:8]}"
        # Unsandboxed: this module is a test file, not importable by name inside the sandbox.
        async with Worker(env.client, task_queue=queue, workflows=[OneStep], activities=[step], workflow_runner=UnsandboxedWorkflowRunner()):
            return await env.client.execute_workflow(OneStep.run, kind, id=f"step-{kind}-{uuid.uuid4().hex[:6]}", task_queue=queue)


@pytest.mark.parametrize(("kind", "error_type"), [("missing", "PermanentFailure"), ("invalid", "ValidationError")])
async def test_a_step_that_cannot_succeed_fails_its_workflow_at_the_first_attempt(kind, error_type):
    with pytest.raises(WorkflowFailureError) as failed:
        await run_one(kind)

    assert attempts[kind] == 1, "not retried"
    assert error_type in [getattr(error, "type", None) for error in causes(failed.value)], "the error shows on the failed workflow"


async def test_any_other_failure_is_tried_again_until_the_step_succeeds():
    assert await run_one("flaky") == "flaky done"
    assert attempts["flaky"] == 3
