#!/usr/bin/env python3
"""`make chaos`: orders at a steady rate while components die, events come twice and poison
arrives, then a table of what must still hold. Its own stack, two replicas of each context.

    make chaos                       # the full run (a few minutes)
    CHAOS_ARGS=--short make chaos    # the variant `make test` runs

What happens, on a fresh stack under .data/chaos (REPLICAS=2):
- orders are placed at a steady rate through the gateway (1 in 10 declined, 1 in 12 cancelled
  by the customer right after placing it, one sku running out of stock on the way), each with
  its own Idempotency-Key, retried on 503 or a refused connection as a careful client would;
- meanwhile, in turn: each component is killed with SIGKILL (every context's first or second
  instance, Kafka, Temporal, a payment simulator), held down a few seconds, and started again;
  records already consumed are produced again onto their topics; poison records (not a
  CloudEvent, an unknown type, invalid data) are mixed in; a relay replica claims outbox rows
  and is killed before it sends them (`relay`: its orders' later events must wait, then follow
  in order); cardpay refuses every call for a minute (`cardpay-outage:60`: charges fail over,
  its refunds wait and then go through); both providers refuse refunds for good until one saga
  is COMPENSATION_FAILED, and the harness, as the operator, retries each such refund
  (`refunds-refused`); SagaWatch's run is terminated (`sagawatch`: the monitor must start it
  again);
- then the run waits for every order to end, and checks the books.

Every row of the table is an invariant; the exit status is 1 if any does not hold.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import select
from temporalio.client import Client as TemporalClient
from temporalio.client import WorkflowExecutionStatus

from concerto_messaging import OutboxRelay
from concerto_messaging.tables import outbox
from concerto_monitor.workflows.inputs import WATCH_WORKFLOW_ID
from concerto_runtime.database import open_database

REPO = Path(__file__).resolve().parents[2]
STACK = [sys.executable, str(REPO / "infra" / "devstack" / "stack.py")]
GATEWAY = "http://127.0.0.1:8080"
KAFKA = "127.0.0.1:9092"
TEMPORAL = "127.0.0.1:7233"
CUSTOMER = {"X-API-Key": os.environ.get("CONCERTO_API_KEY", "dev-key")}
ADMIN = {"X-API-Key": os.environ.get("CONCERTO_ADMIN_API_KEY", "dev-admin-key")}
CONTEXTS = ["order", "payment", "fulfillment", "loyalty"]
DOMAIN_TOPICS = [f"{context}.events.v1" for context in CONTEXTS]
SKUS = ["CON-BATON", "CON-SCORE-B5", "CON-METRONOME", "CON-STAND", "CON-TUNER"]
# Plenty of everything but one sku, which runs out during the run: its later orders are paid,
# then find no stock, and must be refunded.
STOCK = dict.fromkeys(SKUS, 100_000) | {"CON-STAND": 12}
TERMINAL = {"COMPLETED", "CANCELLED"}


def say(message: str) -> None:
    print(f"[chaos] {message}", flush=True)


# --- the stack ------------------------------------------------------------------------------


class Stack:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.env = os.environ | {"REPLICAS": "2"}

    def run(self, command: str, only: str | None = None) -> None:
        argv = [*STACK, command, "--data-dir", str(self.data), *(["--only", only] if only else [])]
        subprocess.run(argv, check=True, env=self.env, stdout=subprocess.DEVNULL if only else None, timeout=300)

    def kill(self, component: str) -> None:
        """SIGKILL to the component's process group, as a crash: nothing shuts down cleanly."""
        pid = int((self.data / "run" / f"{component}.pid").read_text())
        os.killpg(pid, signal.SIGKILL)


# --- the load -------------------------------------------------------------------------------


@dataclass
class Order:
    n: int
    declined: bool
    key: str = field(default_factory=lambda: f"chaos-{uuid.uuid4().hex}")
    order_id: str | None = None
    refused: str | None = None
    final: dict | None = None


