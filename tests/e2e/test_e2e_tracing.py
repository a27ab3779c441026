"""One order's whole story on the running stack (ADR 18): its trace in the trace viewer, Zipkin,
and its log lines from every component, merged by time.

The stack exports every span to Zipkin (infra/devstack/stack.py, unless STACK_TRACE_VIEWER=off);
Zipkin is asked through its own API, as its UI asks. The browser side (the console's trace link
opening Zipkin's trace page) is in test_e2e_console.py.

  ZIPKIN_URL      Zipkin (default http://127.0.0.1:9411; the `zipkin` fixture, conftest.py)
  STACK_DATA_DIR  the stack's data dir, whose logs/ `make logs` reads (default .data)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from concerto_runtime.testing import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]
STACK_DATA_DIR = Path(os.environ.get("STACK_DATA_DIR", REPO / ".data"))
ADMIN = {"X-API-Key": os.environ.get("CONCERTO_ADMIN_API_KEY", "dev-admin-key")}
# Every context an order passes through, and the edge, each under its own service name.
ORDER_SERVICES = {"concerto-gateway", "concerto-order", "concerto-payment", "concerto-fulfillment", "concerto-loyalty"}


async def completed_order(api) -> tuple[str, dict[str, Any]]:
    """A fresh customer's order, COMPLETED, and its timeline once the monitor has every event."""
    sku = (await api.product(prefer="CON-BATON"))["sku"]
    placed = await api.place(api.body(sku))
    assert (await api.terminal(placed.order_id))["status"] == "COMPLETED"

    async def complete_timeline() -> dict[str, Any] | None:
        timeline = await api.timeline(placed.order_id)
        seen = {event["type"] for event in (timeline or {}).get("events", [])}
        return timeline if {"PointsAwarded", "OrderCompleted"} <= seen else None

    return placed.order_id, await eventually(complete_timeline, timeout=30, interval=0.3, what="the order's timeline to be complete")


async def test_an_order_is_one_trace_in_zipkin_with_the_gateway_and_every_context(api, zipkin):
    _, timeline = await completed_order(api)

    # One order, one trace: every event of the saga was published in it, the points too (the
    # customer's loyalty account outlives the order, its activity does not take the account's).
    trace_id = timeline["trace_id"]
    assert trace_id and len(trace_id) == 32, timeline
    by_type = {event["type"]: event["trace_id"] for event in timeline["events"]}
    assert set(by_type.values()) == {trace_id}, by_type
    # The timeline carries the link to it in the viewer.
    assert timeline["trace_url"] == f"{zipkin.url}/zipkin/traces/{trace_id}", timeline["trace_url"]

    spans = await zipkin.trace(trace_id, ORDER_SERVICES)
    names = {(zipkin.service(span), span.get("name", "")) for span in spans}
    # The edge took the order, and each context consumed its events (the Kafka hops) in this trace.
    assert ("concerto-gateway", "post /api/v1/orders") in names, sorted(names)
    for service, event in [("concerto-payment", "OrderConfirmed"), ("concerto-loyalty", "PaymentCompleted")]:
        assert (service, f"consume {event}".lower()) in names, sorted(names)
    # The workflows' activities, and the call to the payment gateway, seen from both ends.
    assert any(service == "concerto-order" and name.startswith("runactivity") for service, name in names), sorted(names)
    assert {"concerto-cardpay", "concerto-paynext"} & {service for service, _ in names}, sorted(names)
    # The trace begins where the order came in: the gateway's call has no parent.
    (call,) = [span for span in spans if (zipkin.service(span), span.get("name")) == ("concerto-gateway", "post /api/v1/orders")]
    assert "parentId" not in call, call


async def test_an_orders_log_lines_from_every_context_merged_by_time(api):
    order_id, _ = await completed_order(api)

    async def logs() -> dict[str, Any] | None:
        response = await api.http.get(f"/api/v1/admin/orders/{order_id}/logs", headers=ADMIN)
        assert response.status_code == 200, response.text
        found = response.json()
        components = {line["component"] for line in found["lines"]}
        return found if {"order", "payment", "fulfillment", "loyalty"} <= components else None

    found = await eventually(logs, timeout=15, interval=0.5, what="log lines of the order from every context")
    times = [line["time"] for line in found["lines"]]
    assert times == sorted(times), "not merged by time"
    assert any("points" in (line["message"] or "") for line in found["lines"] if line["component"] == "loyalty"), found
    # The partner's key does not read them: they are the operator's.
    assert (await api.http.get(f"/api/v1/admin/orders/{order_id}/logs")).status_code == 403

    # `make logs ORDER=...` prints the same lines, one a line, from the stack's log files.
    printed = subprocess.run(
        [sys.executable, "-m", "concerto_observability.order_logs", order_id, "--logs", str(STACK_DATA_DIR / "logs")],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.splitlines()
    assert len(lines) >= len(found["lines"]) and [line[:23] for line in lines] == sorted(line[:23] for line in lines)
    assert {"order", "payment", "fulfillment", "loyalty"} <= {line.split()[2] for line in lines}, lines[:10]
