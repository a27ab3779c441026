"""Schemathesis against the running gateway's OpenAPI, `--checks all`: every answer is
documented problem+json or the documented body, every date-time is RFC 3339, nothing answers
500 to bad input, and a 405 says what is allowed. Runs last: it places orders the ledger test
does not know about, and it turns the admin switches (faults, consumer controls, stock), which
are put back afterwards. Settings in schemathesis.toml at the repository's root.

It runs twice, signed in as the development issuer hands out tokens: once as a customer (every
admin route must answer its documented 403, every order for someone else its 403) and once as
the operator, whose admin role reaches every route."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]  # each run

REPO = Path(__file__).resolve().parents[2]
CONTEXTS = ("order", "payment", "fulfillment", "loyalty", "monitor")
SEED = 20261128  # the same cases on every run: a failure here is reproducible with this seed
ADMIN = {"X-API-Key": os.environ.get("CONCERTO_ADMIN_API_KEY", "dev-admin-key")}


async def put_the_switches_back(api) -> None:
    for name in api.PAYMENT_GATEWAYS:
        (await api.set_payment_faults(name, {})).raise_for_status()
    for context in CONTEXTS:
        (await api.http.put(f"/api/v1/admin/consumers/{context}", json={}, headers=ADMIN)).raise_for_status()
    for sku in await api.products():
        (await api.set_stock(sku, 1000)).raise_for_status()


@pytest.mark.parametrize(
    "username",
    [
        pytest.param("cust-schemathesis", id="as-a-customer"),  # admin routes: a documented 403
        pytest.param("operator", id="as-an-operator"),  # the admin role: every route
    ],
)
async def test_the_gateway_passes_schemathesis_with_every_check(api, sign_in, username):
    command = [
        str(Path(sys.executable).with_name("st")), "--config-file", str(REPO / "schemathesis.toml"),
        "run", str(api.http.base_url.join("/openapi.json")), "--checks", "all", "-H", f"Authorization: {(await sign_in(username))['Authorization']}",
        # One worker: with two, hypothesis (describing a filter) parses source in both threads at
        # once, and CPython 3.11's parser can fail that with "SystemError: AST constructor
        # recursion depth mismatch", a schemathesis Runtime Error that says nothing of our API.
        "--seed", str(SEED), "--max-examples", "50", "--workers", "1",
        "--rate-limit", "60/s",  # under the gateway's 100/s per caller: answers, not 429s
    ]  # fmt: skip
    try:
        run = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output = (await asyncio.wait_for(run.communicate(), timeout=540))[0].decode(errors="replace")
    finally:
        await put_the_switches_back(api)
    print(output[output.find("SUMMARY") - 40 :])  # the summary in the test log, pass or fail
    assert run.returncode == 0, f"schemathesis found failures (exit {run.returncode}):\n{output[-12000:]}"
