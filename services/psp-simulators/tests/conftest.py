"""Each test gets a fresh simulator, in-process (httpx's ASGITransport, the app's lifespan run as
the server would), with its ledger in the test's own temporary directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from concerto_psp_simulators import cardpay, paynext
from concerto_runtime import Settings


@asynccontextmanager
async def running(simulator: ModuleType, data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = simulator.create_app(Settings(data_dir=data_dir))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{simulator.NAME}.test") as client:
            yield client


@pytest.fixture
async def cardpay_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with running(cardpay, tmp_path) as client:
        yield client


@pytest.fixture
async def paynext_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with running(paynext, tmp_path) as client:
        yield client


@pytest.fixture
def start():
    """For tests that stop and start a simulator: `async with start(cardpay, tmp_path) as client`."""
    return running
