"""The Temporal SDK's own metrics reach the service's prometheus-client registry, on the
time-skipping test server: a workflow run shows up as counters and latency histograms."""

from __future__ import annotations

import uuid
from datetime import timedelta

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from temporalio import activity, workflow
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from concerto_runtime.temporal_metrics import temporal_metrics
from concerto_runtime.testing import _binary


@activity.defn
async def greet(name: str) -> str:
    return f"hello {name}"


@workflow.defn
class Greeting:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(greet, name, start_to_close_timeout=timedelta(seconds=10))


def _samples() -> dict[str, list]:
    found: dict[str, list] = {}
    for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


async def test_the_sdk_metrics_of_a_workflow_run_are_in_the_registry():
    metrics = temporal_metrics()
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=_binary("temporal-test-server"), runtime=metrics.runtime
    )
    try:
        queue = f"metrics-{uuid.uuid4()}"
        async with Worker(env.client, task_queue=queue, workflows=[Greeting], activities=[greet], workflow_runner=UnsandboxedWorkflowRunner()):
            assert await env.client.execute_workflow(Greeting.run, "ada", id=f"greeting-{uuid.uuid4()}", task_queue=queue) == "hello ada"
    finally:
        await env.shutdown()

    samples = _samples()
    completed = [s for s in samples["temporal_workflow_completed_total"] if s.labels.get("task_queue") == queue]
    assert [(s.labels["workflow_type"], s.value) for s in completed] == [("Greeting", 1.0)]
    # A latency histogram, in seconds, with Prometheus's buckets: cumulative, ending in +Inf.
    buckets = [s for s in samples["temporal_activity_execution_latency_seconds_bucket"] if s.labels.get("task_queue") == queue]
    assert buckets and buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == 1.0
    assert [s.value for s in buckets] == sorted(s.value for s in buckets)
    assert all(s.labels["activity_type"] == "greet" for s in buckets)
    # The core's own label naming the SDK is dropped: every series would carry the same value.
    assert not any("service_name" in s.labels for name in samples if name.startswith("temporal_") for s in samples[name])
