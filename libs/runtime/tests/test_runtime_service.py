"""The service defaults on the real Kafka broker and Temporal server: a context that only
reacts to events (no workflow, no activity: no Temporal worker, which Temporal would refuse)
starts, becomes ready, handles an event once, and shows its consumer's figures on /metrics."""

from __future__ import annotations

import sqlite3
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Column, Integer, MetaData, String, Table, insert

from concerto_contracts import Topics, encode
from concerto_contracts.events import OrderCompleted
from concerto_messaging import create_producer
from concerto_runtime import ServiceDefinition, create_app
from concerto_runtime.settings import Settings
from concerto_runtime.testing import eventually

pytestmark = pytest.mark.integration

tables = MetaData()
thanked = Table("thanked", tables, Column("id", Integer, primary_key=True), Column("order_id", String(64)))


def reacting_service(name: str) -> ServiceDefinition:
    async def thank(envelope, session) -> None:
        await session.execute(insert(thanked).values(order_id=envelope.event.order_id))

    return ServiceDefinition(name=name, http_port=0, task_queue=name, tables=tables, handlers=lambda runtime: {OrderCompleted: thank})


async def test_a_context_that_only_reacts_to_events_runs_without_a_temporal_worker(tmp_path):
    name = f"thanks-{uuid.uuid4().hex[:8]}"
    settings = Settings(CONCERTO_DATA_DIR=tmp_path)
    order_id = f"ord-{uuid.uuid4()}"
    with TestClient(create_app(reacting_service(name), settings)) as client:
        async def ready() -> bool:
            return client.get("/health/ready").status_code == 200

        await eventually(ready, timeout=60, what=f"{name} to be ready: {client.get('/health/ready').text}")

        producer = create_producer(settings.kafka_bootstrap_servers)
        await producer.start()
        try:
            event = OrderCompleted(order_id=order_id, customer_id="cust-1", total="10.00", currency="EUR")
            record = encode(event, source="/test", correlation_id=order_id)
            await producer.send_and_wait(Topics.ORDER, key=record.key, value=record.value, headers=record.headers)
        finally:
            await producer.stop()

        async def handled() -> bool:
            # Read beside the service (its engine lives on the test client's own event loop).
            with sqlite3.connect(tmp_path / f"{name}.db") as database:
                return (order_id,) in database.execute("SELECT order_id FROM thanked").fetchall()

        await eventually(handled, timeout=30, what="the event to be handled")
        metrics = client.get("/metrics").text
        assert f'concerto_consumer_lag_messages{{group="{name}-service"' in metrics
        assert not any(line.startswith("temporal_worker_start") and f'task_queue="{name}"' in line for line in metrics.splitlines())
