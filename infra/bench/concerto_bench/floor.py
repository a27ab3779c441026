"""The floor: Concerto's order saga with the business taken out.

The benchmark offers the same orders to the platform and to this floor. The floor has the
platform's shape (as many processes, workflows, activities, signals and Kafka hops, through the
same plumbing: concerto_runtime's Temporal client and worker, concerto_messaging's producer) but
no database, no outbox, no inbox and no rules: every activity only sends its Kafka record, if it
has one, and sets a status in memory. What the floor costs is what coordination costs; the
ratio platform/floor shows what the business code costs beyond it.

    PYTHONPATH=infra/bench .venv/bin/python -m concerto_bench.floor CONTEXT [--port PORT]

CONTEXT is one of edge (8190), order (8191), payment (8192), fulfillment (8193), loyalty (8194),
monitor (8195). Environment: KAFKA_BOOTSTRAP_SERVERS, TEMPORAL_ADDRESS, FLOOR_ORDER_URL and
FLOOR_PAYMENT_URL (the edge's upstreams), FLOOR_PICKUP_SECONDS (the carrier's pick-up, default 1),
FLOOR_PREFIX (default "floor": topics floor.X.events, task queues, consumer groups and workflow
ids floor-X; a test sets its own to stay apart from a benchmark on the same broker).

One order, happy path ("local": a local activity; 1 order in 10 is declined: PaymentFailed, then
the order's local cancel sends OrderCancelled and it ends CANCELLED):

    process      step                                           Kafka record sent
    edge         POST /api/v1/orders -> payment POST /payment-methods, then order POST /orders
    order        POST /orders: start FloorOrderWorkflow (eager), 202
    order        local price; local confirm                     OrderConfirmed
    payment      consumer: start FloorPaymentWorkflow
    payment      activity charge_card; local record_payment     PaymentCompleted
    order        consumer: signal PaymentCompleted; local record_progress (PAID)
    fulfillment  consumer: start FloorFulfillmentWorkflow
    fulfillment  local reserve_stock                            InventoryReserved, StockLevelChanged
    loyalty      consumer: signal-with-start floor-loyalty-{customer}; local apply_change
                                                                PointsAwarded
    order        consumer: signal InventoryReserved; local record_progress (FULFILLING)
    fulfillment  local schedule_shipment                        ShipmentScheduled
    order        consumer: signal ShipmentScheduled; local record_progress (FULFILLING)
    fulfillment  timer (pick-up); local dispatch_shipment       ShipmentDispatched
    order        consumer: signal ShipmentDispatched; local record_progress (SHIPPED)
    order        local complete                                 OrderCompleted (COMPLETED)
    monitor      consumer of all four topics: reads and commits every record

Per order: 3 workflows started and a signal-with-start, 12 local activities and 1 regular, 1
timer, 4 signals, 2 HTTP hops behind the edge, 8 Kafka records (each read by 2 to 4 groups).

Not the same as the platform: no tracing or JSON logs are configured (the TracingInterceptor
of connect_temporal is there, with no tracer provider behind it). The workflows live in
concerto_bench.floor_workflows, a small module like each service's workflow module: Temporal's
sandbox imports it afresh for every workflow run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from tenacity import retry, stop_after_delay, wait_fixed

from concerto_messaging import create_producer, ensure_topics
from concerto_runtime.settings import Settings
from concerto_runtime.temporal import connect_temporal, create_worker, signal_if_running, signal_with_start, start_once

log = logging.getLogger("concerto_bench.floor")

PORTS = {"edge": 8190, "order": 8191, "payment": 8192, "fulfillment": 8193, "loyalty": 8194, "monitor": 8195}
PUBLISHERS = ("order", "payment", "fulfillment", "loyalty")  # one topic each: PREFIX.X.events
SUBSCRIPTIONS = {"order": ("payment", "fulfillment", "loyalty"), "payment": ("order",),
                 "fulfillment": ("payment", "order"), "loyalty": ("payment",), "monitor": PUBLISHERS}
MILESTONES = ("PaymentCompleted", "PaymentFailed", "InventoryReserved", "ShipmentScheduled", "ShipmentDispatched")
LOCAL = {"start_to_close_timeout": timedelta(seconds=30)}
WAIT = timedelta(seconds=300)
CHANGES_PER_RUN = 200


class Names:
    """Topics PREFIX.X.events, task queues and consumer groups PREFIX-X, workflow ids PREFIX-X-KEY."""

    def __init__(self, prefix: str = "floor") -> None:
        self.prefix = prefix
        self.topic = lambda context: f"{prefix}.{context}.events"
        self.queue = lambda context: f"{prefix}-{context}"
        self.workflow_id = lambda context, key: f"{prefix}-{context}-{key}"


class FloorOrder(BaseModel):
    order_id: str
    customer_id: str
    declined: bool = False
    payload: dict[str, Any]  # the order as posted (about 1 KB), carried like the platform's snapshot


class Milestone(BaseModel):
    name: str


class Fulfillment(BaseModel):
    order: FloorOrder
    pickup_seconds: float


# --- Activities: send a record, set a status; nothing else -----------------------------------------


class FloorActivities:
    def __init__(self, producer: AIOKafkaProducer, names: Names, orders: dict[str, dict]) -> None:
        self._producer, self._names, self._orders = producer, names, orders

    async def _send(self, context: str, event_type: str, order: FloorOrder) -> None:
        value = {"type": event_type, "order_id": order.order_id, "customer_id": order.customer_id,
                 "declined": order.declined, "payload": order.payload}
        await self._producer.send_and_wait(self._names.topic(context), key=order.order_id.encode(),
                                           value=json.dumps(value).encode(), headers=[("ce_type", event_type.encode())])

    def _set(self, order_id: str, status: str) -> None:
        self._orders[order_id] = {"status": status, "updated_at": datetime.now(timezone.utc).isoformat()}

    @activity.defn
    async def price(self, order: FloorOrder) -> None:
        pass

    @activity.defn
    async def confirm(self, order: FloorOrder) -> None:
        await self._send("order", "OrderConfirmed", order)
        self._set(order.order_id, "CONFIRMED")

    @activity.defn
    async def record_progress(self, order_id: str, status: str) -> None:
        self._set(order_id, status)

    @activity.defn
    async def cancel(self, order: FloorOrder) -> None:
        await self._send("order", "OrderCancelled", order)
        self._set(order.order_id, "CANCELLED")

    @activity.defn
    async def complete(self, order: FloorOrder) -> None:
        await self._send("order", "OrderCompleted", order)
        self._set(order.order_id, "COMPLETED")

    @activity.defn
    async def charge_card(self, order: FloorOrder) -> bool:
        return not order.declined

    @activity.defn
    async def record_payment(self, order: FloorOrder, approved: bool) -> None:
        await self._send("payment", "PaymentCompleted" if approved else "PaymentFailed", order)

    @activity.defn
    async def reserve_stock(self, order: FloorOrder) -> None:
        await self._send("fulfillment", "InventoryReserved", order)
        await self._send("fulfillment", "StockLevelChanged", order)

    @activity.defn
    async def schedule_shipment(self, order: FloorOrder) -> None:
        await self._send("fulfillment", "ShipmentScheduled", order)

    @activity.defn
    async def dispatch_shipment(self, order: FloorOrder) -> None:
        await self._send("fulfillment", "ShipmentDispatched", order)

    @activity.defn
    async def apply_change(self, order: FloorOrder) -> None:
        await self._send("loyalty", "PointsAwarded", order)


# --- Consumers: what each context does with the records it reads -----------------------------------

Handler = Callable[[FloorOrder], Awaitable[Any]]


def handlers(context: str, client: Client | None, names: Names, pickup_seconds: float) -> dict[str, Handler]:
    from concerto_bench.floor_workflows import (
        FloorFulfillmentWorkflow, FloorLoyaltyWorkflow, FloorOrderWorkflow, FloorPaymentWorkflow,
    )

    def signal_order(name: str) -> Handler:
        return lambda order: signal_if_running(client, names.workflow_id("order", order.order_id),
                                               FloorOrderWorkflow.event_received, Milestone(name=name))

    async def collect_payment(order: FloorOrder) -> None:
        await start_once(client, FloorPaymentWorkflow.run, order,
                         id=names.workflow_id("payment", order.order_id), task_queue=names.queue("payment"))

    async def refund_if_paid(order: FloorOrder) -> None:
        pass  # the platform looks the payment up and, the payment having failed, finds nothing to refund

    async def fulfill(order: FloorOrder) -> None:
        await start_once(client, FloorFulfillmentWorkflow.run, Fulfillment(order=order, pickup_seconds=pickup_seconds),
                         id=names.workflow_id("fulfillment", order.order_id), task_queue=names.queue("fulfillment"))

    async def stop_fulfillment(order: FloorOrder) -> None:
        await signal_if_running(client, names.workflow_id("fulfillment", order.order_id),
                                FloorFulfillmentWorkflow.order_cancelled)

    async def award(order: FloorOrder) -> None:
        await signal_with_start(client, FloorLoyaltyWorkflow.run, [order.customer_id, []],
                                id=names.workflow_id("loyalty", order.customer_id), task_queue=names.queue("loyalty"),
                                signal="change", signal_args=[order])

    return {
        "order": {name: signal_order(name) for name in MILESTONES},
        "payment": {"OrderConfirmed": collect_payment, "OrderCancelled": refund_if_paid},
        "fulfillment": {"PaymentCompleted": fulfill, "OrderCancelled": stop_fulfillment},
        "loyalty": {"PaymentCompleted": award},
        "monitor": {},
    }[context]


async def consume(consumer: AIOKafkaConsumer, handle: dict[str, Handler]) -> None:
    """Like the platform's EventConsumer: records one at a time, offsets committed per batch."""
    while True:
        batches = await consumer.getmany(timeout_ms=1000, max_records=100)
        for records in batches.values():
            for record in records:
                event = json.loads(record.value)  # every record is decoded, handled or not
                if handler := handle.get(event["type"]):
                    order = FloorOrder(order_id=event["order_id"], customer_id=event["customer_id"],
                                       declined=event["declined"], payload=event["payload"])
                    try:
                        await handler(order)
                    except Exception:
                        log.exception("%s for order %s failed", event["type"], event["order_id"])
        if batches:
            await consumer.commit({partition: records[-1].offset + 1 for partition, records in batches.items()})


