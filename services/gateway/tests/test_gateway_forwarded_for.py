"""Whose budget a call without a valid credential spends: its client address's. That address is
the peer's, whatever X-Forwarded-For says, unless the peer is one of TRUSTED_PROXIES (none by
default): otherwise anyone on the gateway's machine could name a fresh address per guess and
never run out of budget.

The gateway's own process is started here as it runs in the stack (`python -m concerto_gateway`,
served by uvicorn), because uvicorn's proxy handling, outside the app, is what trusted any peer
on 127.0.0.1; the trusted-proxy case runs the app in-process, the proxy being a peer address."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from concerto_gateway.app import create_app
from concerto_gateway.settings import GatewaySettings
from concerto_runtime.testing import eventually

WRONG_KEY = {"X-API-Key": "a-guess"}
PROBLEM_JSON = "application/problem+json"


def forwarded_for(address: str) -> dict[str, str]:
    return WRONG_KEY | {"X-Forwarded-For": address}


@pytest.fixture
def gateway_process(tmp_path: Path) -> Iterator[str]:
    """`python -m concerto_gateway` on a free local port, no proxy configured; its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "CONCERTO_DATA_DIR": str(tmp_path),
        "HTTP_PORT": str(port),
        "CONCERTO_API_KEY": "partner-key",
        "FAILED_AUTH_RATE_LIMIT": "3/minute",
        "LOG_LEVEL": "WARNING",
    }
    with open(tmp_path / "gateway.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "concerto_gateway"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=15)


async def test_x_forwarded_for_from_a_peer_on_the_same_machine_is_not_believed(gateway_process, tmp_path):
    async with httpx.AsyncClient(base_url=gateway_process, timeout=5) as client:

        async def live() -> bool:
            try:
                return (await client.get("/health/live")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(live, timeout=30, interval=0.1, what=f"the gateway to serve (log: {tmp_path / 'gateway.log'})")
        answers = [await client.get("/api/v1/products", headers=forwarded_for(f"203.0.113.{n}")) for n in range(5)]

    assert [a.status_code for a in answers] == [401, 401, 401, 429, 429], "five addresses named, one peer, one budget"
    assert answers[-1].headers["content-type"] == PROBLEM_JSON


@asynccontextmanager
async def gateway_behind(peer: str, **overrides) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway app, called from `peer` (a proxy in front of it, or a client straight)."""
    settings = GatewaySettings(**{"api_key": "partner-key", "failed_auth_rate_limit": "2/minute"} | overrides)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            yield client


async def test_a_trusted_proxy_names_the_client_and_no_one_else_does():
    async with gateway_behind("10.0.0.5", trusted_proxies="10.0.0.0/24") as proxy:
        # Through the proxy: each client its own budget, one client's third try is refused.
        clients = [(await proxy.get("/api/v1/products", headers=forwarded_for(f"203.0.113.{n}"))).status_code for n in range(4)]
        same_client = [(await proxy.get("/api/v1/products", headers=forwarded_for("203.0.113.0"))).status_code for _ in range(2)]
    async with gateway_behind("198.51.100.7", trusted_proxies="10.0.0.0/24") as stranger:
        # Not from the proxy: the peer's own budget, whatever it names.
        named = [(await stranger.get("/api/v1/products", headers=forwarded_for(f"203.0.113.{n}"))).status_code for n in range(3)]

    assert clients == [401, 401, 401, 401]
    assert same_client == [401, 429]
    assert named == [401, 401, 429]


def test_a_trusted_proxy_that_is_no_address_stops_the_gateway_at_its_start():
    with pytest.raises(ValidationError, match="TRUSTED_PROXIES|trusted_proxies"):
        GatewaySettings(trusted_proxies="10.0.0.0/24, proxy.local")
