"""For property tests: one order's events arriving in any order, any number of times, in batches
of any size, handed to the real EventConsumer (decode, inbox, handler, one transaction a batch)
just as Kafka hands it records. Test-only: it needs hypothesis, a development dependency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiokafka import ConsumerRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from concerto_contracts import DomainEvent, encode
from concerto_contracts.values import CustomerSnapshot, LineItem, OrderSnapshot, ShippingAddress, Totals
from concerto_messaging import EventConsumer, Handler
from concerto_messaging import metadata as messaging_metadata
from concerto_runtime.database import create_sessions
from concerto_runtime.testing import fresh_database, time_skipping_environment


@dataclass(frozen=True)
class Arrival:
    """Which event comes when: indexes into the causal list, a repeat being a redelivery of the
    same record (same event id); and after which delivery a new batch starts."""

    deliveries: tuple[int, ...]
    new_batch_after: frozenset[int]

    def describe(self, names: Sequence[str]) -> str:
        return " ".join(names[i] + (" |" if n in self.new_batch_after else "") for n, i in enumerate(self.deliveries))


@st.composite
def arrivals(draw, count: int, most_copies: int = 3) -> Arrival:
    """Every event at least once and at most `most_copies` times, in any order, cut anywhere."""
    copies = draw(st.lists(st.integers(1, most_copies), min_size=count, max_size=count))
    deliveries = draw(st.permutations([index for index, times in enumerate(copies) for _ in range(times)]))
    cuts = draw(st.sets(st.integers(0, len(deliveries) - 1)))
    return Arrival(tuple(deliveries), frozenset(cuts))


def causal(count: int) -> Arrival:
    """The order the events were caused in, each once, one at a time."""
    return Arrival(tuple(range(count)), frozenset(range(count)))


def order_of_batons(order_id: str, *, customer_id: str = "cust-42", quantity: int = 1) -> OrderSnapshot:
    """The order the events carry: `quantity` conductor's batons at 24.00 EUR, 20 % tax, 4.99 shipping."""
    subtotal = Decimal("24.00") * quantity
    tax = subtotal * Decimal("0.20")
    return OrderSnapshot(
        order_id=order_id,
        customer=CustomerSnapshot(id=customer_id, first_order=False, email_masked="a***@example.com"),
        items=[LineItem(sku="CON-BATON", name="Conductor's baton", quantity=quantity, unit_price=Decimal("24.00"), weight_grams=50)],
        shipping_address=ShippingAddress(name="Ada Lovelace", line1="12 Analytical Way", city="London", postal_code="N1 9GU", country="GB"),
        totals=Totals(subtotal=subtotal, discount=Decimal("0.00"), tax=tax, shipping=Decimal("4.99"), total=subtotal + tax + Decimal("4.99"), currency="EUR"),
        channel="web",
    )  # fmt: skip


def on_the_wire(event: DomainEvent, *, source: str, correlation_id: str, offset: int = 0) -> ConsumerRecord:
    """The event as a relay puts it on Kafka (a binary-mode CloudEvent), as a consumer reads it."""
    record = encode(event, source=source, correlation_id=correlation_id)
    return ConsumerRecord(
        topic=record.topic, partition=0, offset=offset, timestamp=int(time.time() * 1000), timestamp_type=0,
        key=record.key, value=record.value, checksum=None, serialized_key_size=len(record.key),
        serialized_value_size=len(record.value), headers=record.headers,
    )  # fmt: skip


async def deliver(consumer: EventConsumer, records: Sequence[ConsumerRecord], arrival: Arrival) -> None:
    """Hands the records over as `arrival` says. A batch holds one topic's records (a partition's),
    so it also ends where the topic changes. Fails if a handler fails."""
    batch: list[ConsumerRecord] = []
    for n, index in enumerate(arrival.deliveries):
        batch.append(records[index])
        following = arrival.deliveries[n + 1] if n + 1 < len(arrival.deliveries) else None
        if n in arrival.new_batch_after or following is None or records[following].topic != records[index].topic:
            stopped = await consumer.process_batch(batch)
            if stopped is not None:
                raise AssertionError(f"the handler failed on {batch[stopped.index].headers}: {stopped.error!r}") from stopped.error
            batch = []


@dataclass
class ContextUnderTest:
    """A context's real consumer and handlers on a SQLite database of its own, with a Temporal
    test server for what the handlers start or signal. `run` runs a coroutine on its event loop
    (hypothesis calls the test synchronously, example after example)."""

    run: Callable[[Awaitable[Any]], Any]
    sessions: async_sessionmaker[AsyncSession]
    client: Client
    consumer: EventConsumer


@contextmanager
def context_under_test(
    directory: Path, tables: MetaData, *, group_id: str, handlers: Callable[[Client], dict[type[DomainEvent], Handler]]
) -> Iterator[ContextUnderTest]:
    with asyncio.Runner() as runner:
        environment = time_skipping_environment()
        client = runner.run(environment.__aenter__()).client
        database = fresh_database("sqlite", directory, messaging_metadata, tables)
        engine = runner.run(database.__aenter__())
        sessions = create_sessions(engine)

        async def consumer() -> EventConsumer:  # made on the loop: aiokafka wants a running one
            return EventConsumer(
                group_id=group_id, topics=[], handlers=handlers(client), sessions=sessions, producer=None,
                bootstrap_servers="127.0.0.1:1",  # never contacted: records are handed over directly
            )  # fmt: skip

        try:
            yield ContextUnderTest(runner.run, sessions, client, runner.run(consumer()))
        finally:
            runner.run(database.__aexit__(None, None, None))
            runner.run(environment.__aexit__(None, None, None))


def every_arrival_ends_as_caused(
    context: ContextUnderTest, outcome: Callable[[Arrival], Awaitable[Any]], names: Sequence[str], *, examples: int = 25
) -> Any:
    """The property: for every arrival of the events (any order, redeliveries, any batching),
    `outcome` (the context's state after it, in terms that hold for any order id) equals the
    outcome of the causal order. Returns that outcome, for the test to say what it should be."""
    expected = context.run(outcome(causal(len(names))))

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(arrivals(len(names)))
    def property_holds(arrival: Arrival) -> None:
        assert context.run(outcome(arrival)) == expected, f"arrived as {arrival.describe(names)}"

    property_holds()
    return expected
