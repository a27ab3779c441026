"""The floor end to end: its six processes on the real Kafka broker and Temporal dev server.

    PYTHONPATH=infra/bench .venv/bin/pytest infra/bench/tests/test_floor.py -x -q

Skipped when nothing listens on 127.0.0.1:9092 (Kafka) or 127.0.0.1:7233 (Temporal). The floor
runs under its own prefix (topics, task queues, groups, workflow ids), so a benchmark using the
same broker and server at the same time is not disturbed; its topics are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from temporalio.client import Client
from temporalio.service import RPCError

from concerto_bench.floor import PORTS, PUBLISHERS, Names

REPO = Path(__file__).resolve().parents[3]
KAFKA, TEMPORAL = ("127.0.0.1", 9092), ("127.0.0.1", 7233)


def reachable(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=1).close()
        return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def order_body(customer: str, token: str) -> dict:
    return {
        "customer": {"id": customer, "email": f"{customer}@example.com", "name": "Floor Test"},
        "items": [{"sku": "CON-BATON", "quantity": 1}],
        "shipping_address": {"name": "Floor Test", "line1": "1 Load Lane", "city": "London", "postal_code": "N1 9GU", "country": "GB"},
        "payment": {"token": token},
        "promotion_codes": [],
        "channel": "web",
    }


async def wait_until(probe, *, deadline: float, what: str):
    """Poll `probe` until it returns something truthy; fail at `deadline` (time.monotonic())."""
    last = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}; last: {last!r}")


async def test_three_orders_through_the_floor(tmp_path: Path) -> None:
    for name, address in (("Kafka", KAFKA), ("Temporal", TEMPORAL)):
        if not reachable(address):
            reason = f"{name} is not reachable on {address[0]}:{address[1]} (start it: infra/devstack/stack.py up --only kafka,temporal)"
            print(reason)
            pytest.skip(reason)

    names = Names(f"floortest-{uuid.uuid4().hex[:8]}")
    ports = {context: free_port() for context in PORTS}
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "infra" / "bench"),
        "PYTHONUNBUFFERED": "1",
        "FLOOR_PREFIX": names.prefix,
        "FLOOR_ORDER_URL": f"http://127.0.0.1:{ports['order']}",
        "FLOOR_PAYMENT_URL": f"http://127.0.0.1:{ports['payment']}",
    }
    processes: dict[str, subprocess.Popen] = {}
    customers = [f"{names.prefix}-customer-{i}" for i in range(3)]
    try:
        for context, port in ports.items():
            with open(tmp_path / f"{context}.log", "wb") as log:
                processes[context] = subprocess.Popen(
                    [sys.executable, "-m", "concerto_bench.floor", context, "--port", str(port)],
                    stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True,
                )

        async with httpx.AsyncClient(timeout=5) as http:

            async def all_ready() -> bool:
                for context, port in ports.items():
                    if processes[context].poll() is not None:
                        pytest.fail(f"floor {context} exited:\n{(tmp_path / f'{context}.log').read_text()}")
                    try:
                        if (await http.get(f"http://127.0.0.1:{port}/health/ready")).status_code != 200:
                            return False
                    except httpx.HTTPError:
                        return False
                return True

            started = time.monotonic()
            await wait_until(all_ready, deadline=started + 90, what="every floor process to be ready")
            print(f"\nfloor ready in {time.monotonic() - started:.1f}s")

            edge = f"http://127.0.0.1:{ports['edge']}/api/v1/orders"
            tokens = ["tok_visa", "tok_visa", "tok_chargeDeclined"]
            placed = time.monotonic()
            order_ids = []
            for customer, token in zip(customers, tokens):
                answer = await http.post(edge, json=order_body(customer, token))
                assert answer.status_code == 202, answer.text
                assert answer.json()["status"] == "PENDING"
                order_ids.append(answer.json()["order_id"])

            async def statuses() -> list[str] | None:
                views = [(await http.get(f"{edge}/{order_id}")).json() for order_id in order_ids]
                found = [view["status"] for view in views]
                return found if all(s in ("COMPLETED", "CANCELLED") for s in found) else None

            final = await wait_until(statuses, deadline=placed + 60, what="the three orders to end")
            print(f"orders ended {final} in {time.monotonic() - placed:.1f}s")
            assert final == ["COMPLETED", "COMPLETED", "CANCELLED"]

            view = (await http.get(f"{edge}/{order_ids[0]}")).json()
            assert view["order_id"] == order_ids[0] and view["updated_at"].endswith("+00:00")
            starts = (await http.get(f"http://127.0.0.1:{ports['order']}/health/ready")).json()["starts"]
            print(f"order workflow starts: {starts} (eager: the dev server handed the first task straight back)")
    finally:
        for process in processes.values():
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        await _clean_up(names, customers)


async def _clean_up(names: Names, customers: list[str]) -> None:
    """Leave the shared broker and server as they were: the test's topics and its (endless)
    loyalty account workflows go. Best effort: never hides the test's own outcome."""
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=f"{KAFKA[0]}:{KAFKA[1]}")
        await admin.start()
        try:
            await admin.delete_topics([names.topic(c) for c in PUBLISHERS])
        finally:
            await admin.close()
    except Exception as exc:
        print(f"could not delete the test's topics: {exc!r}")
    try:
        client = await Client.connect(f"{TEMPORAL[0]}:{TEMPORAL[1]}")
        for customer in customers:
            try:
                await client.get_workflow_handle(names.workflow_id("loyalty", customer)).terminate("floor test done")
            except RPCError:
                pass  # never started (the declined order's customer)
    except Exception as exc:
        print(f"could not terminate the test's loyalty workflows: {exc!r}")