def body(order: Order) -> dict:
    return {
        "customer": {"id": f"chaos-{order.n % 20}", "email": "chaos@example.com", "name": "Chaos Monkey"},
        "items": [{"sku": SKUS[order.n % len(SKUS)], "quantity": 1 + order.n % 3}],
        "shipping_address": {"name": "Chaos Monkey", "line1": "1 Fault Line", "city": "London", "postal_code": "N1 9GU", "country": "GB"},
        "payment": {"token": "tok_chargeDeclined" if order.declined else "tok_visa"},
        "promotion_codes": [],
        "channel": "web",
    }


async def place(client: httpx.AsyncClient, order: Order, give_up_after: float = 60) -> None:
    """POST until a 202, for up to a minute: the same key, so a retry is the same order."""
    deadline = time.monotonic() + give_up_after
    while True:
        try:
            answer = await client.post("/api/v1/orders", json=body(order), headers=CUSTOMER | {"Idempotency-Key": order.key})
            if answer.status_code == 202:
                order.order_id = answer.json()["order_id"]
                if order.n % 12 == 5:  # the customer changes their mind (409 past the pivot is fine)
                    await client.post(f"/api/v1/orders/{order.order_id}/cancel", headers=CUSTOMER)
                return
            reason = f"{answer.status_code} {answer.text[:200]}"
            if answer.status_code not in (429, 502, 503):
                order.refused = reason
                return
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            order.refused = reason
            return
        await asyncio.sleep(1)  # a client's back-off between retries


async def offer(client: httpx.AsyncClient, orders: list[Order], rate: float, stop: asyncio.Event) -> None:
    placing = []
    while not stop.is_set():
        order = Order(len(orders), declined=len(orders) % 10 == 9)
        orders.append(order)
        placing.append(asyncio.create_task(place(client, order)))
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*placing)


# --- faults on the bus ----------------------------------------------------------------------


