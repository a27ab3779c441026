"""The inbox on a real database (SQLite, and PostgreSQL when TEST_DATABASE_URL is set), records
handed to the consumer as Kafka would hand them, one per batch: a handler marked
database_first gets one transaction per event, whose first write (the inbox row) is also the
look-up; a duplicate or a failure changes nothing, as for any handler."""

from __future__ import annotations

import time

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import event, insert

from concerto_contracts.events import OrderCancelled
from concerto_messaging import EventConsumer, database_first
from concerto_messaging.tables import inbox


def as_delivered(record, offset: int = 0) -> ConsumerRecord:
    return ConsumerRecord(
        record.topic, 0, offset, int(time.time() * 1000), 0, record.key, record.value, None, len(record.key), len(record.value), record.headers
    )


def consumer_of(sessions, handler, group: str) -> EventConsumer:
    # Nothing here reaches the broker: no record is dead-lettered, and the loop never runs.
    return EventConsumer(
        group_id=group, topics=["unused"], handlers={OrderCancelled: handler}, sessions=sessions, producer=None, bootstrap_servers="127.0.0.1:1"
    )


class Transactions:
    """Each transaction's statements on the engine, BEGIN left out."""

    def __init__(self, engine) -> None:
        self.engine, self.seen = engine.sync_engine, []
        event.listen(self.engine, "begin", self._begin)
        event.listen(self.engine, "before_cursor_execute", self._statement)

    def _begin(self, connection) -> None:
        self.seen.append([])

    def _statement(self, connection, cursor, statement, parameters, context, executemany) -> None:
        if not statement.startswith("BEGIN"):
            self.seen[-1].append(statement.split(None, 1)[0].upper() + " " + statement.split()[2])

    def close(self) -> None:
        event.remove(self.engine, "begin", self._begin)
        event.remove(self.engine, "before_cursor_execute", self._statement)


async def test_a_database_first_handler_gets_one_transaction_per_event_and_a_duplicate_changes_nothing(engine, sessions, db, helpers):
    calls = []
    consumer = consumer_of(sessions, database_first(helpers.recording_handler(calls)), helpers.unique("group"))
    record = as_delivered(helpers.encode(helpers.cancelled()))
    transactions = Transactions(engine)
    try:
        assert await consumer.process_batch([record]) is None
        assert await consumer.process_batch([record]) is None  # delivered again
    finally:
        transactions.close()

    assert [len(calls)] == [1]
    assert await db.count(helpers.applied) == 1 and await db.count(inbox) == 1
    # The inbox row first (the look-up), then the handler's write; the second time, the row alone.
    assert transactions.seen == [["INSERT inbox", "INSERT test_applied"], ["INSERT inbox"]]


async def test_a_database_first_handler_that_fails_leaves_no_inbox_row_and_its_retry_applies_it_once(sessions, db, helpers):
    calls = []

    async def fail_first(envelope):
        if len(calls) == 1:
            raise ConnectionError("database hiccup")  # after the handler has written its row

    consumer = consumer_of(sessions, database_first(helpers.recording_handler(calls, before=fail_first)), helpers.unique("group"))
    record = as_delivered(helpers.encode(helpers.cancelled()))

    stopped = await consumer.process_batch([record])
    assert stopped is not None and isinstance(stopped.error, ConnectionError)
    assert await db.count(inbox) == 0 and await db.count(helpers.applied) == 0
    assert await consumer.process_batch([record]) is None
    assert len(calls) == 2 and await db.count(helpers.applied) == 1 and await db.count(inbox) == 1


@pytest.mark.parametrize("marked", [True, False])
async def test_an_event_in_the_inbox_already_is_not_handled_again_whichever_way_it_is_looked_up(sessions, db, helpers, marked):
    group, calls = helpers.unique("group"), []
    handler = helpers.recording_handler(calls)
    consumer = consumer_of(sessions, database_first(handler) if marked else handler, group)
    record = helpers.encode(helpers.cancelled())
    event_id = dict(record.headers)["ce_id"].decode()
    async with sessions() as session, session.begin():
        await session.execute(insert(inbox).values(consumer_group=group, event_id=event_id, event_type="concerto.order.OrderCancelled.v1"))

    assert await consumer.process_batch([as_delivered(record)]) is None
    assert calls == [] and await db.count(inbox) == 1
