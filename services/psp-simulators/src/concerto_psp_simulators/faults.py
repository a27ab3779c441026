"""Faults injected at run time, the same way in both simulators.

    PUT /_admin/faults {"outage": true}                        every call: 503 at once
    PUT /_admin/faults {"error_rate": 0.3, "seed": 7}          3 calls in 10: 503, repeatably
    PUT /_admin/faults {"drop_response_rate": 1, "hang_seconds": 10}
    PUT /_admin/faults {"refuse_refunds": true}                every refund: 400, nothing done
    PUT /_admin/faults {}                                      back to normal

A middleware applies them to the PSP's API routes only (never to /_admin/* or /health/*). Per
call, in this order:

1. outage: 503 at once; nothing is processed. refuse_refunds: a refund is answered 400 at
   once, nothing processed (the merchant account may not refund: a refusal for good, which a
   client must not retry).
2. latency_ms: that much delay is added.
3. timeout (probability timeout_rate): hang for hang_seconds, then 504; nothing is processed.
4. error (probability error_rate): 503; nothing is processed.
5. drop_response (probability drop_response_rate): the request IS processed and committed,
   then the response is held for hang_seconds and replaced by a 504. A client whose timeout is
   shorter sees a timeout and cannot tell whether it was charged: the ambiguous outcome.
6. tampered_answer (probability tampered_answer_rate, calls that change something: POST): the
   request IS processed and committed, then answered 200 with a body no client should trust (a
   reference with control characters, another amount, a whole card number where the last four
   digits go). A client that takes it at its word stores and publishes it (OWASP API10).

The random draws come from random.Random(seed), created whenever faults are set, so a run with
a seed is repeatable. Faults live in memory: a restart clears them.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

FaultKind = Literal["outage", "timeout", "error", "drop_response", "tampered_answer", "refund_refused"]

# Both providers' field names at once (cardpay's id/status, paynext's pspReference/resultCode).
TAMPERED_ANSWER = {
    "id": "ch_\u0000<script>alert(1)</script>",
    "pspReference": "\r\nX-Injected: yes" + "9" * 5000,
    "status": "succeeded",
    "resultCode": "Authorised",
    "amount": 1,
    "currency": "xxx",
    "card": {"brand": "visa", "last4": "4242424242424242", "number": "4242424242424242"},
}

# (status, code, message) -> the PSP's own error body: each simulator keeps its API's shape.
ErrorBody = Callable[[int, str, str], dict]


class FaultSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(0.0, ge=0, le=1, description="probability of an immediate 503")
    latency_ms: int = Field(0, ge=0, description="delay added to every call")
    timeout_rate: float = Field(0.0, ge=0, le=1, description="probability of hanging, then 504")
    outage: bool = Field(False, description="every call gets 503 at once")
    drop_response_rate: float = Field(0.0, ge=0, le=1, description="probability of processing, then hanging and 504")
    tampered_answer_rate: float = Field(0.0, ge=0, le=1, description="probability of processing a POST, then answering nonsense")
    hang_seconds: float = Field(30.0, ge=0, description="how long a timeout or a dropped response hangs")
    seed: int | None = Field(None, description="seed of the random draws, for repeatable runs")
    refuse_refunds: bool = Field(False, description="every refund refused with a 400, nothing processed")


class Faults:
    """The faults in force for one simulator, and what they have done so far."""

    def __init__(self, api_prefix: str, error_body: ErrorBody) -> None:
        self.api_prefix = api_prefix
        self.error_body = error_body
        self.calls = 0
        self.injected: dict[FaultKind, int] = {
            "outage": 0, "timeout": 0, "error": 0, "drop_response": 0, "tampered_answer": 0, "refund_refused": 0
        }
        self.set(FaultSettings())

    def set(self, settings: FaultSettings) -> None:
        self.settings = settings
        self.random = random.Random(settings.seed)

    def _happens(self, rate: float) -> bool:
        return rate > 0 and self.random.random() < rate

    def _fault(self, kind: FaultKind, status: int, code: str, message: str) -> JSONResponse:
        self.injected[kind] += 1
        return JSONResponse(self.error_body(status, code, message), status_code=status, headers={"X-Simulated-Fault": kind})

    async def middleware(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if not request.url.path.startswith(self.api_prefix):
            return await call_next(request)  # /_admin/*, /health/*, /docs: never faulted
        self.calls += 1
        faults = self.settings
        if faults.outage:
            return self._fault("outage", 503, "service_unavailable", "The service is unavailable (simulated outage).")
        if faults.refuse_refunds and request.method == "POST" and request.url.path.endswith("/refunds"):
            return self._fault("refund_refused", 400, "refunds_disabled", "Refunds are disabled on this account (simulated).")
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if self._happens(faults.timeout_rate):
            await asyncio.sleep(faults.hang_seconds)
            return self._fault("timeout", 504, "timeout", "The request timed out (simulated); nothing was processed.")
        if self._happens(faults.error_rate):
            return self._fault("error", 503, "service_unavailable", "Temporary error (simulated); nothing was processed.")
        if self._happens(faults.drop_response_rate):
            response = await call_next(request)  # processed and committed...
            async for _ in response.body_iterator:  # ...and its response thrown away
                pass
            await asyncio.sleep(faults.hang_seconds)
            return self._fault("drop_response", 504, "timeout", "The request timed out (simulated).")
        if request.method == "POST" and self._happens(faults.tampered_answer_rate):
            response = await call_next(request)  # processed and committed...
            async for _ in response.body_iterator:  # ...and answered with something else
                pass
            self.injected["tampered_answer"] += 1
            return JSONResponse(TAMPERED_ANSWER, headers={"X-Simulated-Fault": "tampered_answer"})
        return await call_next(request)


def install_faults(app: FastAPI, api_prefix: str, error_body: ErrorBody, admin: Sequence[Any] = ()) -> Faults:
    """Faults for the routes under api_prefix, and the /_admin/faults and /_admin/stats routes
    (behind the `admin` dependencies)."""
    faults = Faults(api_prefix, error_body)
    app.state.faults = faults
    app.middleware("http")(faults.middleware)
    app.include_router(router, dependencies=list(admin))
    return faults


# --- /_admin/faults, /_admin/stats ---------------------------------------------------------------

router = APIRouter(prefix="/_admin", tags=["admin"])


@router.get("/faults", summary="The faults in force")
async def get_faults(request: Request) -> FaultSettings:
    return request.app.state.faults.settings


@router.put("/faults", summary="Replace the faults in force ({} clears them all)")
async def put_faults(settings: FaultSettings, request: Request) -> FaultSettings:
    request.app.state.faults.set(settings)
    return settings


@router.get("/stats", summary="PSP API calls received, and the faults injected into them, since start")
async def stats(request: Request) -> dict:
    faults: Faults = request.app.state.faults
    return {"calls": faults.calls, "faults_injected": dict(faults.injected)}