async def replay_and_poison(count: int) -> int:
    """Produce again `count` records already on the domain topics (their consumers have seen
    them: the inbox must make the second delivery a no-op), and one of each kind of poison
    per topic. Returns how many poison records went out."""
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, group_id=None, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all")
    await consumer.start()
    await producer.start()
    poison = 0
    try:
        partitions = [TopicPartition(topic, p) for topic in DOMAIN_TOPICS for p in (await producer.partitions_for(topic))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen = [record for batch in (await consumer.getmany(timeout_ms=3000, max_records=count)).values() for record in batch]
        for record in seen[:count]:
            await producer.send_and_wait(record.topic, key=record.key, value=record.value, headers=list(record.headers))
        for topic in DOMAIN_TOPICS:
            event_id = f"poison-{uuid.uuid4().hex[:12]}"
            headers = [("ce_specversion", b"1.0"), ("ce_id", event_id.encode()), ("ce_source", b"/chaos"), ("ce_time", b"2026-01-01T00:00:00Z"),
                       ("ce_correlationid", b"chaos"), ("content-type", b"application/json")]  # fmt: skip
            context = topic.split(".")[0].capitalize()
            kinds = [
                ([], b"not a cloud event"),  # no headers at all
                ([*headers, ("ce_type", f"concerto.{topic.split('.')[0]}.SomethingNew.v1".encode())], b"{}"),  # a type from the future
                # A known type with data that does not fit it.
                ([*headers, ("ce_type", f"concerto.{topic.split('.')[0]}.{KNOWN_TYPE[topic]}.v1".encode())], b'{"order_id": 7}'),
            ]
            for headers_of_kind, value in kinds:
                await producer.send_and_wait(topic, key=b"poison-" + context.encode(), value=value, headers=headers_of_kind)
                poison += 1
    finally:
        await consumer.stop()
        await producer.stop()
    return poison


async def dying_relay(data: Path, window: float = 10.0, lease: float = 10.0) -> tuple[int, int]:
    """A relay replica of the order context that claims rows from its outbox as they come, for
    `window` seconds, and is killed before it sends any: the real claim, then nothing. Their
    orders' later events must wait for the lease to run out, then follow in order. Returns how
    many rows it held, of how many orders."""
    database = open_database(f"sqlite+aiosqlite:///{data / 'order'}.db")
    held: list[Any] = []
    try:
        relay = OutboxRelay(database.sessions, producer=None, batch_size=5, lease=timedelta(seconds=lease))
        deadline = time.monotonic() + window
        while time.monotonic() < deadline:
            held += await relay.claim()
            await asyncio.sleep(0.01)
    finally:
        await database.dispose()
    return len(held), len({row.key for row in held})


async def outboxes(data: Path) -> dict[str, list[Any]]:
    """Every context's outbox rows (published ones are kept a day: the whole run), oldest first."""
    rows = {}
    for context in CONTEXTS:
        database = open_database(f"sqlite+aiosqlite:///{data / context}.db")
        try:
            async with database.read_sessions() as session:
                rows[context] = list((await session.execute(select(outbox).order_by(outbox.c.id))).all())
        finally:
            await database.dispose()
    return rows


async def crossed(rows: dict[str, list[Any]]) -> list[str]:
    """Orders whose events reached Kafka in another order than their context wrote them (the
    first time each event is on the topic: replays come again later, and do not count)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, group_id=None, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA)  # for the topics' partitions
    await consumer.start()
    await producer.start()
    try:
        partitions = [TopicPartition(topic, p) for topic in DOMAIN_TOPICS for p in await producer.partitions_for(topic)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        arrived: dict[tuple[str, bytes], list[str]] = defaultdict(list)
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                for record in batch:
                    event_id = dict(record.headers).get("ce_id", b"").decode()
                    if event_id not in arrived[(record.topic, record.key)]:
                        arrived[(record.topic, record.key)].append(event_id)
    finally:
        await consumer.stop()
        await producer.stop()
    amiss = []
    for context_rows in rows.values():
        written: dict[tuple[str, bytes], list[str]] = defaultdict(list)
        for row in context_rows:
            written[(row.topic, row.key)].append(row.event_id)
        for (topic, key), event_ids in written.items():
            on_kafka = [event_id for event_id in arrived[(topic, key)] if event_id in set(event_ids)]
            if on_kafka != event_ids[: len(on_kafka)]:
                amiss.append(f"{key.decode(errors='replace')} on {topic}")
    return amiss


KNOWN_TYPE = {
    "order.events.v1": "OrderConfirmed",
    "payment.events.v1": "PaymentCompleted",
    "fulfillment.events.v1": "ShipmentScheduled",
    "loyalty.events.v1": "PointsAwarded",
}


# --- the run --------------------------------------------------------------------------------


async def set_faults(client: httpx.AsyncClient, gateway: str, faults: dict) -> None:
    answer = await client.put(f"/api/v1/admin/payment-gateways/{gateway}/faults", json=faults, headers=ADMIN)
    answer.raise_for_status()


async def sagas(client: httpx.AsyncClient, status: str) -> list[dict]:
    return (await read(client, "/api/v1/admin/sagas", ADMIN, status=status, limit=200))["items"]


async def refunds_refused(client: httpx.AsyncClient, within: float = 120) -> tuple[int, int]:
    """Both providers refuse every refund for good until a saga is COMPENSATION_FAILED (or
    `within` seconds pass); then they take refunds again, and the operator retries each refused
    one, as the console's button does. Returns (sagas that failed to compensate, retries sent)."""
    for gateway in ("cardpay", "paynext"):
        await set_faults(client, gateway, {"refuse_refunds": True})
    try:
        deadline = time.monotonic() + within
        failed = await sagas(client, "COMPENSATION_FAILED")
        while not failed and time.monotonic() < deadline:
            await asyncio.sleep(1)
            failed = await sagas(client, "COMPENSATION_FAILED")
    finally:
        for gateway in ("cardpay", "paynext"):
            await set_faults(client, gateway, {})
    retried = 0
    for saga in failed:
        answer = await client.post(
            f"/api/v1/admin/payments/{saga['order_id']}/refund/retry",
            json={"reason": "chaos: the provider takes refunds again"},
            headers=ADMIN,
        )
        retried += answer.status_code == 202
    return len(failed), retried


async def terminate_saga_watch(client: httpx.AsyncClient, within: float = 90) -> float | None:
    """Terminates SagaWatch's run, as an operator or a bad deploy might; returns how long the
    monitor took to have it running again (None: not within `within` seconds)."""
    temporal = await TemporalClient.connect(TEMPORAL)
    watch = temporal.get_workflow_handle(WATCH_WORKFLOW_ID)
    await watch.terminate("chaos: the watch's run is gone")
    began = time.monotonic()
    while time.monotonic() - began < within:
        await asyncio.sleep(1)
        if (await watch.describe()).status == WorkflowExecutionStatus.RUNNING:
            return time.monotonic() - began
    return None


async def chaos(
    stack: Stack, client: httpx.AsyncClient, schedule: list[str], hold: float, between: float, log: list[str], outcomes: dict
) -> None:
    """Each entry: a component to kill (`temporal:20` holds it down 20 s instead of `hold`),
    `bus` for replays and poison, `relay` for a relay replica killed between claim and send,
    `cardpay-outage:60`, `refunds-refused` or `sagawatch` (see the module's docstring)."""
    for entry in schedule:
        component, _, held = entry.partition(":")
        await asyncio.sleep(between)
        began = time.monotonic()
        if component == "bus":
            poison = await replay_and_poison(count=30)
            log.append(f"replayed 30 records, produced {poison} poison records")
            say(log[-1])
            continue
        if component == "relay":
            rows, keys = await dying_relay(stack.data)
            log.append(f"relay: a replica of order's claimed {rows} outbox rows of {keys} orders and was killed before sending them")
            say(log[-1])
            continue
        if component == "cardpay-outage":
            await set_faults(client, "cardpay", {"outage": True})
            await asyncio.sleep(float(held or 60))
            await set_faults(client, "cardpay", {})
            log.append(f"cardpay-outage: cardpay refused every call (503) for {float(held or 60):.0f} s")
            say(log[-1])
            continue
        if component == "refunds-refused":
            failed, retried = await refunds_refused(client)
            outcomes["refunds refused for good"] = (failed, retried)
            log.append(f"refunds-refused: {failed} sagas COMPENSATION_FAILED; the operator retried {retried} refunds")
            say(log[-1])
            continue
        if component == "sagawatch":
            back = await terminate_saga_watch(client)
            outcomes["saga watch back after"] = back
            log.append(f"sagawatch: terminated; running again {'after %.0f s' % back if back is not None else 'NOT within 90 s'}")
            say(log[-1])
            continue
        stack.kill(component)
        await asyncio.sleep(float(held or hold))
        await asyncio.to_thread(stack.run, "up", component)
        log.append(f"{component}: killed, held {float(held or hold):.0f} s, back after {time.monotonic() - began:.0f} s")
        say(log[-1])


async def read(client: httpx.AsyncClient, path: str, headers: dict, **params) -> dict:
    """A GET the checks rely on, as a careful client makes it: after a 429, 502 or 503 it waits as
    told (Retry-After) and asks again, for up to a minute; any other failure stops the run."""
    deadline = time.monotonic() + 60
    while True:
        answer = await client.get(path, headers=headers, params=params or None)
        if answer.status_code not in (429, 502, 503) or time.monotonic() > deadline:
            answer.raise_for_status()
            return answer.json()
        await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))


