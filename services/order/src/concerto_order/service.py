"""The order service: its tables, workflow, activities, event handlers and routes."""

from __future__ import annotations

from sqlalchemy import func, insert, select

from concerto_contracts import Topics
from concerto_order.adapters import db
from concerto_order.api.routes import router
from concerto_order.domain.catalog import SEED_PRODUCTS
from concerto_order.messaging.handlers import handlers
from concerto_order.workflows.activities import OrderActivities
from concerto_order.workflows.inputs import TASK_QUEUE
from concerto_order.workflows.order_workflow import OrderWorkflow
from concerto_order.workflows.starts import start_waiting_orders
from concerto_runtime import Runtime, ServiceDefinition


def activities(runtime: Runtime) -> list:
    acts = OrderActivities(runtime)
    return [acts.price_order, acts.confirm_order, acts.record_progress, acts.cancel_order, acts.complete_order]


async def seed_catalog(runtime: Runtime) -> None:
    async with runtime.sessions() as session, session.begin():
        if not await session.scalar(select(func.count()).select_from(db.products)):
            await session.execute(
                insert(db.products),
                [{"sku": p.sku, "name": p.name, "unit_price": p.unit_price, "weight_grams": p.weight_grams} for p in SEED_PRODUCTS],
            )


definition = ServiceDefinition(
    name="order",
    http_port=8101,
    task_queue=TASK_QUEUE,
    tables=db.tables,
    workflows=[OrderWorkflow],
    activities=activities,
    handlers=handlers,
    publishes=[Topics.ORDER],
    router=router,
    on_start=seed_catalog,
    background=lambda runtime: {"order starter": lambda: start_waiting_orders(runtime)},
)
