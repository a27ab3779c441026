"""The payment context's HTTP API: the gateway exchanges a card token for a payment method
reference here, so the token never travels further."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from sqlalchemy import insert

from concerto_contracts.http import PaymentMethodCreated, PaymentMethodRequest
from concerto_payment.adapters import db
from concerto_payment.api.gateways import router as gateway_controls
from concerto_payment.api.refunds import router as refund_decisions
from concerto_payment.domain.cards import UnknownToken, card_for
from concerto_runtime import Problem, Runtime, runtime_of

router = APIRouter()
router.include_router(gateway_controls)
router.include_router(refund_decisions)


@router.post("/payment-methods", status_code=201)
async def register_payment_method(request: PaymentMethodRequest, runtime: Runtime = Depends(runtime_of)) -> PaymentMethodCreated:
    try:
        card = card_for(request.token)
    except UnknownToken as exc:
        raise Problem(422, "Invalid payment token", str(exc)) from None
    payment_method_id = f"pm-{uuid.uuid4()}"
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            insert(db.payment_methods).values(
                payment_method_id=payment_method_id, token=request.token, brand=card.brand, last4=card.last4
            )
        )
    return PaymentMethodCreated(payment_method_id=payment_method_id, card=card)
