"""cardpay, the charges API: approvals, declines, idempotency keys, lookups, refunds, the ledger."""

from __future__ import annotations

import re

import httpx
import pytest

from concerto_psp_simulators import cardpay


def charge(amount: int = 1999, source: str = "tok_visa", currency: str = "eur", **extra) -> dict:
    return {"amount": amount, "currency": currency, "source": source, **extra}


async def post_charge(client: httpx.AsyncClient, key: str, body: dict) -> httpx.Response:
    return await client.post("/v1/charges", json=body, headers={"Idempotency-Key": key})


async def post_refund(client: httpx.AsyncClient, key: str, body: dict) -> httpx.Response:
    return await client.post("/v1/refunds", json=body, headers={"Idempotency-Key": key})


@pytest.mark.parametrize(
    ("token", "brand", "last4"),
    [("tok_visa", "visa", "4242"), ("tok_mastercard", "mastercard", "4444"), ("tok_amex", "amex", "8431")],
)
async def test_a_good_card_is_charged(cardpay_client: httpx.AsyncClient, token: str, brand: str, last4: str) -> None:
    response = await post_charge(
        cardpay_client, "pay-1", charge(source=token, currency="EUR", description="order 1", metadata={"order_id": "o-1"})
    )

    assert response.status_code == 200
    body = response.json()
    assert re.fullmatch(r"ch_[0-9a-f]{24}", body["id"])
    assert body["object"] == "charge"
    assert (body["amount"], body["currency"], body["status"], body["paid"]) == (1999, "eur", "succeeded", True)
    assert body["card"] == {"brand": brand, "last4": last4}
    assert body["idempotency_key"] == "pay-1"
    assert body["metadata"] == {"order_id": "o-1"}
    assert isinstance(body["created"], int)
    assert "Idempotent-Replayed" not in response.headers


@pytest.mark.parametrize(
    ("token", "decline_code", "last4"),
    [("tok_chargeDeclined", "generic_decline", "0002"), ("tok_chargeDeclinedInsufficientFunds", "insufficient_funds", "9995")],
)
async def test_a_declined_card_gets_402_and_the_failed_charge_is_kept(
    cardpay_client: httpx.AsyncClient, token: str, decline_code: str, last4: str
) -> None:
    response = await post_charge(cardpay_client, "pay-2", charge(source=token))

    assert response.status_code == 402
    error = response.json()["error"]
    assert (error["type"], error["code"], error["decline_code"]) == ("card_error", "card_declined", decline_code)
    assert error["message"]
    kept = (await cardpay_client.get(f"/v1/charges/{error['charge']}")).json()
    assert (kept["status"], kept["paid"], kept["decline_code"]) == ("failed", False, decline_code)
    assert kept["card"] == {"brand": "visa", "last4": last4}


async def test_an_unknown_token_is_an_invalid_source_and_nothing_is_recorded(cardpay_client: httpx.AsyncClient) -> None:
    response = await post_charge(cardpay_client, "pay-3", charge(source="tok_nope"))

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["code"] == "invalid_source"
    assert (await cardpay_client.get("/_admin/ledger")).json()["charges"] == []


async def test_a_charge_needs_an_idempotency_key(cardpay_client: httpx.AsyncClient) -> None:
    response = await cardpay_client.post("/v1/charges", json=charge())

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "body",
    [
        charge(amount=0),
        charge(amount=-5),
        charge(amount=10.5),
        charge(amount="100"),
        charge(currency="EURO"),
        {"amount": 100, "currency": "eur"},
        charge(unexpected="field"),
    ],
)
async def test_a_malformed_charge_is_a_400_in_cardpays_own_shape(cardpay_client: httpx.AsyncClient, body: dict) -> None:
    response = await post_charge(cardpay_client, "pay-bad", body)

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["message"]


