"""The fulfillment context's HTTP API: stock levels, and setting them (an admin action)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import update

from concerto_contracts.http import StockLevel
from concerto_fulfillment.adapters import db
from concerto_fulfillment.domain.model import WAREHOUSES
from concerto_fulfillment.workflows.activities import publish_stock_levels
from concerto_observability import correlation_id, new_correlation_id
from concerto_runtime import Problem, Runtime, runtime_of

router = APIRouter()


@router.get("/inventory")
async def inventory(runtime: Runtime = Depends(runtime_of)) -> dict[str, dict[str, int]]:
    async with runtime.read_sessions() as session:
        return await db.stock_by_warehouse(session)


@router.put("/inventory/{sku}")
async def set_stock(sku: str, level: StockLevel, runtime: Runtime = Depends(runtime_of)) -> dict:
    """Sets a sku's stock: all of it in the first warehouse, none elsewhere."""
    async with runtime.unit_of_work() as uow:
        for index, warehouse in enumerate(WAREHOUSES):
            result = await uow.session.execute(
                update(db.stock)
                .where(db.stock.c.warehouse == warehouse.code, db.stock.c.sku == sku)
                .values(available=level.quantity if index == 0 else 0)
            )
            if result.rowcount == 0:
                raise Problem(404, "Unknown sku", f"no stock is kept for sku {sku}")
        await publish_stock_levels(uow, [sku], correlation_id() or new_correlation_id())
        await uow.commit()
    return {"sku": sku, "available": level.quantity}