async def settle(client: httpx.AsyncClient, orders: list[Order], deadline: float) -> float:
    began = time.monotonic()
    waiting = [o for o in orders if o.order_id]
    while waiting and time.monotonic() - began < deadline:
        for order in waiting:
            found = await read(client, f"/api/v1/orders/{order.order_id}", CUSTOMER)
            if found["status"] in TERMINAL:
                order.final = found
        waiting = [o for o in waiting if o.final is None]
        if waiting:
            await asyncio.sleep(1)
    return time.monotonic() - began


async def books(client: httpx.AsyncClient) -> dict:
    ledgers = {name: await read(client, f"/api/v1/admin/payment-gateways/{name}/charges", ADMIN) for name in ("cardpay", "paynext")}
    products = {p["sku"]: p["available"] for p in (await read(client, "/api/v1/products", CUSTOMER))["items"]}
    letters, offset = [], 0
    while True:
        page = await read(client, "/api/v1/admin/dead-letters", ADMIN, limit=200, offset=offset)
        letters += page["items"]
        offset += len(page["items"])
        if offset >= page["total"] or not page["items"]:
            break
    return {"ledgers": ledgers, "available": products, "dead_letters": letters}


def succeeded(seen: dict) -> tuple[dict[str, list[dict]], Counter]:
    """Succeeded charges by key (pay-<order id>) and refunded amounts by charge, over both books."""
    charges: dict[str, list[dict]] = defaultdict(list)
    refunds: Counter = Counter()
    for ledger in seen["ledgers"].values():
        for charge in ledger["charges"]:
            if charge["status"] == "succeeded":
                charges[charge["key"]].append(charge)
        for refund in ledger["refunds"]:
            if refund["status"] == "succeeded":
                refunds[refund["charge_reference"]] += refund["amount"]
    return charges, refunds


