"""Lab 2's fixtures are the lab copy's own payment test fixtures (services/payment/tests/
conftest.py): the real simulated PSPs, cardpay and paynext, served over real HTTP on free local
ports, the payment database as a SQLite file, and `make_layer(...)` building the integration
layer over both."""

from __future__ import annotations

import os
from pathlib import Path

from concerto_runtime.testing import load_module

FIXTURES = Path(os.environ.get("LAB_TREE", ".")) / "services" / "payment" / "tests" / "conftest.py"
assert FIXTURES.exists(), f"{FIXTURES} is missing: run `make lab 2` and work in .labs/lab-02"
_fixtures = load_module("lab02_payment_fixtures", FIXTURES)

cardpay_sim = _fixtures.cardpay_sim
paynext_sim = _fixtures.paynext_sim
psps = _fixtures.psps
payment_sessions = _fixtures.payment_sessions
make_layer = _fixtures.make_layer
attempts = _fixtures.attempts
