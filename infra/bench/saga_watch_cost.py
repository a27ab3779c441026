#!/usr/bin/env python3
"""What the saga monitor costs per order: CPU seconds of each component's process group while
a batch of orders runs, once with the monitor's consumer paused (no projection, no SagaWatch)
and once with it running. Needs a running stack (`make up`); prints a markdown table.

    .venv/bin/python infra/bench/saga_watch_cost.py [--orders 40] [--data-dir .data]

A first, narrow figure for ADR 7; `make bench` (issue 7) is where throughput lives.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

import httpx

# Run as a script, this file's directory (infra/bench) is on the path: make bench's package.
from concerto_bench.bench import sample, stack_groups

GATEWAY = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080")
CUSTOMER = {"X-API-Key": os.environ.get("CONCERTO_API_KEY", "dev-key")}
ADMIN = {"X-API-Key": os.environ.get("CONCERTO_ADMIN_API_KEY", "dev-admin-key")}
COMPONENTS = ("temporal", "kafka", "order", "payment", "fulfillment", "loyalty", "monitor", "gateway")


def cpu_seconds(data: Path) -> dict[str, float]:
    """CPU seconds so far of each component's process group (read by make bench's helpers)."""
    return {name: cpu for name, (cpu, _) in sample(stack_groups(data, list(COMPONENTS))).items()}


def body(customer: str, sku: str) -> dict:
    return {
        "customer": {"id": customer, "email": "bench@example.com", "name": "Bench Mark"},
        "items": [{"sku": sku, "quantity": 1}],
        "shipping_address": {"name": "Bench Mark", "line1": "1 Load Lane", "city": "London", "postal_code": "N1 9GU", "country": "GB"},
        "payment": {"token": "tok_visa"},
        "promotion_codes": [],
        "channel": "web",
    }


async def until(probe, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await probe():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)


async def batch(http: httpx.AsyncClient, orders: int, label: str, watch_sagas: bool) -> tuple[list[str], float]:
    """Places the orders at once; returns their ids and how long until every one had ended."""
    sku, began = "CON-TUNER", time.monotonic()
    placed = await asyncio.gather(*(http.post("/api/v1/orders", json=body(f"bench-{label}-{i % 8}", sku), headers=CUSTOMER) for i in range(orders)))
    refused = [r for r in placed if r.status_code != 202]
    if refused:
        raise SystemExit(f"{len(refused)} of {orders} orders refused, e.g. {refused[0].status_code} {refused[0].text}")
    ids = [r.json()["order_id"] for r in placed]

    async def all_ended() -> bool:
        states = await asyncio.gather(*(http.get(f"/api/v1/orders/{i}", headers=CUSTOMER) for i in ids))
        return all(s.json()["status"] in ("COMPLETED", "CANCELLED") for s in states)

    await until(all_ended, 300, f"{label}: every order to end")
    took = time.monotonic() - began
    if watch_sagas:
        async def sagas_ended() -> bool:
            states = await asyncio.gather(*(http.get(f"/api/v1/orders/{i}/timeline", headers=CUSTOMER) for i in ids))
            return all(s.status_code == 200 and s.json()["status"] in ("COMPLETED", "COMPENSATED") for s in states)

        await until(sagas_ended, 300, f"{label}: every saga to end")
    return ids, took


async def measure(data: Path, orders: int) -> dict[str, dict[str, float]]:
    results = {}
    async with httpx.AsyncClient(base_url=GATEWAY, timeout=30) as http:
        # Paused, running, paused again: the second paused batch shows how much of a difference
        # is drift (a fuller database, a warmer cache) rather than the monitor.
        for label, paused in (("monitor paused", True), ("monitor running", False), ("paused again", True)):
            await http.put("/api/v1/admin/consumers/monitor", json={"paused": paused}, headers=ADMIN)
            before = cpu_seconds(data)
            ids, took = await batch(http, orders, label.split()[-1], watch_sagas=not paused)
            after = cpu_seconds(data)
            results[label] = {name: (after[name] - before.get(name, 0.0)) / orders for name in after} | {"wall": took}
            if paused:  # let the monitor catch up with this batch before the next one is measured
                await http.put("/api/v1/admin/consumers/monitor", json={}, headers=ADMIN)

                async def caught_up() -> bool:
                    states = await asyncio.gather(*(http.get(f"/api/v1/orders/{i}/timeline", headers=CUSTOMER) for i in ids))
                    return all(s.status_code == 200 and s.json()["status"] == "COMPLETED" for s in states)

                await until(caught_up, 300, "the monitor to catch up")
    return results


def table(results: dict[str, dict[str, float]], orders: int) -> str:
    labels = list(results)
    lines = [
        f"CPU milliseconds per order ({orders} orders at once, {os.cpu_count()} cores)",
        "",
        "| component | " + " | ".join(labels) + " | running - mean of paused |",
        "|---|" + "---|" * (len(labels) + 1),
    ]
    for name in COMPONENTS:
        if name in results[labels[0]]:
            values = [results[label][name] * 1000 for label in labels]
            paused = (values[0] + values[2]) / 2
            lines.append(f"| {name} | " + " | ".join(f"{v:.0f}" for v in values) + f" | {values[1] - paused:+.0f} |")
    lines.append("| seconds until every order had ended | " + " | ".join(f"{results[l]['wall']:.1f}" for l in labels) + " | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=40)
    parser.add_argument("--data-dir", type=Path, default=Path(".data"))
    args = parser.parse_args()
    print(table(asyncio.run(measure(args.data_dir.resolve(), args.orders)), args.orders))


if __name__ == "__main__":
    main()
