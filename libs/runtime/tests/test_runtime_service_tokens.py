"""Only the gateway may call a service's API: a call without a service token, with one signed
by another key, meant for another service, stale, or from a caller the route does not trust is
refused; the gateway's is answered. Each caller signs with a key of its own (ADR 12): the payment
service's key (the credential the payment simulators trust) cannot sign as the gateway, and a
public key, all that the simulators and the services hold, signs nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI

from concerto_runtime import Settings, install_problem_handlers
from concerto_runtime.service_tokens import HEADER, ServiceIdentity, new_key_pair, service_token, signing_key, trusted_callers

GATEWAY_KEY, GATEWAY_PUBLIC_KEY = new_key_pair()
PAYMENT_KEY, PAYMENT_PUBLIC_KEY = new_key_pair()
# What every service is told (SERVICE_CALLER_KEYS): the public key of each caller.
CALLER_KEYS = {"gateway": GATEWAY_PUBLIC_KEY, "payment": PAYMENT_PUBLIC_KEY}


def encoded(part: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def hs256(secret: str, claims: dict) -> str:
    """An HMAC token keyed with `secret`, made by hand (pyjwt refuses a public key as a secret)."""
    signing_input = f"{encoded({'alg': 'HS256', 'typ': 'JWT'})}.{encoded(claims)}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def gateway_claims(audience: str = "order") -> dict:
    now = int(time.time())
    return {"iss": "gateway", "aud": audience, "iat": now, "exp": now + 60}


@pytest.fixture
async def order_service(monkeypatch):
    app = FastAPI()
    install_problem_handlers(app)
    # As concerto_runtime.service makes it, from the environment the launcher gives every service.
    monkeypatch.setenv("SERVICE_CALLER_KEYS", json.dumps(CALLER_KEYS))
    settings = Settings()
    app.state.service_identity = ServiceIdentity("order", settings.service_caller_keys)

    @app.get("/orders/{order_id}", dependencies=[Depends(trusted_callers("gateway"))])
    async def order(order_id: str) -> dict:
        return {"order_id": order_id}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://order.test") as client:
        yield client


def stale_token() -> str:
    then = int(time.time()) - 3600
    return jwt.encode({"iss": "gateway", "aud": "order", "iat": then, "exp": then + 60}, signing_key(GATEWAY_KEY), algorithm="EdDSA")


# Each token is made when its test runs (made at collection, a 60 s token would have expired).
@pytest.mark.parametrize(
    ("make_token", "status"),
    [
        (lambda: None, 401),
        (lambda: service_token(new_key_pair()[0], "gateway", "order"), 401),  # a key that is not the gateway's
        (lambda: service_token(GATEWAY_KEY, "gateway", "payment"), 401),  # meant for another service
        (stale_token, 401),
        (lambda: service_token(PAYMENT_KEY, "payment", "order"), 403),  # a service, but not one this route trusts
        (lambda: service_token(new_key_pair()[0], "monitor", "order"), 401),  # a caller with no key here
        (lambda: service_token(GATEWAY_KEY, "gateway", "order"), 200),
    ],
    ids=["none", "another key", "another service", "stale", "untrusted caller", "unknown caller", "the gateway"],
)
async def test_a_service_answers_only_the_callers_it_trusts(order_service, make_token, status):
    token = make_token()
    answer = await order_service.get("/orders/ord-1", headers={HEADER: token} if token else {})
    assert answer.status_code == status, answer.text


# What each credential outside the gateway can make of a token that claims to be the gateway's.
POSING_AS_THE_GATEWAY = {
    # payment's own key: what the payment simulators' admin routes trust, and what a payment
    # process broken into holds
    "signed with the payment service's key": lambda: jwt.encode(gateway_claims(), signing_key(PAYMENT_KEY), algorithm="EdDSA"),
    # all that the simulators (and every service) hold: public keys, used as an HMAC secret
    "HS256 keyed with the payment public key": lambda: hs256(PAYMENT_PUBLIC_KEY, gateway_claims()),
    "HS256 keyed with the gateway's public key": lambda: hs256(GATEWAY_PUBLIC_KEY, gateway_claims()),
    "no signature (alg none)": lambda: f"{encoded({'alg': 'none', 'typ': 'JWT'})}.{encoded(gateway_claims())}.",
}


@pytest.mark.parametrize("make_token", POSING_AS_THE_GATEWAY.values(), ids=POSING_AS_THE_GATEWAY.keys())
async def test_no_credential_but_the_gateways_own_key_signs_as_the_gateway(order_service, make_token):
    answer = await order_service.get("/orders/ord-1", headers={HEADER: make_token()})
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"] == "application/problem+json"


def test_a_caller_key_that_is_no_key_stops_the_service_at_its_start():
    with pytest.raises(ValueError):
        ServiceIdentity("order", {"gateway": "not-a-key"})
    with pytest.raises(ValueError):
        ServiceIdentity("order", {"gateway": GATEWAY_KEY})  # a signing key where a public key belongs
