"""Calls from the gateway to the services behind it. A service's own problem+json answers
(4xx, and 503 "try again" with its Retry-After) are passed on as they are; an unreachable or
failing service becomes a 502/503."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse

from concerto_observability import correlation_id
from concerto_runtime import Problem

log = logging.getLogger(__name__)


class Upstream:
    def __init__(self, name: str, base_url: str, timeout: float) -> None:
        self.name = name
        # Idle connections are dropped well before the services' own keep-alive timeout
        # (uvicorn's is 5 s, httpx's default also 5 s): otherwise a request can go out on a
        # connection the service is closing at that moment, and fail as "unreachable".
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=httpx.Limits(keepalive_expiry=2.0))

    async def call(
        self, method: str, path: str, *, json: Any = None, headers: dict[str, str] | None = None, params: dict | None = None
    ) -> httpx.Response:
        headers = {k: v for k, v in (headers or {}).items() if v is not None}
        if correlation_id():
            headers["X-Correlation-ID"] = correlation_id()
        try:
            response = await self._client.request(method, path, json=json, headers=headers, params=params)
        except httpx.TimeoutException:
            log.warning("%s service did not answer %s %s in time", self.name, method, path)
            raise Problem(503, "Service unavailable", f"the {self.name} service did not answer in time") from None
        except httpx.TransportError as exc:
            log.warning("%s service unreachable: %s", self.name, exc)
            raise Problem(503, "Service unavailable", f"the {self.name} service is unreachable") from None
        try_again = response.status_code == 503 and response.headers.get("content-type", "").startswith("application/problem+json")
        if response.status_code >= 500 and not try_again:
            log.error("%s service failed: %s %s", self.name, response.status_code, response.text[:500])
            raise Problem(502, "Bad gateway", f"the {self.name} service failed")
        return response

    async def ready(self) -> bool:
        try:
            return (await self._client.get("/health/ready")).status_code == 200
        except httpx.HTTPError:
            return False

    async def close(self) -> None:
        await self._client.aclose()


def relay(response: httpx.Response, request: Request) -> JSONResponse:
    """Pass a service's answer on, problem+json included (pointing at the public path)."""
    try:
        body = response.json()
    except ValueError:
        raise Problem(502, "Bad gateway", "a service gave an answer that is not JSON") from None
    media_type = response.headers.get("content-type", "application/json")
    if media_type.startswith("application/problem+json"):
        body["instance"] = request.url.path
    headers = {"Retry-After": response.headers["Retry-After"]} if "Retry-After" in response.headers else None
    return JSONResponse(body, status_code=response.status_code, media_type=media_type, headers=headers)
