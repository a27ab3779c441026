"""paynext: a simulated PSP with a "payments API" and merchant references (port 8202).

    POST /payments                       {merchantReference, amount: {value, currency},
                                          paymentMethod: {type: "scheme", token}}
    GET  /payments?merchantReference=R   {payments: [payment]}
    POST /payments/{pspReference}/refunds {merchantReference, amount: {value, currency}}

Amounts are integers in minor units. A refusal is an answer, not an error: 200 with
resultCode "Refused". The merchant reference makes a request idempotent: the same reference
returns the payment (or refund) made with it; the same reference for something else is a 422
duplicate_reference. Errors: {"status", "errorCode", "message"}.

    python -m concerto_psp_simulators.paynext      (HTTP_PORT, default 8202; CONCERTO_DATA_DIR)
"""

from __future__ import annotations

import time
from http import HTTPStatus
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from concerto_psp_simulators import ledger
from concerto_psp_simulators.cards import card_for
from concerto_psp_simulators.simulator import create_simulator
from concerto_runtime import Settings, serve

NAME, DEFAULT_PORT = "paynext", 8202

REFUSAL_REASONS = {"generic_decline": "Refused", "insufficient_funds": "Not enough balance"}


class Amount(BaseModel):
    value: int = Field(gt=0, strict=True, description="minor units (cents)")
    currency: str = Field(pattern=r"^[A-Za-z]{3}$", description="ISO 4217; answered in upper case")


class PaymentMethod(BaseModel):
    type: Literal["scheme"]
    token: str = Field(description="a test card token, e.g. tok_visa")


class PaymentRequest(BaseModel):
    merchantReference: str = Field(min_length=1, max_length=255)
    amount: Amount
    paymentMethod: PaymentMethod


class RefundRequest(BaseModel):
    merchantReference: str = Field(min_length=1, max_length=255)
    amount: Amount


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(status, code, message), status_code=status)


def error_body(status: int, code: str, message: str) -> dict:
    return {"status": status, "errorCode": code, "message": message}


def duplicate_reference(reference: str) -> JSONResponse:
    return error(422, "duplicate_reference", f"Merchant reference '{reference}' was already used for a different request.")


router = APIRouter(tags=["paynext"])


@router.post("/payments", summary="Authorise a payment")
async def create_payment(body: PaymentRequest, request: Request) -> JSONResponse:
    amount = {"value": body.amount.value, "currency": body.amount.currency.upper()}
    request_fingerprint = ledger.fingerprint({"amount": amount, "token": body.paymentMethod.token})
    async with request.app.state.sessions() as session, session.begin():
        if existing := await ledger.charge_by_key(session, body.merchantReference):
            if existing.fingerprint != request_fingerprint:
                return duplicate_reference(body.merchantReference)
            return JSONResponse(existing.response_body, status_code=existing.response_status)
        card = card_for(body.paymentMethod.token)
        if card is None:
            return error(422, "invalid_payment_method", f"Unknown payment method token '{body.paymentMethod.token}'.")
        payment: dict[str, Any] = {
            "pspReference": ledger.new_digits("PN"),
            "resultCode": "Authorised" if card.approved else "Refused",
        }
        if not card.approved:
            payment["refusalReason"] = REFUSAL_REASONS[card.decline_code]
        payment |= {
            "merchantReference": body.merchantReference,
            "amount": amount,
            "card": {"brand": card.brand, "last4": card.last4},
        }
        await ledger.add_charge(
            session,
            reference=payment["pspReference"],
            key=body.merchantReference,
            amount=amount["value"],
            currency=amount["currency"],
            status="succeeded" if card.approved else "failed",
            card_brand=card.brand,
            card_last4=card.last4,
            decline_code=card.decline_code,
            details={},
            fingerprint=request_fingerprint,
            response_status=200,
            response_body=payment,
            created=int(time.time()),
        )
    return JSONResponse(payment)


@router.get("/payments", summary="Find the payment made with a merchant reference")
async def find_payments(merchantReference: str, request: Request) -> dict:
    async with request.app.state.read_sessions() as session:
        row = await ledger.charge_by_key(session, merchantReference)
    return {"payments": [row.response_body] if row else []}


@router.post("/payments/{pspReference}/refunds", status_code=201, summary="Refund a payment, in full or in part")
async def create_refund(
    body: RefundRequest, request: Request, psp_reference: str = Path(alias="pspReference")
) -> JSONResponse:
    amount = {"value": body.amount.value, "currency": body.amount.currency.upper()}
    request_fingerprint = ledger.fingerprint({"payment": psp_reference, "amount": amount})
    async with request.app.state.sessions() as session, session.begin():
        if existing := await ledger.refund_by_key(session, body.merchantReference):
            if existing.fingerprint != request_fingerprint:
                return duplicate_reference(body.merchantReference)
            return JSONResponse(existing.response_body, status_code=existing.response_status)
        payment = await ledger.charge_by_reference(session, psp_reference)
        if payment is None:
            return error(404, "not_found", f"No payment with pspReference '{psp_reference}'.")
        left = payment.amount - await ledger.refunded_amount(session, payment.reference)
        reference = ledger.new_digits("PNR")
        if payment.status != "succeeded":
            status, response = 422, error_body(422, "payment_not_refundable", f"Payment {psp_reference} was refused: nothing to refund.")
        elif amount["currency"] != payment.currency:
            status, response = 422, error_body(
                422, "currency_mismatch", f"Payment {psp_reference} is in {payment.currency}, not {amount['currency']}."
            )
        elif amount["value"] > left:
            status, response = 422, error_body(
                422, "amount_exceeds_remaining", f"Refund of {amount['value']} is more than the {left} left to refund."
            )
        else:
            status, response = 201, {
                "pspReference": reference,
                "paymentPspReference": psp_reference,
                "merchantReference": body.merchantReference,
                "amount": amount,
                "status": "received",
            }
        await ledger.add_refund(
            session,
            reference=reference,
            charge_reference=psp_reference,
            key=body.merchantReference,
            amount=amount["value"],
            currency=amount["currency"],
            status="succeeded" if status == 201 else "failed",
            fingerprint=request_fingerprint,
            response_status=status,
            response_body=response,
            created=int(time.time()),
        )
    return JSONResponse(response, status_code=status)


def create_app(settings: Settings | None = None) -> FastAPI:
    app = create_simulator(
        NAME,
        description=__doc__,
        api=router,
        api_prefix="/payments",
        error_body=error_body,
        settings=settings,
    )

    # paynext's own error shape for an unknown URL; malformed bodies keep FastAPI's 422.
    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
        return error(exc.status_code, code, str(exc.detail))

    return app


def main() -> None:
    settings = Settings()
    serve(create_app(settings), NAME, settings.http_port or DEFAULT_PORT, settings)


if __name__ == "__main__":
    main()
