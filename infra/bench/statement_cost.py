#!/usr/bin/env python3
"""What one database statement costs in CPU, layer by layer: the order service's own read
(`get_order`, an ORM session around a statement built per call, as every service does today),
then the same read with less and less of SQLAlchemy between the code and SQLite. Also one write
transaction as the services run it. No stack needed; prints a markdown table.

    .venv/bin/python infra/bench/statement_cost.py [--statements 3000]

Why it exists: the platform spends about a third of its services' CPU in SQLAlchemy and
aiosqlite (py-spy, docs/benchmarks.md), and this shows how much of that is the library layers
rather than SQLite itself: the next lever for the platform/floor ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import bindparam, insert, select, text

from concerto_order.adapters import db
from concerto_order.adapters.db import get_order, orders
from concerto_runtime.database import create_sessions, create_tables
from concerto_runtime.database import create_engine as create_service_engine

ORDER_ID = "order-statement-cost"
ROUNDS = 3


def new_order(order_id: str):
    return insert(orders).values(
        order_id=order_id, customer_id="c-1", status="PENDING", correlation_id="corr-1", request_fingerprint="f", submission={}, items=[]
    )


class Hops:
    """Counts the calls an aiosqlite connection hands to its thread: each is a queue put, a
    thread wake-up and a wake-up of the event loop."""

    def __init__(self) -> None:
        self.count = 0

    def watch(self, driver) -> None:
        handed_over = driver._execute  # every call of the connection and its cursors goes through it

        async def counted(*args, **kwargs):
            self.count += 1
            return await handed_over(*args, **kwargs)

        driver._execute = counted


async def cost(what: str, call: Callable[[], Awaitable[object]], count: int, hops: Hops) -> tuple[str, float, float]:
    """Median over a few rounds of CPU milliseconds per call (process time: the driver's thread
    too), and the thread hops per call."""
    rounds, hops_before = [], hops.count
    for _ in range(ROUNDS):
        began = time.process_time()
        for _ in range(count):
            await call()
        rounds.append((time.process_time() - began) / count * 1000)
    return what, statistics.median(rounds), (hops.count - hops_before) / (count * ROUNDS)


async def measure(path: Path, count: int) -> list[tuple[str, float, float]]:
    engine = create_service_engine(f"sqlite+aiosqlite:///{path}", one_connection=True)  # a service's writer, pragmas and all
    await create_tables(engine, db.tables)
    sessions, hops = create_sessions(engine), Hops()
    async with engine.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        hops.watch(driver)  # the pool holds this one connection: every row below uses it
    async with sessions() as session, session.begin():
        await session.execute(new_order(ORDER_ID))

    results = []
    async with sessions() as session:

        async def orm_session():
            await get_order(session, ORDER_ID)

        results.append(await cost("read: ORM session, statement built per call", orm_session, count, hops))

    async with engine.connect() as connection:
        prebuilt = select(orders).where(orders.c.order_id == bindparam("order_id"))

        async def core_built():
            (await connection.execute(select(orders).where(orders.c.order_id == ORDER_ID))).first()

        async def core_prebuilt():
            (await connection.execute(prebuilt, {"order_id": ORDER_ID})).first()

        async def aiosqlite_alone():
            cursor = await driver.execute("SELECT * FROM orders WHERE order_id = ?", (ORDER_ID,))
            await cursor.fetchone()

        results.append(await cost("read: Core connection, statement built per call", core_built, count, hops))
        results.append(await cost("read: Core connection, statement built once", core_prebuilt, count, hops))
        results.append(await cost("read: aiosqlite alone, SQL text", aiosqlite_alone, count, hops))
        await connection.rollback()

    with sqlite3.connect(path) as plain:

        async def sqlite_same_thread():
            plain.execute("SELECT * FROM orders WHERE order_id = ?", (ORDER_ID,)).fetchone()

        results.append(await cost("read: sqlite3 in the calling thread", sqlite_same_thread, count, hops))

    async def empty_transaction():
        async with sessions() as session, session.begin():
            await session.execute(text("SELECT 1"))

    written = 0

    async def insert_transaction():
        nonlocal written
        written += 1
        async with sessions() as session, session.begin():
            await session.execute(new_order(f"written-{written}"))

    writes = max(count // 5, 10)
    results.append(await cost("write transaction: BEGIN IMMEDIATE, SELECT 1, COMMIT (session)", empty_transaction, writes, hops))
    results.append(await cost("write transaction: BEGIN IMMEDIATE, one insert, COMMIT (session)", insert_transaction, writes, hops))
    await engine.dispose()
    return results


def table(results: list[tuple[str, float, float]]) -> str:
    lines = ["| statement | CPU ms per call | thread hops per call |", "|---|---|---|"]
    lines += [f"| {what} | {ms:.3f} | {hops:.0f} |" for what, ms, hops in results]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--statements", type=int, default=3000, help="calls per round of each kind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        results = asyncio.run(measure(Path(scratch) / "statement_cost.db", args.statements))
    print(table(results))


if __name__ == "__main__":
    main()
