"""`make load`'s locustfile (infra/load/locustfile.py), headless for ten seconds against the stack:
one user of each kind (two buyers), and not one failure. Locust counts as failures what the
locustfile says a customer should never see: an unexpected status, an order that ends otherwise
than its card or its cancellation says, or one that does not end. Every order it placed joins
the session's orders, so the last test checks them against the payment gateways' books too."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

# As in conftest.py (a test module does not import it: pytest loads it once, as a plugin).
GATEWAY_URL = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080").rstrip("/")

LOCUSTFILE = Path(__file__).resolve().parents[2] / "infra" / "load" / "locustfile.py"
USERS = {"Browser": 1, "Buyer": 2, "ChangeOfMind": 1}
# Every kind of request the users above make at least once in ten seconds: each buyer's visit
# and each change of mind go through all their steps in order.
KINDS = [
    ("POST", "sign in (dev issuer /token)"),
    ("GET", "/api/v1/products"),
    ("POST", "/api/v1/orders"),
    ("GET", "/api/v1/orders/[id]"),
    ("POST", "/api/v1/orders/[id]/cancel"),
    ("GET", "/api/v1/orders (mine)"),
    ("GET", "/api/v1/customers/[id]/loyalty"),
    ("ORDER", "placed → ended: cancel asked"),
]


def summary(stats: list[dict]) -> str:
    rows = sorted((s["method"] or "", s["name"], s["num_requests"], s["num_failures"]) for s in stats)
    return "\n".join(f"  {method:6} {name:45} {requests:5} requests {failures:3} failures" for method, name, requests, failures in rows)


async def test_ten_seconds_of_demo_load_through_the_gateway_fail_nothing(api, placed_orders, tmp_path):
    before = await api.figures()
    orders_log = tmp_path / "orders.log"
    config_users = json.dumps([{"user_class_name": name, "fixed_count": count} for name, count in USERS.items()])
    users = str(sum(USERS.values()))
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", GATEWAY_URL,
        "--headless", "-u", users, "-r", users, "-t", "10s", "--only-summary", "--exit-code-on-error", "1",
        # At the time limit each user finishes the journey it is on (its order ends), then stops.
        "--stop-timeout", "30", "--config-users", config_users,
        "--csv", str(tmp_path / "load"), "--json-file", str(tmp_path / "load"),
    ]  # fmt: skip
    locust = await asyncio.create_subprocess_exec(
        *command, env={**os.environ, "LOAD_ORDER_LOG": str(orders_log)}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output = (await asyncio.wait_for(locust.communicate(), timeout=75))[0].decode(errors="replace")
    except TimeoutError:
        locust.kill()
        await locust.wait()
        raise AssertionError("locust did not end within 75 s of a 10 s run") from None

    order_ids = orders_log.read_text().split() if orders_log.exists() else []
    for order_id in order_ids:
        placed_orders.record(order_id)
    stats = json.loads((tmp_path / "load.json").read_text()) if (tmp_path / "load.json").exists() else []
    failures_csv = tmp_path / "load_failures.csv"
    rows = csv.DictReader(failures_csv.read_text().splitlines()) if failures_csv.exists() else []
    failures = [f"{row['Method']} {row['Name']}: {row['Error']} x{row['Occurrences']}" for row in rows]
    report = f"locust exited {locust.returncode}\n{summary(stats)}\nfailures: {failures}\n--- its output ---\n{output[-4000:]}"
    print(report)

    assert locust.returncode == 0, report
    counts = {(s["method"], s["name"]): (s["num_requests"], s["num_failures"]) for s in stats}
    missing = [kind for kind in KINDS if counts.get(kind, (0, 0))[0] == 0]
    assert not missing, f"no request of these kinds: {missing}\n{report}"
    assert sum(requests for (method, _), (requests, _) in counts.items() if method == "ORDER") == len(order_ids) > 0, report
    assert all(failed == 0 for _, failed in counts.values()), report

    # Each user followed its orders to their end; the order context agrees, and the console's
    # key figures (the operator's view of the load) counted them.
    ended = await asyncio.gather(*(api.order(order_id) for order_id in order_ids))
    assert all(order["status"] in api.TERMINAL for order in ended), [(o["order_id"], o["status"]) for o in ended]
    after = await api.figures()
    assert after["orders_placed"] >= before["orders_placed"] + len(order_ids), (before, after)