async def test_the_same_key_and_body_replays_the_first_response(cardpay_client: httpx.AsyncClient) -> None:
    first = await post_charge(cardpay_client, "pay-4", charge())
    again = await post_charge(cardpay_client, "pay-4", charge(currency="EUR"))  # the same request

    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len((await cardpay_client.get("/_admin/ledger")).json()["charges"]) == 1


async def test_a_decline_is_replayed_too(cardpay_client: httpx.AsyncClient) -> None:
    first = await post_charge(cardpay_client, "pay-5", charge(source="tok_chargeDeclined"))
    again = await post_charge(cardpay_client, "pay-5", charge(source="tok_chargeDeclined"))

    assert (again.status_code, again.json()) == (402, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"


async def test_the_same_key_with_another_body_is_a_conflict(cardpay_client: httpx.AsyncClient) -> None:
    await post_charge(cardpay_client, "pay-6", charge(amount=1000))
    response = await post_charge(cardpay_client, "pay-6", charge(amount=2000))

    assert response.status_code == 409
    assert response.json()["error"]["type"] == "idempotency_error"
    assert len((await cardpay_client.get("/_admin/ledger")).json()["charges"]) == 1


async def test_a_charge_is_found_by_its_idempotency_key_and_its_id(cardpay_client: httpx.AsyncClient) -> None:
    created = (await post_charge(cardpay_client, "pay-7", charge())).json()

    found = (await cardpay_client.get("/v1/charges", params={"idempotency_key": "pay-7"})).json()
    assert found["object"] == "list"
    assert [c["id"] for c in found["data"]] == [created["id"]]
    assert (await cardpay_client.get("/v1/charges", params={"idempotency_key": "nobody"})).json() == {
        "object": "list",
        "data": [],
    }
    assert (await cardpay_client.get(f"/v1/charges/{created['id']}")).json()["status"] == "succeeded"
    missing = await cardpay_client.get("/v1/charges/ch_000000000000000000000000")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "resource_missing"


async def test_a_full_refund_then_a_second_refund_is_refused(cardpay_client: httpx.AsyncClient) -> None:
    charged = (await post_charge(cardpay_client, "pay-8", charge(amount=2500))).json()

    refund = await post_refund(cardpay_client, "refund-8", {"charge": charged["id"]})
    assert refund.status_code == 200
    body = refund.json()
    assert re.fullmatch(r"re_[0-9a-f]{24}", body["id"])
    assert (body["object"], body["charge"], body["amount"], body["currency"], body["status"]) == (
        "refund", charged["id"], 2500, "eur", "succeeded",
    )

    replayed = await post_refund(cardpay_client, "refund-8", {"charge": charged["id"]})
    assert (replayed.status_code, replayed.json()) == (200, body)
    assert replayed.headers["Idempotent-Replayed"] == "true"

    second = await post_refund(cardpay_client, "refund-8b", {"charge": charged["id"]})
    assert second.status_code == 400
    assert second.json()["error"]["code"] == "charge_already_refunded"

    now = (await cardpay_client.get(f"/v1/charges/{charged['id']}")).json()
    assert (now["amount_refunded"], now["refunded"]) == (2500, True)


async def test_partial_refunds_up_to_the_amount_charged(cardpay_client: httpx.AsyncClient) -> None:
    charged = (await post_charge(cardpay_client, "pay-9", charge(amount=1000))).json()

    assert (await post_refund(cardpay_client, "r-9a", {"charge": charged["id"], "amount": 600})).status_code == 200
    too_much = await post_refund(cardpay_client, "r-9b", {"charge": charged["id"], "amount": 500})
    assert too_much.status_code == 400
    assert too_much.json()["error"]["code"] == "amount_too_large"
    rest = await post_refund(cardpay_client, "r-9c", {"charge": charged["id"]})  # default: what is left
    assert (rest.status_code, rest.json()["amount"]) == (200, 400)


async def test_refunds_that_cannot_be_made(cardpay_client: httpx.AsyncClient) -> None:
    declined = (await post_charge(cardpay_client, "pay-10", charge(source="tok_chargeDeclined"))).json()

    not_paid = await post_refund(cardpay_client, "r-10", {"charge": declined["error"]["charge"]})
    assert not_paid.status_code == 400
    assert not_paid.json()["error"]["code"] == "charge_not_paid"

    unknown = await post_refund(cardpay_client, "r-11", {"charge": "ch_000000000000000000000000"})
    assert unknown.status_code == 404
    assert unknown.json()["error"] == {
        "type": "invalid_request_error", "code": "resource_missing", "message": unknown.json()["error"]["message"],
    }

    assert (await cardpay_client.post("/v1/refunds", json={"charge": "ch_x"})).status_code == 400  # no key


async def test_a_refund_key_reused_for_another_refund_is_a_conflict(cardpay_client: httpx.AsyncClient) -> None:
    charged = (await post_charge(cardpay_client, "pay-12", charge(amount=1000))).json()
    await post_refund(cardpay_client, "r-12", {"charge": charged["id"], "amount": 100})

    response = await post_refund(cardpay_client, "r-12", {"charge": charged["id"], "amount": 200})
    assert response.status_code == 409
    assert response.json()["error"]["type"] == "idempotency_error"


async def test_the_ledger_holds_every_charge_and_refund_accepted_or_refused(cardpay_client: httpx.AsyncClient) -> None:
    ok = (await post_charge(cardpay_client, "k-ok", charge(amount=500, source="tok_mastercard"))).json()
    declined = (await post_charge(cardpay_client, "k-no", charge(amount=700, source="tok_chargeDeclined"))).json()
    refund = (await post_refund(cardpay_client, "k-refund", {"charge": ok["id"]})).json()
    await post_refund(cardpay_client, "k-refund-again", {"charge": ok["id"]})  # refused: already refunded

    ledger = (await cardpay_client.get("/_admin/ledger")).json()

    assert ledger["gateway"] == "cardpay"
    assert [{k: c[k] for k in ("reference", "key", "amount", "currency", "status", "card_last4")} for c in ledger["charges"]] == [
        {"reference": ok["id"], "key": "k-ok", "amount": 500, "currency": "eur", "status": "succeeded", "card_last4": "4444"},
        {"reference": declined["error"]["charge"], "key": "k-no", "amount": 700, "currency": "eur", "status": "failed",
         "card_last4": "0002"},
    ]
    assert all(isinstance(c["created"], int) for c in ledger["charges"])
    refunds = [{k: r[k] for k in ("charge_reference", "key", "amount", "currency", "status")} for r in ledger["refunds"]]
    assert refunds == [
        {"charge_reference": ok["id"], "key": "k-refund", "amount": 500, "currency": "eur", "status": "succeeded"},
        {"charge_reference": ok["id"], "key": "k-refund-again", "amount": 0, "currency": "eur", "status": "failed"},
    ]
    assert ledger["refunds"][0]["reference"] == refund["id"]


async def test_the_ledger_survives_a_restart(start, tmp_path) -> None:
    async with start(cardpay, tmp_path) as client:
        first = await post_charge(client, "pay-13", charge())
    async with start(cardpay, tmp_path) as client:
        again = await post_charge(client, "pay-13", charge())
        assert again.json() == first.json()
        assert again.headers["Idempotent-Replayed"] == "true"
        assert [c["key"] for c in (await client.get("/_admin/ledger")).json()["charges"]] == ["pay-13"]
    assert (tmp_path / "cardpay.db").exists()


async def test_health_openapi_and_unknown_urls(cardpay_client: httpx.AsyncClient) -> None:
    assert (await cardpay_client.get("/health/live")).status_code == 200
    assert (await cardpay_client.get("/health/ready")).status_code == 200
    assert (await cardpay_client.get("/openapi.json")).json()["info"]["title"] == "cardpay (simulated PSP)"
    unknown = await cardpay_client.get("/v1/nothing-here")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["type"] == "invalid_request_error"