async def settled(read: Callable[[], Awaitable[Any]], amiss: Callable[[Any], list], within: float = 60.0) -> Any:
    """What `read` gives once `amiss` finds nothing in it, or after `within` seconds, whichever
    comes first (the verdicts then say what is still amiss)."""
    found = await read()
    deadline = time.monotonic() + within
    while amiss(found) and time.monotonic() < deadline:
        await asyncio.sleep(1)
        found = await read()
    return found


def unrefunded(orders: list[Order], seen: dict) -> list[str]:
    """CANCELLED orders with a charge not refunded in full (or charged more than once)."""
    charges, refunds = succeeded(seen)
    return [
        o.order_id for o in orders
        if o.final and o.final["status"] == "CANCELLED" and (taken := charges.get(f"pay-{o.order_id}"))
        and (len(taken) != 1 or refunds[taken[0]["reference"]] != taken[0]["amount"])
    ]  # fmt: skip


def points_amiss(orders: list[Order], accounts: dict[str, dict]) -> list[str]:
    """Accounts whose balance is not their history, or with points kept for an order that did not
    complete (or none for one that did)."""
    outcome = {o.order_id: o.final["status"] for o in orders if o.order_id and o.final}
    amiss = []
    for customer, account in accounts.items():
        if account["points"] != sum(entry["points"] for entry in account["history"]):
            amiss.append(f"{customer}: balance {account['points']} is not the sum of its history")
        net = defaultdict(int)
        for entry in account["history"]:
            net[entry["order_id"]] += entry["points"]
        for order_id, points in net.items():
            if order_id in outcome and (points > 0) != (outcome[order_id] == "COMPLETED"):
                amiss.append(f"{customer}: {points} points for order {order_id}, {outcome[order_id]}")
    return amiss


