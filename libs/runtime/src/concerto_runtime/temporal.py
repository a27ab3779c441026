"""The one way a service connects to Temporal: pydantic models as payloads."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from tenacity import retry, stop_after_delay, wait_fixed

from concerto_runtime.settings import Settings


@retry(stop=stop_after_delay(60), wait=wait_fixed(1), reraise=True)
async def connect_temporal(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        # Continues the caller's trace into workflows and activities (and their workers).
        interceptors=[TracingInterceptor()],
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
