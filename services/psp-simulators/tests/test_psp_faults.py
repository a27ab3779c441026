"""Faults injected at run time, the same in both simulators: outage, latency, timeouts, errors,
dropped responses; seeded runs repeat; {} clears them; /_admin and /health are never faulted.

hang_seconds is kept tiny, so a "timeout" here takes 50 ms."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from concerto_psp_simulators import cardpay, paynext

HANG = 0.05


@dataclass
class Psp:
    name: str
    client: httpx.AsyncClient

    async def charge(self, key: str, token: str = "tok_visa") -> httpx.Response:
        """One charge (cardpay) or payment (paynext), identified by key."""
        if self.name == "cardpay":
            body = {"amount": 1000, "currency": "eur", "source": token}
            return await self.client.post("/v1/charges", json=body, headers={"Idempotency-Key": key})
        body = {
            "merchantReference": key,
            "amount": {"value": 1000, "currency": "EUR"},
            "paymentMethod": {"type": "scheme", "token": token},
        }
        return await self.client.post("/payments", json=body)

    async def lookup(self, key: str) -> httpx.Response:
        if self.name == "cardpay":
            return await self.client.get("/v1/charges", params={"idempotency_key": key})
        return await self.client.get("/payments", params={"merchantReference": key})

    async def set_faults(self, **faults) -> None:
        response = await self.client.put("/_admin/faults", json=faults)
        assert response.status_code == 200, response.text

    async def ledger_keys(self) -> list[str]:
        return [c["key"] for c in (await self.client.get("/_admin/ledger")).json()["charges"]]

    async def injected(self) -> dict:
        return (await self.client.get("/_admin/stats")).json()["faults_injected"]

    def error_code(self, response: httpx.Response) -> str:
        """Each simulator reports a fault in its own API's error shape."""
        body = response.json()
        return body["error"]["code"] if self.name == "cardpay" else body["errorCode"]


@pytest.fixture(params=["cardpay", "paynext"])
async def psp(request, start, tmp_path) -> AsyncIterator[Psp]:
    module = {"cardpay": cardpay, "paynext": paynext}[request.param]
    async with start(module, tmp_path) as client:
        yield Psp(request.param, client)


async def test_an_outage_answers_503_at_once_and_processes_nothing(psp: Psp) -> None:
    await psp.set_faults(outage=True, error_rate=1)

    response = await psp.charge("k-1")

    assert response.status_code == 503
    assert response.headers["X-Simulated-Fault"] == "outage"
    assert psp.error_code(response) == "service_unavailable"
    assert await psp.ledger_keys() == []  # /_admin/* is never faulted
    assert (await psp.client.get("/health/ready")).status_code == 200  # nor is /health/*
    assert (await psp.injected())["outage"] == 1


async def test_latency_delays_every_call(psp: Psp) -> None:
    await psp.set_faults(latency_ms=100)

    started = time.monotonic()
    response = await psp.charge("k-2")

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.1


async def test_a_timeout_hangs_then_504_and_processes_nothing(psp: Psp) -> None:
    await psp.set_faults(timeout_rate=1, error_rate=1, hang_seconds=HANG)  # timeout comes before error

    started = time.monotonic()
    response = await psp.charge("k-3")

    assert response.status_code == 504
    assert time.monotonic() - started >= HANG
    assert response.headers["X-Simulated-Fault"] == "timeout"
    assert await psp.ledger_keys() == []
    assert await psp.injected() == {"outage": 0, "timeout": 1, "error": 0, "drop_response": 0, "tampered_answer": 0, "refund_refused": 0}


async def test_an_error_answers_503_and_processes_nothing(psp: Psp) -> None:
    await psp.set_faults(error_rate=1)

    response = await psp.charge("k-4")

    assert response.status_code == 503
    assert response.headers["X-Simulated-Fault"] == "error"
    assert await psp.ledger_keys() == []
    assert (await psp.injected())["error"] == 1


async def test_a_dropped_response_was_processed_and_a_retry_finds_it(psp: Psp) -> None:
    await psp.set_faults(drop_response_rate=1, hang_seconds=HANG)

    response = await psp.charge("k-5")

    assert response.status_code == 504
    assert response.headers["X-Simulated-Fault"] == "drop_response"
    assert await psp.ledger_keys() == ["k-5"]  # the ambiguous outcome: it did happen
    assert (await psp.injected())["drop_response"] == 1

    await psp.set_faults()
    found = await psp.lookup("k-5")
    retried = await psp.charge("k-5")  # the same key: the same charge, not a second one
    assert retried.status_code == 200
    assert await psp.ledger_keys() == ["k-5"]
    listed = found.json()["data"] if psp.name == "cardpay" else found.json()["payments"]
    reference = "id" if psp.name == "cardpay" else "pspReference"
    assert [item[reference] for item in listed] == [retried.json()[reference]]