def verdicts(
    orders: list[Order], seen: dict, accounts: dict[str, dict], drain: float, rows: dict[str, list[Any]], out_of_order: list[str],
    outcomes: dict, awaiting_operator: list[str],
) -> list[tuple[str, str, bool]]:
    placed = [o for o in orders if o.order_id]
    ended = [o for o in placed if o.final]
    wrong = [o for o in ended if (o.declined and o.final["status"] == "COMPLETED") or (not o.declined and o.final.get("cancellation_reason") == "payment_declined")]
    charges, _ = succeeded(seen)
    completed = [o for o in ended if o.final["status"] == "COMPLETED"]
    charged_cancelled = [o for o in ended if o.final["status"] == "CANCELLED" and charges.get(f"pay-{o.order_id}")]
    bad_charges = [o.order_id for o in completed if len(charges.get(f"pay-{o.order_id}", [])) != 1]
    bad_refunds = unrefunded(orders, seen)
    sold = Counter()
    for o in completed:
        for item in o.final["items"]:
            sold[item["sku"]] += item["quantity"]
    stock_off = {sku: (seen["available"].get(sku), STOCK[sku] - sold[sku]) for sku in SKUS if seen["available"].get(sku) != STOCK[sku] - sold[sku]}
    points_off = points_amiss(orders, accounts)
    real_letters = [letter for letter in seen["dead_letters"] if not (letter.get("event_id") or "poison-").startswith("poison-")]
    # No deadline in the chaos stack is shorter than what a fault holds a component down for:
    # a saga compensated for a timeout is a healthy order lost.
    timed_out = [o.order_id for o in ended if o.final.get("cancellation_reason") == "saga_timeout"]
    set_aside = {context: n for context, context_rows in rows.items() if (n := sum(1 for r in context_rows if r.set_aside_at is not None))}
    return [
        ("orders placed (202)", f"{len(placed)} of {len(orders)}", True),
        ("orders refused (no 202 after a minute of retries)", str(sum(1 for o in orders if o.refused)), not any(o.refused for o in orders)),
        ("orders ended COMPLETED or CANCELLED", f"{len(ended)} of {len(placed)}", len(ended) == len(placed)),
        ("orders with the wrong outcome", str(len(wrong)), not wrong),
        ("charges per COMPLETED order: exactly 1", "all" if not bad_charges else f"{len(bad_charges)} wrong, e.g. {bad_charges[:3]}", not bad_charges),
        (
            "charged CANCELLED orders refunded in full, once (or COMPENSATION_FAILED, alerted, for an operator)",
            f"{len(charged_cancelled) - len(bad_refunds)} of {len(charged_cancelled)} refunded, {len(awaiting_operator)} awaiting an operator",
            not set(bad_refunds) - set(awaiting_operator),
        ),
        ("stock per sku = start - units of COMPLETED orders", "all" if not stock_off else f"off: {stock_off}", not stock_off),
        ("points per customer: balance = history, points only for COMPLETED", "all" if not points_off else "; ".join(points_off[:3]), not points_off),
        ("dead letters (all of them poison)", f"{len(seen['dead_letters'])} ({len(real_letters)} real events)", not real_letters),
        ("healthy orders compensated (cancelled for a saga timeout)", str(len(timed_out)) + (f", e.g. {timed_out[:3]}" if timed_out else ""), not timed_out),
        ("one order's events on Kafka in the order written", "all" if not out_of_order else f"{len(out_of_order)} crossed, e.g. {out_of_order[:3]}", not out_of_order),
        ("outbox rows set aside (every fault here passes)", str(sum(set_aside.values())) + (f" {set_aside}" if set_aside else ""), not set_aside),
        *(
            [("refunds refused for good: each COMPENSATION_FAILED, then retried by the operator",
              "{} sagas, {} retries".format(*outcomes["refunds refused for good"]),
              outcomes["refunds refused for good"][0] == outcomes["refunds refused for good"][1])]
            if "refunds refused for good" in outcomes else []
        ),
        *(
            [("SagaWatch running again after its run was terminated",
              f"after {back:.0f} s" if (back := outcomes["saga watch back after"]) is not None else "no", back is not None)]
            if "saga watch back after" in outcomes else []
        ),
        ("time to drain after the chaos", f"{drain:.0f} s", True),
    ]


