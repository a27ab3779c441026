"""The fulfillment service: its tables, workflow, activities, event handlers and routes."""

from __future__ import annotations

from sqlalchemy import func, insert, select

from concerto_contracts import Topics
from concerto_fulfillment.adapters import db
from concerto_fulfillment.api.routes import router
from concerto_fulfillment.domain.model import SEED_SKUS, SEED_STOCK_PER_WAREHOUSE, WAREHOUSES
from concerto_fulfillment.messaging.handlers import handlers
from concerto_fulfillment.workflows.activities import FulfillmentActivities, publish_stock_levels
from concerto_fulfillment.workflows.fulfillment_workflow import FulfillmentWorkflow
from concerto_fulfillment.workflows.inputs import TASK_QUEUE
from concerto_observability import new_correlation_id
from concerto_runtime import Runtime, ServiceDefinition


def activities(runtime: Runtime) -> list:
    acts = FulfillmentActivities(runtime)
    return [acts.reserve_stock, acts.schedule_shipment, acts.dispatch_shipment, acts.release_stock]


async def seed_stock(runtime: Runtime) -> None:
    """First start only: stock every warehouse, and tell the order context how much there is."""
    async with runtime.unit_of_work() as uow:
        if await uow.session.scalar(select(func.count()).select_from(db.stock)):
            return
        await uow.session.execute(
            insert(db.stock),
            [{"warehouse": w.code, "sku": sku, "available": SEED_STOCK_PER_WAREHOUSE} for w in WAREHOUSES for sku in SEED_SKUS],
        )
        await publish_stock_levels(uow, SEED_SKUS, new_correlation_id())
        await uow.commit()


definition = ServiceDefinition(
    name="fulfillment",
    http_port=8103,
    task_queue=TASK_QUEUE,
    tables=db.tables,
    workflows=[FulfillmentWorkflow],
    activities=activities,
    handlers=handlers,
    publishes=[Topics.FULFILLMENT],
    router=router,
    on_start=seed_stock,
)
