"""The simulators' admin routes (faults, stats, ledger) answer the payment service only: a call
without its service token, signed by another service, or meant for the other simulator is
refused. The simulated provider's own API and its health checks stay open."""

from __future__ import annotations

from pathlib import Path

import pytest

from concerto_psp_simulators import cardpay, paynext
from concerto_runtime.service_tokens import HEADER, new_key_pair, service_token

from .conftest import PAYMENT_KEY, running

ADMIN_ROUTES = [("GET", "/_admin/faults"), ("PUT", "/_admin/faults"), ("GET", "/_admin/stats"), ("GET", "/_admin/ledger")]


@pytest.mark.parametrize("simulator", [cardpay, paynext], ids=["cardpay", "paynext"])
@pytest.mark.parametrize(
    ("token", "status"),
    [
        (lambda name: None, 401),
        (lambda name: service_token(new_key_pair()[0], "gateway", name), 401),  # a caller the simulators know no key of
        (lambda name: service_token(PAYMENT_KEY, "payment", "cardpay" if name == "paynext" else "paynext"), 401),
        (lambda name: service_token(new_key_pair()[0], "payment", name), 401),
    ],
    ids=["no token", "the gateway's", "for the other simulator", "another key"],
)
async def test_admin_routes_refuse_anyone_but_the_payment_service(tmp_path: Path, simulator, token, status):
    async with running(simulator, tmp_path, signed=False) as client:
        headers = {HEADER: made} if (made := token(simulator.NAME)) else {}
        answers = [await client.request(method, path, headers=headers, json={"outage": True} if method == "PUT" else None) for method, path in ADMIN_ROUTES]
        health = await client.get("/health/live")
        faults_in_force = await client.get("/_admin/faults", headers={HEADER: service_token(PAYMENT_KEY, "payment", simulator.NAME)})

    assert [a.status_code for a in answers] == [status] * len(ADMIN_ROUTES), [a.text for a in answers]
    assert answers[0].headers["content-type"] == "application/problem+json"
    assert health.status_code == 200
    assert faults_in_force.json()["outage"] is False, "a refused PUT changed nothing"


@pytest.mark.parametrize("simulator", [cardpay, paynext], ids=["cardpay", "paynext"])
async def test_admin_routes_answer_the_payment_service(tmp_path: Path, simulator):
    async with running(simulator, tmp_path, signed=False) as client:
        answers = [
            await client.request(
                method,
                path,
                headers={HEADER: service_token(PAYMENT_KEY, "payment", simulator.NAME)},  # made per call: it lives 60 s
                json={"outage": True} if method == "PUT" else None,
            )
            for method, path in ADMIN_ROUTES
        ]

    assert [a.status_code for a in answers] == [200] * len(ADMIN_ROUTES), [a.text for a in answers]
    assert answers[1].json()["outage"] is True