async def main_async(args: argparse.Namespace) -> int:
    data = (REPO / ".data" / "chaos").resolve()
    stack = Stack(data)
    if not args.use_running:
        subprocess.run([*STACK, "down", "--data-dir", str(data)], env=stack.env, stdout=subprocess.DEVNULL)
        subprocess.run(["rm", "-rf", str(data)], check=True)
        say(f"starting a fresh stack with two replicas of each context in {data}")
        stack.run("up")
    schedule = args.schedule.split(",")
    log: list[str] = []
    orders: list[Order] = []
    outcomes: dict[str, Any] = {}
    try:
        async with httpx.AsyncClient(base_url=GATEWAY, timeout=30) as client:
            for sku in SKUS:
                (await client.put(f"/api/v1/admin/inventory/{sku}", json={"quantity": STOCK[sku]}, headers=ADMIN)).raise_for_status()
            stop = asyncio.Event()
            load = asyncio.create_task(offer(client, orders, args.rate, stop))
            say(f"orders at {args.rate}/s; chaos: {', '.join(schedule)} (held {args.hold:.0f} s, {args.between:.0f} s apart)")
            await chaos(stack, client, schedule, args.hold, args.between, log, outcomes)
            await asyncio.sleep(args.between)
            stop.set()
            await load
            say(f"{len(orders)} orders offered; waiting for every one to end")
            drain = await settle(client, orders, deadline=args.drain)
            # Refunds and points reversals run on their own time, after the orders have ended.
            seen = await settled(lambda: books(client), lambda seen: unrefunded(orders, seen))
            customers = {f"chaos-{o.n % 20}" for o in orders}

            async def loyalty_accounts() -> dict[str, dict]:
                return {c: await read(client, f"/api/v1/customers/{c}/loyalty", CUSTOMER) for c in customers}

            accounts = await settled(loyalty_accounts, lambda accounts: points_amiss(orders, accounts))
            rows = await outboxes(data)
            out_of_order = await crossed(rows)
            # A refund refused for good waits for an operator: alerted (PaymentRefundFailed), not lost.
            awaiting_operator = [saga["order_id"] for saga in await sagas(client, "COMPENSATION_FAILED")]
    finally:
        if not args.keep and not args.use_running:
            subprocess.run([*STACK, "down", "--data-dir", str(data)], env=stack.env, stdout=subprocess.DEVNULL)
    table = verdicts(orders, seen, accounts, drain, rows, out_of_order, outcomes, awaiting_operator)
    print("\n| invariant | measured | holds |\n|---|---|---|")
    for what, measured, holds in table:
        print(f"| {what} | {measured} | {'yes' if holds else '**NO**'} |")
    print("\nFaults:\n" + "\n".join(f"- {line}" for line in log))
    results = {"orders": len(orders), "faults": log, "invariants": [{"invariant": w, "measured": m, "holds": h} for w, m, h in table]}
    (data.parent / "chaos-results.json").write_text(json.dumps(results, indent=2))
    return 0 if all(holds for _, _, holds in table) else 1


FULL = (
    "order,bus,relay,payment-2,fulfillment,kafka,loyalty-2,monitor,sagawatch,temporal:20,order-2,cardpay,payment,bus,relay,"
    "cardpay-outage:60,refunds-refused,fulfillment-2,loyalty,monitor-2"
)
SHORT = "order,bus,relay,kafka,payment-2,sagawatch,temporal"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help=f"the variant make test runs: {SHORT}")
    parser.add_argument(
        "--schedule", default=None, help=f"components to kill in turn (name:seconds to hold one longer), 'bus' for replays and poison (default: {FULL})"
    )
    parser.add_argument("--rate", type=float, default=1.0, help="orders per second")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds a killed component stays down")
    parser.add_argument("--between", type=float, default=6.0, help="seconds between faults")
    parser.add_argument("--drain", type=float, default=240.0, help="seconds the orders get to end after the chaos")
    parser.add_argument("--use-running", action="store_true", help="the stack in .data/chaos is already up (REPLICAS=2)")
    parser.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    args = parser.parse_args()
    args.schedule = args.schedule or (SHORT if args.short else FULL)
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
