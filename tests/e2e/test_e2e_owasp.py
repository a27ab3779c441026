"""The OWASP API Security Top 10 (2023), item by item, against the running stack: each test
names the item it checks and fails if the platform lets that attack through. Customers sign in
at the stack's development issuer, as the README shows.

API7 (server-side request forgery) applies only in that nothing a caller sends is a URL the
platform would fetch: test_api7 checks the OpenAPI document for that."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from concerto_runtime.service_tokens import HEADER, new_key_pair, service_token

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ISSUER = os.environ.get("DEV_ISSUER_URL", "http://127.0.0.1:8300")
STACK_DATA_DIR = os.environ.get("STACK_DATA_DIR")
PARTNER = {"X-API-Key": os.environ.get("CONCERTO_API_KEY", "dev-key")}
ADMIN = {"X-API-Key": os.environ.get("CONCERTO_ADMIN_API_KEY", "dev-admin-key")}
# The services behind the gateway, as the test stack runs them (infra/devstack/stack.py).
INTERNAL = {
    "order": os.environ.get("ORDER_SERVICE_URL", "http://127.0.0.1:8101").split(",")[0],
    "payment": os.environ.get("PAYMENT_SERVICE_URL", "http://127.0.0.1:8102").split(",")[0],
    "fulfillment": os.environ.get("FULFILLMENT_SERVICE_URL", "http://127.0.0.1:8103").split(",")[0],
}
CARDPAY = os.environ.get("CARDPAY_URL", "http://127.0.0.1:8201")



def encoded(part: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def hs256_keyed_with(public_jwk: dict, claims: dict) -> str:
    """The classic forgery: an HMAC token whose secret is the issuer's public key, for a verifier
    that lets the token choose its algorithm. Made by hand: pyjwt refuses to make it."""
    pem = jwt.PyJWK(public_jwk).key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{encoded({'alg': 'HS256', 'typ': 'JWT', 'kid': public_jwk['kid']})}.{encoded(claims)}"
    signature = base64.urlsafe_b64encode(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    return f"{signing_input}.{signature}"


async def openapi(anonymous: httpx.AsyncClient) -> dict:
    document = await anonymous.get("/openapi.json")
    assert document.status_code == 200
    return document.json()


# --- API1: broken object level authorization ------------------------------------------------


async def test_api1_two_customers_each_see_and_cancel_only_their_own_orders(api, anonymous, payment_faults, sign_in):
    # Payments take a few seconds, so both orders are still cancellable when the customers act.
    for gateway in api.PAYMENT_GATEWAYS:
        await payment_faults.set(gateway, latency_ms=3000)
    alice_id, bob_id = api.unique("alice"), api.unique("bob")
    alice, bob = await sign_in(alice_id), await sign_in(bob_id)
    sku = (await api.product(prefer="CON-TUNER"))["sku"]
    alices = (await api.place(api.body(sku, customer_id=alice_id), headers=alice)).order_id
    bobs = (await api.place(api.body(sku, customer_id=bob_id), headers=bob)).order_id

    for intruder, victims_order in ((bob, alices), (alice, bobs)):
        assert (await anonymous.get(f"/api/v1/orders/{victims_order}", headers=intruder)).status_code == 404
        assert (await anonymous.get(f"/api/v1/orders/{victims_order}/timeline", headers=intruder)).status_code == 404
        assert (await anonymous.post(f"/api/v1/orders/{victims_order}/cancel", headers=intruder)).status_code == 404
    assert [o["order_id"] for o in (await anonymous.get("/api/v1/orders", headers=alice)).json()["items"]] == [alices]
    assert [o["order_id"] for o in (await anonymous.get("/api/v1/orders", headers=bob)).json()["items"]] == [bobs]
    assert (await anonymous.get(f"/api/v1/customers/{alice_id}/loyalty", headers=bob)).status_code == 404
    assert (await anonymous.post(f"/api/v1/orders/{alices}/cancel", headers=alice)).status_code == 202
    assert (await anonymous.post(f"/api/v1/orders/{bobs}/cancel", headers=bob)).status_code == 202

    for order_id in (alices, bobs):
        order = await api.terminal(order_id, timeout=api.PAYMENT_DEADLINE + 30)
        assert (order["status"], order["cancellation_reason"]) == ("CANCELLED", "customer_cancelled"), order


# --- API2: broken authentication ------------------------------------------------------------


async def test_api2_forged_tampered_and_unsigned_tokens_are_refused(api, anonymous, sign_in):
    genuine = (await sign_in(api.unique("mallory")))["Authorization"].removeprefix("Bearer ")
    header, payload, signature = genuine.split(".")
    claims = jwt.decode(genuine, options={"verify_signature": False})
    async with httpx.AsyncClient(base_url=ISSUER, timeout=10) as issuer:
        public_jwk = (await issuer.get("/jwks.json")).json()["keys"][0]
    forgeries = {
        "another customer's id in a signed token": f"{header}.{encoded(claims | {'sub': 'cust-victim'})}.{signature}",
        "the admin role added": f"{header}.{encoded(claims | {'roles': ['admin']})}.{signature}",
        "no signature (alg none)": f"{encoded({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "HS256 keyed with the public key (algorithm confusion)": hs256_keyed_with(public_jwk, claims),
        "not a token at all": "letmein",
    }
    for what, token in forgeries.items():
        answer = await anonymous.get("/api/v1/orders", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, f"{what}: {answer.status_code} {answer.text}"
        assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert (await anonymous.get("/api/v1/orders", headers={"Authorization": f"Bearer {genuine}"})).status_code == 200


async def test_api2_no_operation_answers_without_a_credential(anonymous):
    document = await openapi(anonymous)
    reached = []
    for path, operations in document["paths"].items():
        if path.startswith("/health/"):
            continue
        concrete = path.replace("{dead_letter_id}", "1")
        for part in ("order_id", "customer_id", "sku", "name", "context"):
            concrete = concrete.replace(f"{{{part}}}", "x")
        for method in operations:
            answer = await anonymous.request(method.upper(), concrete)
            if answer.status_code != 401:
                reached.append(f"{method.upper()} {path}: {answer.status_code}")
    assert not reached, f"answered without a credential: {reached}"


# --- API3: broken object property level authorization ---------------------------------------


async def test_api3_a_caller_cannot_set_properties_the_platform_owns(api):
    body = api.body((await api.product(prefer="CON-TUNER"))["sku"])
    for smuggled in (
        {"status": "COMPLETED"},
        {"order_id": "ord-chosen-by-me"},
        {"total": {"amount": "0.00", "currency": "GBP"}},
        {"payment_method_id": "pm-someone-elses"},
        {"customer": body["customer"] | {"tier": "gold"}},
        {"items": [{"sku": body["items"][0]["sku"], "quantity": 1, "unit_price": "0.01"}]},
    ):
        answer = await api.http.post("/api/v1/orders", json=body | smuggled)
        assert answer.status_code == 422, f"{smuggled}: {answer.status_code} {answer.text}"


async def test_api3_no_answer_exposes_the_card_token_or_the_vault_reference(api):
    token = "tok_visa"
    placed = await api.place(api.body((await api.product(prefer="CON-TUNER"))["sku"], token=token))
    await api.terminal(placed.order_id)
    answers = [
        placed.response,
        await api.http.get(f"/api/v1/orders/{placed.order_id}"),
        await api.http.get(f"/api/v1/orders/{placed.order_id}/timeline"),
        await api.http.get("/api/v1/orders", params={"customer_id": placed.customer_id}),
    ]
    for answer in answers:
        assert answer.status_code in (200, 202)
        assert token not in answer.text and "payment_method_id" not in answer.text, f"{answer.request.url}: {answer.text}"


@pytest.mark.skipif(not STACK_DATA_DIR, reason="STACK_DATA_DIR is not set: the stack's logs are not known (make test sets it)")
async def test_api3_no_log_line_carries_a_card_token(api):
    """The card token reaches the payment service and the provider, and no log (test_e2e_events
    checks the events). Every order the suite has placed so far paid with a tok_* token."""
    placed = await api.place(api.body((await api.product(prefer="CON-TUNER"))["sku"], token="tok_visa"))
    await api.terminal(placed.order_id)
    logs = sorted((Path(STACK_DATA_DIR) / "logs").glob("*.log"))
    assert logs, f"no logs under {STACK_DATA_DIR}/logs"
    leaking = [log.name for log in logs if re.search(rb"tok_[A-Za-z]", log.read_bytes())]
    assert not leaking, f"card tokens in the logs of {leaking}"


# --- API4: unrestricted resource consumption -------------------------------------------------


async def test_api4_oversized_bodies_lists_strings_and_pages_are_refused(api):
    body = api.body((await api.product(prefer="CON-TUNER"))["sku"])
    huge = await api.http.post("/api/v1/orders", content=b'{"padding": "' + b"x" * 200_000 + b'"}', headers={"Content-Type": "application/json"})
    assert huge.status_code == 413 and huge.headers["content-type"] == "application/problem+json", huge.text
    too_many_items = body | {"items": [body["items"][0]] * 51}
    long_line = body | {"shipping_address": body["shipping_address"] | {"line1": "x" * 10_000}}
    for oversized in (too_many_items, long_line):
        assert (await api.http.post("/api/v1/orders", json=oversized)).status_code == 422
    assert (await api.http.get("/api/v1/admin/sagas", params={"limit": 100_000}, headers=ADMIN)).status_code == 422


# --- API5: broken function level authorization ----------------------------------------------


async def test_api5_customers_and_partners_reach_no_admin_operation(api, anonymous, sign_in):
    customer = await sign_in(api.unique("eve"))
    document = await openapi(anonymous)
    admin_operations = [
        (method.upper(), path.replace("{dead_letter_id}", "1").replace("{sku}", "CON-ROSIN").replace("{name}", "cardpay").replace("{context}", "loyalty"))
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "admin" in operation.get("tags", [])
    ]
    assert len(admin_operations) >= 9, admin_operations
    for method, path in admin_operations:
        for who, credential in (("a customer", customer), ("the partner key", PARTNER)):
            answer = await anonymous.request(method, path, headers=credential, json={} if method == "PUT" else None)
            assert answer.status_code == 403, f"{who}: {method} {path} answered {answer.status_code}"


async def test_api5_the_services_and_the_simulators_refuse_callers_without_a_token():
    forged = service_token(new_key_pair()[0], "gateway", "order")  # a key that is not the gateway's
    async with httpx.AsyncClient(timeout=10) as client:
        calls = [
            await client.get(f"{INTERNAL['order']}/orders/anything"),
            await client.get(f"{INTERNAL['order']}/orders/anything", headers={HEADER: forged}),
            await client.put(f"{INTERNAL['payment']}/payment-gateways/cardpay/faults", json={"outage": True}),
            await client.put(f"{INTERNAL['fulfillment']}/inventory/CON-ROSIN", json={"quantity": 0}),
            await client.put(f"{CARDPAY}/_admin/faults", json={"outage": True}),
            await client.get(f"{CARDPAY}/_admin/ledger", headers={HEADER: service_token(new_key_pair()[0], "payment", "cardpay")}),
        ]
    assert [call.status_code for call in calls] == [401] * 6, [(str(c.request.url), c.status_code) for c in calls]


@pytest.mark.skipif(not STACK_DATA_DIR, reason="STACK_DATA_DIR is not set: the stack's keys are not known (make test sets it)")
async def test_api5_the_payment_services_key_cannot_pose_as_the_gateway():
    """Each caller signs with a key of its own (ADR 12). The payment service's key, the one
    credential the payment simulators trust, signs as payment only: claiming to be the gateway,
    the order and payment services refuse it (401), and as itself the order service does not take
    its call (403). The simulators hold public keys, which sign nothing (an HMAC keyed with one
    is refused). Only the gateway's own key is answered."""
    keys = Path(STACK_DATA_DIR) / "run" / "service-keys"
    payment_key, payment_public = (keys / "payment.key").read_text().strip(), (keys / "payment.pub").read_text().strip()
    gateway_key = (keys / "gateway.key").read_text().strip()
    now = int(time.time())

    def posing_as_the_gateway(audience: str) -> str:
        return service_token(payment_key, "gateway", audience)

    def hmac_keyed_with_the_public_key(audience: str) -> str:
        claims = {"iss": "gateway", "aud": audience, "iat": now, "exp": now + 60}
        signing_input = f"{encoded({'alg': 'HS256', 'typ': 'JWT'})}.{encoded(claims)}"
        signature = hmac.new(payment_public.encode(), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"

    async with httpx.AsyncClient(timeout=10) as client:
        refused = {
            what: (await client.get(url, headers={HEADER: token})).status_code
            for what, url, token in (
                ("order, payment's key as the gateway", f"{INTERNAL['order']}/orders/anything", posing_as_the_gateway("order")),
                ("payment, payment's key as the gateway", f"{INTERNAL['payment']}/payment-gateways", posing_as_the_gateway("payment")),
                ("order, an HMAC keyed with a public key", f"{INTERNAL['order']}/orders/anything", hmac_keyed_with_the_public_key("order")),
            )
        }
        as_itself = await client.get(f"{INTERNAL['order']}/orders/anything", headers={HEADER: service_token(payment_key, "payment", "order")})
        the_gateway = await client.get(f"{INTERNAL['payment']}/payment-gateways", headers={HEADER: service_token(gateway_key, "gateway", "payment")})

    assert refused == dict.fromkeys(refused, 401), refused
    assert as_itself.status_code == 403, as_itself.text
    assert the_gateway.status_code == 200, the_gateway.text


# --- API6: unrestricted access to sensitive business flows ----------------------------------


async def test_api6_one_customer_cannot_flood_the_shop_with_orders(api, anonymous, sign_in):
    """Orders for one customer have a budget (ORDER_RATE_LIMIT, 10 a minute), whoever places them."""
    spammer_id = api.unique("spammer")
    spammer = await sign_in(spammer_id)
    body = api.body((await api.product(prefer="CON-TUNER"))["sku"], customer_id=spammer_id)
    answers = [await anonymous.post("/api/v1/orders", json=body, headers=spammer) for _ in range(12)]
    for answer in answers:
        if answer.status_code == 202:
            api.registry.record(answer.json()["order_id"])

    assert [a.status_code for a in answers] == [202] * 10 + [429] * 2
    assert 1 <= int(answers[-1].headers["Retry-After"]) <= 60
    on_their_behalf = await api.http.post("/api/v1/orders", json=body)
    assert on_their_behalf.status_code == 429, "the partner channel spends the same customer's budget"
    assert (await anonymous.get("/api/v1/orders", headers=spammer)).status_code == 200, "reading is not placing"


# --- API7: server-side request forgery ------------------------------------------------------


async def test_api7_no_request_carries_a_url_the_platform_would_fetch(anonymous):
    document = json.dumps(await openapi(anonymous)).lower()
    for hint in ('"format": "uri"', '"format": "url"', "callback", "webhook", '"redirect'):
        assert hint not in document, f"the API takes something URL-like ({hint}): check it for SSRF"


# --- API8: security misconfiguration --------------------------------------------------------


async def test_api8_answers_carry_security_headers_and_give_nothing_away(api, anonymous):
    answer = await api.http.get("/api/v1/products")
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert "server" not in answer.headers, "no Server header names what runs the gateway"
    console = await anonymous.get("/console")
    assert "frame-ancestors 'none'" in console.headers["Content-Security-Policy"] and console.headers["Referrer-Policy"] == "no-referrer"
    # No CORS grant: another web site's script cannot call the API with a user's browser.
    preflight = await anonymous.options(
        "/api/v1/orders", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    broken = await api.http.post("/api/v1/orders", content=b"{not json", headers={"Content-Type": "application/json"})
    assert broken.status_code == 422 and "Traceback" not in broken.text and 'File "' not in broken.text
    async with httpx.AsyncClient(timeout=10) as client:
        for service, url in INTERNAL.items():
            for path in ("/docs", "/openapi.json"):
                assert (await client.get(f"{url}{path}")).status_code == 404, f"{service} publishes {path}"


# --- API9: improper inventory management ----------------------------------------------------


async def test_api9_only_the_documented_versioned_api_is_served(api, anonymous):
    document = await openapi(anonymous)
    assert all(path.startswith(("/api/v1/", "/health/")) for path in document["paths"]), "one documented, versioned API"
    for undocumented in ("/api/v2/orders", "/api/v0/orders", "/api/orders", "/orders", "/api/v1/internal/orders", "/admin", "/redoc"):
        answer = await api.http.get(undocumented)
        assert answer.status_code == 404, f"{undocumented} answered {answer.status_code}"


# --- API10: unsafe consumption of APIs ------------------------------------------------------


async def test_api10_a_providers_tampered_answer_is_not_taken_at_its_word(api, payment_faults):
    """cardpay charges the card, then answers nonsense: a reference with control characters,
    another amount, a whole card number as the last four digits. The payment service refuses to
    believe it, looks the charge up, and the order completes on the one real charge."""
    await payment_faults.set("cardpay", tampered_answer_rate=1)
    placed = await api.place(api.body((await api.product(prefer="CON-TUNER"))["sku"], token="tok_visa"))

    order = await api.terminal(placed.order_id, timeout=api.PAYMENT_DEADLINE + 30)

    assert order["status"] == "COMPLETED", order
    assert order["payment"]["card"]["last4"].isdigit() and len(order["payment"]["card"]["last4"]) == 4, order["payment"]
    assert "4242424242424242" not in json.dumps(order) and "<script>" not in json.dumps(order)
    charges = [c for c in (await api.ledger("cardpay"))["charges"] if c["key"] == f"pay-{placed.order_id}"]
    assert [c["status"] for c in charges] == ["succeeded"], f"one charge, made once: {charges}"