async def test_a_seeded_run_repeats(psp: Psp) -> None:
    async def run() -> list[int]:
        await psp.set_faults(error_rate=0.5, seed=42)
        return [(await psp.lookup(f"k-{i}")).status_code for i in range(30)]

    first, second = await run(), await run()

    assert first == second
    assert {200, 503} <= set(first)  # both outcomes occur: the sequence is not trivial


async def test_an_empty_body_clears_every_fault(psp: Psp) -> None:
    await psp.set_faults(outage=True, error_rate=1, latency_ms=5, timeout_rate=1, drop_response_rate=1, hang_seconds=1, seed=3)
    assert (await psp.client.get("/_admin/faults")).json()["outage"] is True

    await psp.set_faults()

    assert (await psp.client.get("/_admin/faults")).json() == {
        "error_rate": 0.0,
        "latency_ms": 0,
        "timeout_rate": 0.0,
        "outage": False,
        "drop_response_rate": 0.0,
        "tampered_answer_rate": 0.0,
        "hang_seconds": 30.0,
        "seed": None,
        "refuse_refunds": False,
    }
    assert (await psp.charge("k-6")).status_code == 200


async def test_stats_count_api_calls_only(psp: Psp) -> None:
    await psp.charge("k-7")
    await psp.lookup("k-7")
    await psp.client.get("/health/live")
    await psp.client.get("/_admin/ledger")

    assert (await psp.client.get("/_admin/stats")).json() == {
        "calls": 2,
        "faults_injected": {"outage": 0, "timeout": 0, "error": 0, "drop_response": 0, "tampered_answer": 0, "refund_refused": 0},
    }


@pytest.mark.parametrize("faults", [{"error_rate": 1.5}, {"latency_ms": -1}, {"outage": "maybe"}, {"unknown": 1}])
async def test_invalid_faults_are_rejected(psp: Psp, faults: dict) -> None:
    response = await psp.client.put("/_admin/faults", json=faults)

    assert response.status_code == (400 if psp.name == "cardpay" else 422)
    assert (await psp.client.get("/_admin/faults")).json()["error_rate"] == 0.0


async def test_a_tampered_answer_is_sent_after_the_charge_is_made(psp: Psp) -> None:
    """The charge is on the books; the answer says something else (OWASP API10's hostile peer).
    A lookup (GET) is never tampered with, so a careful client can find out what happened."""
    await psp.set_faults(tampered_answer_rate=1)

    answer = await psp.charge("k-tampered")

    assert answer.status_code == 200 and answer.headers["X-Simulated-Fault"] == "tampered_answer"
    assert answer.json()["card"]["last4"] == "4242424242424242", "not what the provider's API documents"
    assert await psp.ledger_keys() == ["k-tampered"], "processed and committed before the answer was replaced"
    assert (await psp.injected())["tampered_answer"] == 1


async def test_refuse_refunds_answers_a_refund_400_and_processes_nothing(psp: Psp) -> None:
    """A refusal for good (the account may not refund): 400 at once, nothing refunded; charges
    still go through."""
    charged = await psp.charge("k-refuse")
    assert charged.status_code == 200
    await psp.set_faults(refuse_refunds=True)
    assert (await psp.charge("k-refuse-2")).status_code == 200
    ledger = (await psp.client.get("/_admin/ledger")).json()
    before = len(ledger["refunds"])
    if psp.name == "cardpay":
        refunded = await psp.client.post("/v1/refunds", json={"charge": charged.json()["id"]}, headers={"Idempotency-Key": "r-refuse"})
    else:
        reference = charged.json()["pspReference"]
        body = {"merchantReference": "r-refuse", "amount": {"value": 1000, "currency": "EUR"}}
        refunded = await psp.client.post(f"/payments/{reference}/refunds", json=body)
    assert refunded.status_code == 400, refunded.text
    assert refunded.headers["X-Simulated-Fault"] == "refund_refused"
    assert len((await psp.client.get("/_admin/ledger")).json()["refunds"]) == before
    assert (await psp.injected())["refund_refused"] == 1
