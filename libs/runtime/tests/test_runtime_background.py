"""A service's background loops never end silently: on the real Kafka broker and Temporal
server, a service whose own loop fails on its first two runs has it started again, says so in
its readiness check meanwhile, counts the restarts on /metrics, and is ready again once the loop
runs."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import MetaData

from concerto_runtime import ServiceDefinition, create_app
from concerto_runtime.settings import Settings
from concerto_runtime.testing import eventually

pytestmark = pytest.mark.integration


class FailsTwice:
    """A background loop whose first two runs fail at once; the third runs until stopped."""

    ERROR = "injected: the loop's database went away"

    def __init__(self) -> None:
        self.runs = 0

    async def run(self) -> None:
        self.runs += 1
        if self.runs <= 2:
            raise ConnectionError(self.ERROR)
        await asyncio.Event().wait()


def samples(metrics: str, name: str, loop: str) -> list[float]:
    return [
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == name and sample.labels.get("loop") == loop
    ]


async def test_a_failing_background_loop_is_started_again_and_shown_in_readiness_and_metrics(tmp_path):
    name, loop_name = f"flaky-{uuid.uuid4().hex[:8]}", f"flaky loop {uuid.uuid4().hex[:8]}"
    loop = FailsTwice()
    definition = ServiceDefinition(name=name, http_port=0, task_queue=name, tables=MetaData(), background=lambda runtime: {loop_name: loop.run})
    seen_in_readiness: list[str] = []
    with TestClient(create_app(definition, Settings(CONCERTO_DATA_DIR=tmp_path))) as client:

        async def readiness_names_the_failing_loop() -> bool:
            answer = client.get("/health/ready")
            if answer.status_code == 503 and loop_name in answer.json().get("detail", ""):
                seen_in_readiness.append(answer.json()["detail"])
            return bool(seen_in_readiness)

        # While the loop waits to start again (1 s, then 2 s) and just after, the service is not ready.
        await eventually(readiness_names_the_failing_loop, timeout=30, interval=0.05, what="readiness to name the failing loop")
        assert FailsTwice.ERROR in seen_in_readiness[0]

        async def running_again() -> bool:
            return loop.runs == 3

        await eventually(running_again, timeout=30, what="the loop's third run")
        restarts = samples(client.get("/metrics").text, "concerto_background_restarts_total", loop_name)
        assert restarts == [2.0]

        async def ready() -> bool:
            return client.get("/health/ready").status_code == 200

        await eventually(ready, timeout=60, what=f"{name} to be ready again: {client.get('/health/ready').text}")
        assert samples(client.get("/metrics").text, "concerto_background_loops_failing", loop_name) == [0.0]
        assert loop.runs == 3  # running, not started again meanwhile
