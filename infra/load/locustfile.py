"""Load for demos: what Concerto's customers do through the gateway, as Locust users.

    make load                                   # the web UI on http://127.0.0.1:8089, against `make up`'s stack
    .venv/bin/locust -f infra/load/locustfile.py --host http://127.0.0.1:8080 --headless -u 6 -r 2 -t 30s

Three kinds of customer, weighted as a shop's visitors are (most look, some buy, a few change
their minds). Each signs in at the development issuer as a demo customer (`load-0001` ...
`load-0500`, password `demo`: the local stack's; DEV_ISSUER_PASSWORD otherwise), with a bearer
token, as the README's curl does:

- Browser (5): looks at the catalogue, now and then at their orders or their loyalty points;
- Buyer (3): a visit: signs in, looks at the catalogue, places an order (1 card in 4 is declined),
  follows it until it ends, looks at their loyalty points;
- ChangeOfMind (1): places an order, asks to cancel it (at once, or up to 2.5 s on), follows it
  until it ends, looks at their orders.

Requests are named by route ("/api/v1/orders/[id]"), so Locust's table has one row per kind. Each
order's whole life is one more row, type ORDER ("placed → ended: ..."), timed from its
`created_at` to its `updated_at` when it ended: the saga's duration as the order context saw it.

What the business decides is a success: a declined card ends CANCELLED `payment_declined`, a
cancellation refused once the parcel is with the carrier is a 409 (the order then ends
COMPLETED), an order for stock that ran out ends CANCELLED `out_of_stock`. What is a failure:
any other status code (a 429 too: the mix should stay within the gateway's rate limits), an
order that ends otherwise than its card or its cancellation says, or one still running after
LOAD_ORDER_DEADLINE seconds.

Settings, from the environment:
  DEV_ISSUER_URL        the development issuer (default http://127.0.0.1:8300)
  DEV_ISSUER_PASSWORD   the demo customers' password (default demo, the local stack's)
  LOAD_CUSTOMERS        how many demo customers the users sign in as (default 500; the gateway
                        takes 10 orders a minute per customer, so many share the load)
  LOAD_MIN_STOCK        orders go to products with at least this many units (default 100), so a
                        demo does not empty the shelves
  LOAD_ORDER_DEADLINE   seconds an order may take to end (default 60)
  LOAD_ORDER_LOG        a file to append each placed order's id to (the end-to-end test's books)
"""

from __future__ import annotations

import os
import random
import time
from datetime import datetime
from typing import Any

import gevent
from locust import HttpUser, between, task
from locust.clients import ResponseContextManager

DEV_ISSUER_URL = os.environ.get("DEV_ISSUER_URL", "http://127.0.0.1:8300").rstrip("/")
DEV_ISSUER_PASSWORD = os.environ.get("DEV_ISSUER_PASSWORD", "demo")
CUSTOMERS = int(os.environ.get("LOAD_CUSTOMERS", "500"))
MIN_STOCK = int(os.environ.get("LOAD_MIN_STOCK", "100"))
ORDER_DEADLINE = float(os.environ.get("LOAD_ORDER_DEADLINE", "60"))
ORDER_LOG = os.environ.get("LOAD_ORDER_LOG")
POLL_EVERY = 0.5  # seconds between two looks at a running order, as a client's page would

# The payment providers' test cards (services/payment/.../cards.py) and how an order paid with
# each ends: (status, cancellation_reason). An approved card's order may still end out_of_stock
# (reserved after payment, then refunded): the shop's answer, not an error.
APPROVED = {("COMPLETED", None), ("CANCELLED", "out_of_stock")}
CARDS = {
    "tok_visa": APPROVED,
    "tok_mastercard": APPROVED,
    "tok_amex": APPROVED,
    "tok_chargeDeclined": {("CANCELLED", "payment_declined")},
    "tok_chargeDeclinedInsufficientFunds": {("CANCELLED", "payment_insufficient_funds")},
}
# What a buyer pays with: 1 in 4 declined. Each user goes round from its own starting point.
WALLET = [
    "tok_visa", "tok_mastercard", "tok_chargeDeclined", "tok_visa",
    "tok_amex", "tok_visa", "tok_chargeDeclinedInsufficientFunds", "tok_mastercard",
]  # fmt: skip
APPROVING = ("tok_visa", "tok_mastercard", "tok_amex")
TERMINAL = {"COMPLETED", "CANCELLED"}


