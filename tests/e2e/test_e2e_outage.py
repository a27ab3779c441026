"""Temporal away: the shop keeps taking orders. The order row is the request to start its
workflow (ADR 9), so an order placed while Temporal is down gets its 202, and its workflow
starts once Temporal is back, even if the order service crashed in between. The test stops and starts the test stack's real Temporal dev
server, so it needs the stack's data dir (STACK_DATA_DIR, which `make test` sets)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from concerto_runtime.testing import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
STACK_DATA_DIR = os.environ.get("STACK_DATA_DIR")


def crash(component: str) -> None:
    """SIGKILL to the component's process group: no shutdown, nothing flushed."""
    os.killpg(int((Path(STACK_DATA_DIR) / "run" / f"{component}.pid").read_text()), signal.SIGKILL)


def stack(command: str, component: str) -> None:
    launcher = [sys.executable, str(REPO / "infra" / "devstack" / "stack.py"), command, "--data-dir", STACK_DATA_DIR, "--only", component]
    subprocess.run(launcher, check=True, timeout=120)


class TemporalOutage:
    """Stops the stack's Temporal dev server; `end()` starts it again, and leaving the `with`
    does, whatever happened."""

    def __init__(self) -> None:
        self.down = False

    def __enter__(self) -> TemporalOutage:
        stack("down", "temporal")
        self.down = True
        return self

    def end(self) -> None:
        if self.down:
            stack("up", "temporal")
            self.down = False

    def __exit__(self, *exc_info) -> None:
        self.end()


@pytest.mark.skipif(not STACK_DATA_DIR, reason="STACK_DATA_DIR is not set: this test stops and starts the stack's Temporal (make test sets it)")
async def test_orders_placed_while_temporal_is_down_are_accepted_and_complete(api):
    product = await api.product(prefer="CON-METRONOME")

    with TemporalOutage() as outage:
        placed = [await api.place(api.body(product["sku"], token="tok_visa")) for _ in range(3)]

        assert [p.status for p in placed] == ["PENDING"] * 3, "accepted, waiting for their workflows"
        for p in placed:
            assert (await api.order(p.order_id))["status"] == "PENDING"
        # Cancelling needs the order's workflow: not now, and the client is told when to retry.
        refused = await api.cancel(placed[0].order_id)
        api.problem(refused, 503)
        assert refused.headers.get("Retry-After"), refused.headers
        # The process that took the orders dies before Temporal is back: the orders' rows are
        # all that is left of the requests to start their workflows.
        crash("order")
        outage.end()
    stack("up", "order")

    async def ready() -> bool:
        return (await api.http.get("/health/ready")).status_code == 200

    await eventually(ready, timeout=60, interval=0.5, what="the stack ready again after Temporal's restart")
    for p in placed:
        order = await api.terminal(p.order_id, timeout=60)
        assert order["status"] == "COMPLETED", order
