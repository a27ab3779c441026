#!/usr/bin/env python3
"""Database work per order, per service: transactions, SQL statements (by kind) and the calls
aiosqlite hands to its thread. Needs a stack started with the counter on its path:

    PYTHONPATH=infra/bench/sql_counter SQL_COUNT_DIR=.data/sql-count make up
    .venv/bin/python infra/bench/sql_per_order.py [--orders 50] [--count-dir .data/sql-count]

Places the orders at 2/s through the gateway with make bench's harness (1 in 10 declined, each
polled until terminal), waits for the stack to go quiet, and prints a markdown table of the
counters' growth divided by the orders. With infra/bench/statement_cost.py (what one call
costs) it shows where the platform's database CPU goes (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

import httpx

# Run as a script, this file's directory (infra/bench) is on the path: make bench's package.
from concerto_bench.bench import Order, place, platform_target, settle, stock_up

GATEWAY = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080")
COLUMNS = ("transactions", "statements", "BEGIN", "SELECT", "INSERT", "UPDATE", "DELETE", "thread hops")


def counters(directory: Path) -> dict[str, dict[str, int]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}


async def run_orders(count: int, rate: float, data: Path) -> list[Order]:
    target = platform_target(data, GATEWAY)
    orders = [Order(n, time.time(), "CANCELLED" if n % 10 == 9 else "COMPLETED") for n in range(count)]
    async with httpx.AsyncClient(timeout=30) as client:
        placing = []
        for order in orders:
            order.sent_at = time.time()
            placing.append(asyncio.create_task(place(client, target, order, time.time() + 120)))
            await asyncio.sleep(1 / rate)  # an open-loop pace, as make bench offers orders
        await asyncio.gather(*placing)
    await settle(target)
    return orders


def growth(before: dict, after: dict, orders: int) -> str:
    lines = ["| service | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    totals = dict.fromkeys(COLUMNS, 0.0)
    for service, now in after.items():
        per_order = [(now.get(c, 0) - before.get(service, {}).get(c, 0)) / orders for c in COLUMNS]
        if not any(per_order):
            continue
        for column, value in zip(COLUMNS, per_order):
            totals[column] += value
        lines.append(f"| {service} | " + " | ".join(f"{value:.1f}" for value in per_order) + " |")
    lines.append("| **all** | " + " | ".join(f"**{totals[c]:.1f}**" for c in COLUMNS) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=50)
    parser.add_argument("--rate", type=float, default=2.0, help="orders per second")
    parser.add_argument("--count-dir", type=Path, default=Path(".data/sql-count"))
    parser.add_argument("--data-dir", type=Path, default=Path(".data"), help="the stack's data dir (for its process groups)")
    args = parser.parse_args()
    if not any(args.count_dir.glob("*.json")):
        raise SystemExit(f"no counters in {args.count_dir}: start the stack as this script's docstring says")
    stock_up(GATEWAY)
    asyncio.run(run_orders(5, args.rate, args.data_dir.resolve()))  # warm-up, not counted
    time.sleep(1.5)  # the counters are written every second
    before = counters(args.count_dir)
    orders = asyncio.run(run_orders(args.orders, args.rate, args.data_dir.resolve()))
    failed = [f"{o.n}: {o.error}" for o in orders if o.error]
    if failed:
        raise SystemExit(f"{len(failed)} orders did not end as expected, e.g. {failed[:3]}")
    time.sleep(1.5)
    print(f"Per order, {args.orders} orders at {args.rate}/s, 1 in 10 declined:\n")
    print(growth(before, counters(args.count_dir), args.orders))


if __name__ == "__main__":
    main()
