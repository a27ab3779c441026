"""The payment gateways' books against every order this session placed. It runs last (the file
sorts last, and it holds this one test), once every other test's orders have ended:

- a COMPLETED order was charged exactly once, across both gateways, under its payment id
  (pay-<order_id>), at the gateway its payment names, for its total, and not refunded;
- a CANCELLED order that was charged anyway has that charge refunded in full, in the same
  gateway's books (refunds are asynchronous: this waits for them), unless the gateway refused the
  refund for good and an operator recorded it as refunded by hand (the payment context's audited
  decision: the money went back outside the gateway);
- an order cancelled because its card was declined holds no succeeded charge;
- and across the whole of both books, no key has two succeeded charges and no charge is refunded
  beyond its amount.

The orders come from the session's registry (`placed_orders` in conftest.py): every order placed
through the gateway by any test of this session."""

from __future__ import annotations

import asyncio
import os
import warnings
from collections import defaultdict
from typing import Any

import pytest

from concerto_runtime.testing import eventually

ADMIN = {"X-API-Key": os.environ.get("CONCERTO_ADMIN_API_KEY", "dev-admin-key")}

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

REFUND_DEADLINE = 30.0


def _refunded(ledger: dict[str, Any], charge_reference: str) -> int:
    return sum(r["amount"] for r in ledger["refunds"] if r["charge_reference"] == charge_reference and r["status"] == "succeeded")


def _succeeded_by_key(ledgers: dict[str, dict[str, Any]]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    found: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for name, ledger in ledgers.items():
        for charge in ledger["charges"]:
            if charge["status"] == "succeeded":
                found[charge["key"]].append((name, charge))
    return found


def _unrefunded_cancellations(final: dict[str, dict[str, Any]], ledgers: dict[str, dict[str, Any]], by_hand: set[str]) -> list[str]:
    by_key = _succeeded_by_key(ledgers)
    missing = []
    for order_id, order in final.items():
        if order["status"] != "CANCELLED" or order_id in by_hand:
            continue
        for name, charge in by_key.get(f"pay-{order_id}", []):
            refunded = _refunded(ledgers[name], charge["reference"])
            if refunded != charge["amount"]:
                missing.append(
                    f"order {order_id} ended CANCELLED ({order['cancellation_reason']}) but {name} charge "
                    f"{charge['reference']} of {charge['amount']} {charge['currency']} is refunded {refunded}: "
                    f"charge {charge}; refunds {[r for r in ledgers[name]['refunds'] if r['charge_reference'] == charge['reference']]}"
                )
    return missing


async def test_zz_the_gateways_books_agree_with_every_order_the_suite_placed(api, placed_orders):
    order_ids = list(placed_orders)
    final: dict[str, dict[str, Any]] = {}

    async def all_ended() -> bool:
        pending = [order_id for order_id in order_ids if order_id not in final]
        for order in await asyncio.gather(*(api.order(order_id) for order_id in pending)):
            if order["status"] in api.TERMINAL:
                final[order["order_id"]] = order
        return len(final) == len(order_ids)

    try:
        await eventually(all_ended, timeout=api.ORDER_DEADLINE, interval=0.5, what="every order of the session to end")
    except AssertionError:
        running = {order_id: placed_orders.orders[order_id] for order_id in order_ids if order_id not in final}
        warnings.warn(f"orders still running, not checked against the books: {running}", stacklevel=1)

    # Refunds an operator recorded as made by hand, outside the gateway (the payment's audit).
    cancelled = [order_id for order_id, order in final.items() if order["status"] == "CANCELLED"]
    payments = await asyncio.gather(*(api.http.get(f"/api/v1/admin/payments/{order_id}", headers=ADMIN) for order_id in cancelled))
    by_hand = {
        order_id for order_id, answer in zip(cancelled, payments)
        if answer.status_code == 200 and answer.json()["status"] == "REFUNDED"
        and "refunded_by_hand" in [decision["action"] for decision in answer.json()["decisions"]]
    }  # fmt: skip

    # Refunds are asynchronous: wait (with a deadline) for every charged cancellation's refund.
    ledgers: dict[str, dict[str, Any]] = {}

    async def refunds_settled() -> bool:
        ledgers.update(await api.ledgers())
        return not _unrefunded_cancellations(final, ledgers, by_hand)

    try:
        await eventually(refunds_settled, timeout=REFUND_DEADLINE, interval=1.0, what="cancelled orders' charges to be refunded")
    except AssertionError:
        pass  # reported below, with everything else found wrong

    problems = _unrefunded_cancellations(final, ledgers, by_hand)
    by_key = _succeeded_by_key(ledgers)

    # Anywhere in the books: one succeeded charge per key, no charge refunded beyond its amount.
    for key, charged in by_key.items():
        if len(charged) > 1:
            problems.append(f"{key} was charged {len(charged)} times: {charged}")
    for name, ledger in ledgers.items():
        for charge in ledger["charges"]:
            refunded = _refunded(ledger, charge["reference"])
            if refunded and (charge["status"] != "succeeded" or refunded > charge["amount"]):
                problems.append(f"{name} refunded {refunded} of charge {charge}")

    # Each order this session placed, against the books.
    for order_id, order in final.items():
        key, test = f"pay-{order_id}", placed_orders.orders[order_id]
        charged = by_key.get(key, [])
        if order["status"] == "COMPLETED":
            if len(charged) != 1:
                problems.append(f"COMPLETED order {order_id} (from {test}) has {len(charged)} succeeded charges: {charged}")
                continue
            name, charge = charged[0]
            totals, payment = order["totals"], order["payment"] or {}
            if payment.get("gateway") != name:
                problems.append(f"order {order_id} (from {test}) names gateway {payment.get('gateway')!r}, but {name} charged it")
            # cardpay books the currency as it was sent (lower case), paynext in upper case.
            if (charge["amount"], charge["currency"].upper()) != (api.minor_units(totals["total"]), totals["currency"]):
                problems.append(f"order {order_id} (from {test}) totals {totals}, but {name} charged {charge}")
            if _refunded(ledgers[name], charge["reference"]):
                problems.append(f"COMPLETED order {order_id} (from {test}) was refunded at {name}: {ledgers[name]['refunds']}")
        elif order["cancellation_reason"] == "payment_declined" and charged:
            problems.append(f"order {order_id} (from {test}) was declined, yet charged: {charged}")

    assert not problems, f"{len(problems)} disagreement(s) between {len(final)} orders and the books:\n" + "\n".join(problems)