# --- Processes -----------------------------------------------------------------------------------


def create_app(context: str) -> FastAPI:
    settings, names = Settings(), Names(os.environ.get("FLOOR_PREFIX", "floor"))
    orders: dict[str, dict] = {}  # the order context's only state: order id -> status, updated_at
    starts = {"eager": 0, "total": 0}  # order workflows started, and how many of them eagerly
    checks: list[Callable[[], bool]] = []  # all true: ready

    from concerto_bench.floor_workflows import WORKFLOWS, FloorOrderWorkflow

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if context == "edge":
            def upstream(name: str) -> httpx.AsyncClient:
                url = os.environ.get(f"FLOOR_{name.upper()}_URL", f"http://127.0.0.1:{PORTS[name]}")
                return httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(keepalive_expiry=2.0))

            async with upstream("order") as order, upstream("payment") as payment:
                app.state.upstreams = {"order": order, "payment": payment}
                yield
            return
        bootstrap = settings.kafka_bootstrap_servers
        await retry(stop=stop_after_delay(60), wait=wait_fixed(1), reraise=True)(ensure_topics)(
            bootstrap, [names.topic(c) for c in PUBLISHERS]
        )
        client = app.state.client = await connect_temporal(settings) if context in WORKFLOWS else None
        producer, worker, tasks = None, None, []
        if context in WORKFLOWS:
            producer = create_producer(bootstrap)
            await producer.start()
            activities = FloorActivities(producer, names, orders)
            every_activity = [getattr(activities, name) for name in vars(FloorActivities) if not name.startswith("_")]
            worker = create_worker(client, names.queue(context), [WORKFLOWS[context]], every_activity)
            tasks.append(asyncio.create_task(worker.run()))
            checks.append(lambda: worker.is_running)
        consumer = AIOKafkaConsumer(*[names.topic(c) for c in SUBSCRIPTIONS[context]], bootstrap_servers=bootstrap,
                                    group_id=names.queue(context), enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        pickup_seconds = float(os.environ.get("FLOOR_PICKUP_SECONDS", "1"))
        consuming = asyncio.create_task(consume(consumer, handlers(context, client, names, pickup_seconds)))
        tasks.append(consuming)
        checks.extend([lambda: bool(consumer.assignment()), lambda: not any(task.done() for task in tasks)])
        try:
            yield
        finally:
            consuming.cancel()
            await asyncio.gather(consuming, return_exceptions=True)
            await consumer.stop()
            if worker:
                await worker.shutdown()
            if producer:
                await producer.stop()

    app = FastAPI(title=f"Concerto floor: {context}", lifespan=lifespan)

    @app.get("/health/ready")
    async def ready() -> JSONResponse:
        ok = all(check() for check in checks)
        body = {"status": "ready" if ok else "starting", **({"starts": starts} if context == "order" else {})}
        return JSONResponse(body, status_code=200 if ok else 503)

    if context == "edge":
        @app.post("/api/v1/orders")
        async def place_order(body: dict[str, Any], request: Request) -> Response:
            upstreams = request.app.state.upstreams
            token = (body.get("payment") or {}).get("token")
            vaulted = await upstreams["payment"].post("/payment-methods", json={"token": token})
            if vaulted.status_code != 201:
                return _relay(vaulted)
            submission = {**body, "payment_method_id": vaulted.json()["payment_method_id"],
                          "declined": token == "tok_chargeDeclined"}
            return _relay(await upstreams["order"].post("/orders", json=submission))

        @app.get("/api/v1/orders/{order_id}")
        async def get_order(order_id: str, request: Request) -> Response:
            return _relay(await request.app.state.upstreams["order"].get(f"/orders/{order_id}"))

    if context == "payment":
        @app.post("/payment-methods", status_code=201)
        async def vault(body: dict[str, Any]) -> dict:
            return {"payment_method_id": f"pm-{uuid.uuid4()}"}  # nothing stored

    if context == "order":
        @app.post("/orders", status_code=202)
        async def place(body: dict[str, Any], request: Request) -> dict:
            order = FloorOrder(order_id=str(uuid.uuid4()), customer_id=str((body.get("customer") or {}).get("id")),
                               declined=bool(body.get("declined")), payload=body)
            orders[order.order_id] = {"status": "PENDING", "updated_at": datetime.now(timezone.utc).isoformat()}
            handle = await request.app.state.client.start_workflow(
                FloorOrderWorkflow.run, order, id=names.workflow_id("order", order.order_id),
                task_queue=names.queue("order"), id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                request_eager_start=True,
            )
            starts["total"] += 1
            starts["eager"] += bool(getattr(handle, "__temporal_eagerly_started", False))  # set by the SDK
            return {"order_id": order.order_id, "status": "PENDING", "correlation_id": str(uuid.uuid4())}

        @app.get("/orders/{order_id}")
        async def get(order_id: str) -> JSONResponse:
            if order_id not in orders:
                return JSONResponse({"title": "Not found", "status": 404}, status_code=404)
            return JSONResponse({"order_id": order_id, **orders[order_id]})

    return app


def _relay(answer: httpx.Response) -> Response:
    return Response(answer.content, status_code=answer.status_code, media_type=answer.headers.get("content-type"))


def main() -> None:
    parser = argparse.ArgumentParser(description="One process of Concerto's floor (the saga without business code).")
    parser.add_argument("context", choices=list(PORTS))
    parser.add_argument("--port", type=int, help="default: edge 8190, order 8191, ... monitor 8195")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s floor-{args.context} %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(args.context), host="127.0.0.1", port=args.port or PORTS[args.context],
                log_config=None, log_level="warning")


if __name__ == "__main__":
    # Run from the importable module, not __main__: Temporal's sandbox loads the workflows by module.
    from concerto_bench.floor import main as floor_main

    floor_main()
