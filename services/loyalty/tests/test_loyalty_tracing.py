"""One order, one trace, through the customer's loyalty account (ADR 18): the account's workflow
outlives any one order, yet each change is applied in the trace of the order that sent it, so the
points events it publishes carry that order's trace on. The client has the interceptors every
service connects with (concerto_runtime.temporal). It runs on the Temporal dev server the stack
runs (the `temporal` CLI): the time-skipping test server drops a signal-with-start's header, so
the trace of a signal would not reach the workflow there."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio import activity
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from concerto_loyalty.messaging.handlers import send_to_account
from concerto_loyalty.workflows.inputs import AccountChange
from concerto_loyalty.workflows.loyalty_workflow import LoyaltyAccountWorkflow
from concerto_runtime.temporal import create_worker
from concerto_runtime.temporal_tracing import SignalTracingInterceptor
from concerto_runtime.testing import Executions, eventually


@asynccontextmanager
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter, dev_server_existing_path=str(Path(sys.prefix, "bin", "temporal")), ui=False
    )
    try:
        yield env
    finally:
        await env.shutdown()


async def test_each_change_to_an_account_is_applied_in_the_trace_of_the_order_that_sent_it():
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))  # a test: every span at once
    tracer = provider.get_tracer("test")
    applied: dict[str, int] = {}  # order id -> the trace id its change was applied in
    executions = Executions()

    @activity.defn(name="apply_change")
    async def apply_change(change: AccountChange) -> None:
        if executions.first():
            applied[change.order_id] = trace.get_current_span().get_span_context().trace_id

    customer_id, task_queue = f"cust-{uuid.uuid4().hex[:8]}", f"loyalty-tracing-{uuid.uuid4().hex[:8]}"
    async with dev_server() as env:
        client = Client(
            env.client.service_client,
            namespace=env.client.namespace,
            data_converter=pydantic_data_converter,
            interceptors=[TracingInterceptor(tracer), SignalTracingInterceptor()],
        )
        async with create_worker(client, task_queue, [LoyaltyAccountWorkflow], [apply_change]):
            try:
                sent: dict[str, int] = {}
                for order_id in ("ord-1", "ord-2", "ord-3"):  # the first starts the account, the others signal it
                    with tracer.start_as_current_span(f"consume PaymentCompleted {order_id}") as span:
                        sent[order_id] = span.get_span_context().trace_id
                        change = AccountChange(kind="award", customer_id=customer_id, order_id=order_id,
                                               correlation_id=f"corr-{order_id}", amount=Decimal("10"))
                        await send_to_account(client, change, task_queue)

                async def all_applied() -> bool:
                    return len(applied) == len(sent)

                await eventually(all_applied, timeout=20, interval=0.05, what="three changes applied")
            finally:
                try:
                    await client.get_workflow_handle(f"loyalty-{customer_id}").terminate("test over")
                except RPCError:
                    pass
    assert len(set(sent.values())) == 3
    assert applied == sent, "a change was applied outside its order's trace"
    # The activity's spans, too, are the order's: each order's trace has its own RunActivity.
    run_activity = [s for s in spans.get_finished_spans() if s.name == "RunActivity:apply_change"]
    assert sorted(s.context.trace_id for s in run_activity) == sorted(sent.values())