def expect(response: ResponseContextManager, *statuses: int) -> Any:
    """The answer's JSON if its status is one of `statuses` (a success, a 409 too if expected);
    else the request is a failure (and None is returned)."""
    if response.status_code in statuses:
        try:
            answer = response.json()
        except ValueError:
            response.failure(f"{response.status_code} without JSON: {response.text[:200]}")
            return None
        response.success()
        return answer
    response.failure(f"{response.status_code}: {response.text[:300]}")
    return None


def saga_ms(order: dict[str, Any]) -> float:
    """From placement to the end, as the order context stamped them."""
    created, ended = (datetime.fromisoformat(order[k].replace("Z", "+00:00")) for k in ("created_at", "updated_at"))
    return max((ended - created).total_seconds() * 1000, 0.0)


class DemoCustomer(HttpUser):
    """A demo customer of the development issuer, signed in with a bearer token."""

    abstract = True
    host = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080")

    customer_id: str = ""
    token_expires: float = 0.0

    def sign_in(self) -> bool:
        """Signs in as one of the demo customers, chosen at random: a new visit."""
        customer_id = f"load-{random.randint(1, CUSTOMERS):04d}"
        form = {"grant_type": "password", "username": customer_id, "password": DEV_ISSUER_PASSWORD}
        # Not the gateway: no bearer token goes with it (None drops the session's header).
        with self.client.post(
            f"{DEV_ISSUER_URL}/token", data=form, headers={"Authorization": None}, name="sign in (dev issuer /token)", catch_response=True
        ) as answer:
            token = expect(answer, 200)
        if not token:
            return False
        self.customer_id = customer_id
        self.token_expires = time.monotonic() + token.get("expires_in", 3600) - 60
        self.client.headers["Authorization"] = f"Bearer {token['access_token']}"
        return True

    def signed_in(self) -> bool:
        return time.monotonic() < self.token_expires or self.sign_in()

    # --- what a customer does ---

    def catalogue(self) -> list[dict[str, Any]]:
        with self.client.get("/api/v1/products", catch_response=True) as answer:
            products = expect(answer, 200)
        return products["items"] if products else []

    def my_orders(self) -> None:
        with self.client.get("/api/v1/orders", params={"limit": 10}, name="/api/v1/orders (mine)", catch_response=True) as answer:
            expect(answer, 200)

    def loyalty(self) -> None:
        path, name = f"/api/v1/customers/{self.customer_id}/loyalty", "/api/v1/customers/[id]/loyalty"
        with self.client.get(path, name=name, catch_response=True) as answer:
            expect(answer, 200)

    def place(self, products: list[dict[str, Any]], card: str) -> str | None:
        """Places an order of a plentiful product; its id, or None if it was not accepted."""
        if not products:
            return None
        plentiful = [p for p in products if p["available"] is None or p["available"] >= MIN_STOCK]
        product = random.choice(plentiful or products)
        body = {
            "customer": {"id": self.customer_id, "email": f"{self.customer_id}@example.com", "name": "Ada Lovelace"},
            "items": [{"sku": product["sku"], "quantity": random.randint(1, 2)}],
            "shipping_address": {
                "name": "Ada Lovelace", "line1": "12 Analytical Way", "city": "London", "postal_code": "N1 9GU", "country": "GB",
            },  # fmt: skip
            "payment": {"token": card},
            "promotion_codes": [],
            "channel": "web",
        }
        headers = {"Idempotency-Key": f"load-{random.getrandbits(64):016x}"}
        with self.client.post("/api/v1/orders", json=body, headers=headers, catch_response=True) as answer:
            accepted = expect(answer, 202)
        if not accepted:
            return None
        if ORDER_LOG:
            with open(ORDER_LOG, "a") as log:
                log.write(accepted["order_id"] + "\n")
        return accepted["order_id"]

    def cancel(self, order_id: str) -> int | None:
        """Asks to cancel: 202 (it will end CANCELLED) or 409 (too late, it ships); the status."""
        with self.client.post(f"/api/v1/orders/{order_id}/cancel", name="/api/v1/orders/[id]/cancel", catch_response=True) as answer:
            return answer.status_code if expect(answer, 202, 409) is not None else None

    def follow(self, order_id: str, journey: str, ends: set[tuple[str, str | None]]) -> None:
        """Looks at the order until it ends, then reports its life as one ORDER row: a failure if
        it ended otherwise than `ends` allows, or not within LOAD_ORDER_DEADLINE."""
        deadline, order = time.monotonic() + ORDER_DEADLINE, None
        while time.monotonic() < deadline:
            with self.client.get(f"/api/v1/orders/{order_id}", name="/api/v1/orders/[id]", catch_response=True) as answer:
                order = expect(answer, 200)
            if order is None or order["status"] in TERMINAL:
                break
            gevent.sleep(POLL_EVERY)
        if order is None:
            return  # the GET's failure says why
        error = None
        if order["status"] not in TERMINAL:
            error = AssertionError(f"order {order_id} still {order['status']} after {ORDER_DEADLINE:g} s")
        elif (order["status"], order["cancellation_reason"]) not in ends:
            ended = f"{order['status']} {order['cancellation_reason'] or ''}".strip()
            error = AssertionError(f"order {order_id} ended {ended}, expected one of {sorted(ends, key=str)}")
        self.environment.events.request.fire(
            request_type="ORDER", name=f"placed → ended: {journey}", response_time=saga_ms(order),
            response_length=0, exception=error, context={}, url=None, response=None,
        )  # fmt: skip


