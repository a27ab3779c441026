"""Counts, in every service of a stack started with this directory on PYTHONPATH, the database
transactions, the SQL statements and the calls aiosqlite hands to its thread, and writes them
every second to $SQL_COUNT_DIR/<component>.json. A diagnostic for infra/bench/sql_per_order.py;
nothing else imports it.

    PYTHONPATH=infra/bench/sql_counter SQL_COUNT_DIR=.data/sql-count make up
"""

import collections
import json
import os
import threading
import time

counts: collections.Counter = collections.Counter()


def _count_everything(out: str, component: str) -> None:
    try:
        import aiosqlite.core
        from sqlalchemy import event
        from sqlalchemy.engine import Engine
    except ImportError:  # a component without a database (the gateway)
        return

    @event.listens_for(Engine, "begin")
    def _transaction(connection) -> None:
        counts["transactions"] += 1

    @event.listens_for(Engine, "before_cursor_execute")
    def _statement(connection, cursor, statement, parameters, context, executemany) -> None:
        counts["statements"] += 1
        counts[statement.split(None, 1)[0].upper()] += 1

    hand_over = aiosqlite.core.Connection._execute  # every call a connection or its cursors make

    async def counted(self, fn, *args, **kwargs):
        counts["thread hops"] += 1
        return await hand_over(self, fn, *args, **kwargs)

    aiosqlite.core.Connection._execute = counted

    def write() -> None:
        while True:
            time.sleep(1)
            with open(os.path.join(out, f"{component}.json"), "w") as file:
                json.dump(counts, file)

    threading.Thread(target=write, daemon=True, name="sql-counter").start()


if os.environ.get("SQL_COUNT_DIR") and os.environ.get("CONCERTO_STACK_COMPONENT"):
    os.makedirs(os.environ["SQL_COUNT_DIR"], exist_ok=True)
    _count_everything(os.environ["SQL_COUNT_DIR"], os.environ["CONCERTO_STACK_COMPONENT"])
