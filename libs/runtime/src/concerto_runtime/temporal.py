"""The one way a service connects to Temporal: pydantic models as payloads."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from tenacity import retry, stop_after_delay, wait_fixed

from concerto_runtime.settings import Settings
from concerto_runtime.temporal_metrics import temporal_metrics
from concerto_runtime.temporal_tracing import SignalTracingInterceptor

log = logging.getLogger(__name__)


@retry(stop=stop_after_delay(60), wait=wait_fixed(1), reraise=True)
async def connect_temporal(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        # Continues the caller's trace into workflows and activities (and their workers); an
        # activity run for a signal continues the signal's (ADR 18). In this order.
        interceptors=[TracingInterceptor(), SignalTracingInterceptor()],
        # The SDK's own metrics go into the service's /metrics (temporal_metrics.py).
        runtime=temporal_metrics().runtime,
    )


def workflow_runner() -> SandboxedWorkflowRunner:
    # Our contracts are plain, deterministic pydantic models: load them once, outside the
    # sandbox, rather than re-importing them (and the e-mail validator) for every run.
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("concerto_contracts", "email_validator")
    )


def create_worker(client: Client, task_queue: str, workflows: Sequence[type], activities: Sequence[Callable]) -> Worker:
    """The worker as every service (and every workflow test) runs it."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(workflows),
        activities=list(activities),
        workflow_runner=workflow_runner(),
    )


async def start_once(client: Client, workflow_run: Callable, argument: object, *, id: str, task_queue: str) -> None:
    """Start a workflow for an event or a request, however often it is redelivered or retried:
    if the workflow is running, or has run, under that id, nothing new starts."""
    try:
        await client.start_workflow(
            workflow_run,
            argument,
            id=id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            # The service starting it runs its worker: the first workflow task comes back with
            # the answer to the start, with no trip through the task queue (ADR 8).
            request_eager_start=True,
        )
    except WorkflowAlreadyStartedError:
        log.info("%s already ran", id)


async def signal_with_start(
    client: Client, workflow_run: Callable, args: list, *, id: str, task_queue: str, signal: str, signal_args: list
) -> WorkflowHandle:
    """Signal a workflow, starting it first if no run under that id is open (an entity
    workflow created by its first message)."""
    return await client.start_workflow(
        workflow_run,
        args=args,
        id=id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        start_signal=signal,
        start_signal_args=signal_args,
    )


async def signal_if_running(client: Client, workflow_id: str, signal: Callable, *args: object) -> bool:
    """Signal a workflow; False (and nothing else) if it has already finished or never ran."""
    try:
        await client.get_workflow_handle(workflow_id).signal(signal, *args)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return False
    return True