class Browser(DemoCustomer):
    """Looks around: the catalogue mostly, sometimes their orders or points. Orders nothing."""

    weight = 5
    wait_time = between(1, 4)

    def on_start(self) -> None:
        self.sign_in()

    @task(4)
    def browse(self) -> None:
        if self.signed_in():
            self.catalogue()

    @task(1)
    def orders(self) -> None:
        if self.signed_in():
            self.my_orders()

    @task(1)
    def points(self) -> None:
        if self.signed_in():
            self.loyalty()


class Buyer(DemoCustomer):
    """A visit that ends in an order: signs in, browses, buys, follows the order, checks points."""

    weight = 3
    wait_time = between(2, 6)

    def on_start(self) -> None:
        self.next_card = random.randrange(len(WALLET))  # its own starting point in the wallet

    @task
    def buy(self) -> None:
        if not self.sign_in():
            return
        products = self.catalogue()
        gevent.sleep(random.uniform(0.5, 2.0))  # reads the page, picks
        card = WALLET[self.next_card % len(WALLET)]
        self.next_card += 1
        order_id = self.place(products, card)
        if order_id:
            self.follow(order_id, "card declined" if card not in APPROVING else "card approved", CARDS[card])
            self.loyalty()


class ChangeOfMind(DemoCustomer):
    """Buys, then asks to cancel a moment later: before the pivot it is cancelled (and refunded),
    after it the shop says 409 and the order completes. Both are the business's answer."""

    weight = 1
    wait_time = between(2, 6)

    @task
    def buy_and_cancel(self) -> None:
        if not self.sign_in():
            return
        order_id = self.place(self.catalogue(), random.choice(APPROVING))
        if not order_id:
            return
        # Half ask at once (cancelled, refunded); the others a moment later, by when an order
        # is often with the carrier (409, it completes): the saga takes a second or two.
        gevent.sleep(random.choice([0.0, random.uniform(0.5, 2.5)]))
        cancelled = self.cancel(order_id)
        if cancelled is not None:
            ends = {("CANCELLED", "customer_cancelled"), ("CANCELLED", "out_of_stock")} if cancelled == 202 else {("COMPLETED", None)}
            self.follow(order_id, "cancel asked", ends)
        self.my_orders()
