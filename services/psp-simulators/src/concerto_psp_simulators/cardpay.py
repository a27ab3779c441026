"""cardpay: a simulated PSP with a "charges API" (port 8201).

    POST /v1/charges          Idempotency-Key: K   {amount, currency, source, description?, metadata?}
    GET  /v1/charges?idempotency_key=K              {object: "list", data: [charge]}
    GET  /v1/charges/{id}
    POST /v1/refunds          Idempotency-Key: K   {charge, amount?}

Amounts are integers in minor units (cents). The Idempotency-Key header is required on every
POST: the same key with the same body replays the first response (status and body, with the
header Idempotent-Replayed: true); the same key with a different body is a 409.
Errors: {"error": {"type", "code", "message", ...}}.

    python -m concerto_psp_simulators.cardpay      (HTTP_PORT, default 8201; CONCERTO_DATA_DIR)
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from concerto_psp_simulators import ledger
from concerto_psp_simulators.cards import card_for
from concerto_psp_simulators.simulator import create_simulator
from concerto_runtime import Settings, serve

NAME, DEFAULT_PORT = "cardpay", 8201

DECLINE_MESSAGES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
}

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]


class ChargeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int = Field(gt=0, strict=True, description="minor units (cents)")
    currency: str = Field(pattern=r"^[A-Za-z]{3}$", description="ISO 4217, either case")
    source: str = Field(description="a test card token, e.g. tok_visa")
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class RefundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    charge: str = Field(description="the id of the charge, ch_...")
    amount: int | None = Field(None, gt=0, strict=True, description="minor units; default: all that is left")


def error(status: int, type_: str, message: str, **fields: Any) -> JSONResponse:
    return JSONResponse({"error": {"type": type_, **fields, "message": message}}, status_code=status)


def error_body(status: int, code: str, message: str) -> dict:
    """The body of an injected fault (503, 504)."""
    return {"error": {"type": "api_error", "code": code, "message": message}}


def missing_key() -> JSONResponse:
    return error(400, "invalid_request_error", "An Idempotency-Key header is required.", code="missing_idempotency_key")


def replay(row: Any, request_fingerprint: str) -> JSONResponse:
    """The answer to a request whose key was seen before: the first response, or a conflict."""
    if row.fingerprint != request_fingerprint:
        return error(
            409,
            "idempotency_error",
            f"Keys for idempotent requests can only be used with the same parameters they were first used with. "
            f"Use a key other than '{row.key}' for a different request.",
        )
    return JSONResponse(row.response_body, status_code=row.response_status, headers={"Idempotent-Replayed": "true"})


def charge_object(charge: Any, amount_refunded: int = 0) -> dict:
    """A charge as the API shows it, from its ledger row (or the values about to become one)."""
    return {
        "id": charge["reference"],
        "object": "charge",
        "amount": charge["amount"],
        "amount_refunded": amount_refunded,
        "currency": charge["currency"],
        "status": charge["status"],
        "paid": charge["status"] == "succeeded",
        "refunded": charge["status"] == "succeeded" and amount_refunded >= charge["amount"],
        "card": {"brand": charge["card_brand"], "last4": charge["card_last4"]},
        "description": charge["details"].get("description"),
        "metadata": charge["details"].get("metadata", {}),
        "idempotency_key": charge["key"],
        "failure_code": "card_declined" if charge["decline_code"] else None,
        "decline_code": charge["decline_code"],
        "created": charge["created"],
    }


router = APIRouter(tags=["cardpay"])


@router.post("/v1/charges", summary="Charge a card")
async def create_charge(body: ChargeRequest, request: Request, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    if not idempotency_key:
        return missing_key()
    asked = body.model_dump() | {"currency": body.currency.lower()}
    request_fingerprint = ledger.fingerprint(asked)
    async with request.app.state.sessions() as session, session.begin():
        if existing := await ledger.charge_by_key(session, idempotency_key):
            return replay(existing, request_fingerprint)
        card = card_for(body.source)
        if card is None:
            return error(400, "invalid_request_error", f"No such source: '{body.source}'.", code="invalid_source")
        charge = {
            "reference": ledger.new_hex("ch_"),
            "key": idempotency_key,
            "amount": body.amount,
            "currency": asked["currency"],
            "status": "succeeded" if card.approved else "failed",
            "card_brand": card.brand,
            "card_last4": card.last4,
            "decline_code": card.decline_code,
            "details": {"description": body.description, "metadata": body.metadata},
            "created": int(time.time()),
        }
        if card.approved:
            status, response = 200, charge_object(charge)
        else:
            status, response = 402, {
                "error": {
                    "type": "card_error",
                    "code": "card_declined",
                    "decline_code": card.decline_code,
                    "message": DECLINE_MESSAGES[card.decline_code],
                    "charge": charge["reference"],
                }
            }
        await ledger.add_charge(
            session, **charge, fingerprint=request_fingerprint, response_status=status, response_body=response
        )
    return JSONResponse(response, status_code=status)


@router.get("/v1/charges", summary="Find the charge made with an idempotency key")
async def list_charges(idempotency_key: str, request: Request) -> dict:
    async with request.app.state.read_sessions() as session:
        row = await ledger.charge_by_key(session, idempotency_key)
        data = [charge_object(row._mapping, await ledger.refunded_amount(session, row.reference))] if row else []
    return {"object": "list", "data": data}


@router.get("/v1/charges/{charge_id}", summary="A charge")
async def get_charge(charge_id: str, request: Request) -> JSONResponse:
    async with request.app.state.read_sessions() as session:
        row = await ledger.charge_by_reference(session, charge_id)
        if row is None:
            return error(404, "invalid_request_error", f"No such charge: '{charge_id}'.", code="resource_missing")
        return JSONResponse(charge_object(row._mapping, await ledger.refunded_amount(session, row.reference)))


@router.post("/v1/refunds", summary="Refund a charge, in full or in part")
async def create_refund(body: RefundRequest, request: Request, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    if not idempotency_key:
        return missing_key()
    request_fingerprint = ledger.fingerprint(body.model_dump())
    async with request.app.state.sessions() as session, session.begin():
        if existing := await ledger.refund_by_key(session, idempotency_key):
            return replay(existing, request_fingerprint)
        charge = await ledger.charge_by_reference(session, body.charge)
        if charge is None:
            return error(404, "invalid_request_error", f"No such charge: '{body.charge}'.", code="resource_missing")
        left = charge.amount - await ledger.refunded_amount(session, charge.reference)
        amount = body.amount if body.amount is not None else left
        refund = {
            "reference": ledger.new_hex("re_"),
            "charge_reference": charge.reference,
            "key": idempotency_key,
            "amount": amount,
            "currency": charge.currency,
            "created": int(time.time()),
        }
        if charge.status != "succeeded":
            status, response = 400, _refused("charge_not_paid", f"Charge {charge.reference} was not paid: nothing to refund.")
        elif left <= 0:
            status, response = 400, _refused("charge_already_refunded", f"Charge {charge.reference} has already been refunded.")
        elif amount > left:
            status, response = 400, _refused(
                "amount_too_large", f"Refund amount ({amount}) is greater than the unrefunded amount of the charge ({left})."
            )
        else:
            status, response = 200, {
                "id": refund["reference"],
                "object": "refund",
                "charge": charge.reference,
                "amount": amount,
                "currency": charge.currency,
                "status": "succeeded",
                "created": refund["created"],
            }
        await ledger.add_refund(
            session,
            **refund,
            status="succeeded" if status == 200 else "failed",
            fingerprint=request_fingerprint,
            response_status=status,
            response_body=response,
        )
    return JSONResponse(response, status_code=status)


def _refused(code: str, message: str) -> dict:
    return {"error": {"type": "invalid_request_error", "code": code, "message": message}}


def create_app(settings: Settings | None = None) -> FastAPI:
    app = create_simulator(
        NAME,
        description=__doc__,
        api=router,
        api_prefix="/v1/",
        error_body=error_body,
        settings=settings,
    )

    # cardpay's own error shape, also for a malformed request and an unknown URL.
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'] if part != 'body')}: {e['msg']}" for e in exc.errors()
        )
        return error(400, "invalid_request_error", message)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, "invalid_request_error", str(exc.detail))

    return app


def main() -> None:
    settings = Settings()
    serve(create_app(settings), NAME, settings.http_port or DEFAULT_PORT, settings)


if __name__ == "__main__":
    main()
