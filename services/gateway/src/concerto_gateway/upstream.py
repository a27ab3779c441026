"""Calls from the gateway to the services behind it. A service's own problem+json answers
(4xx, and 503 "try again" with its Retry-After) are passed on as they are; an unreachable or
failing service becomes a 502/503."""

from __future__ import annotations

import itertools
import logging
from typing import Any

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse

from concerto_observability import correlation_id
from concerto_runtime import Problem
from concerto_runtime.service_tokens import SignedAs

log = logging.getLogger(__name__)


class Upstream:
    """One context, behind one or more base URLs (its replicas, comma-separated): calls go to
    each in turn, and one that refuses the connection is skipped for the next (nothing was
    sent, so nothing can happen twice)."""

    def __init__(self, name: str, base_urls: str, timeout: float, signing_key: str | None = None) -> None:
        self.name = name
        # Each call says it comes from the gateway (ADR 12), signed with its key as it is sent.
        auth = SignedAs(signing_key, "gateway", name) if signing_key else None
        # Idle connections are dropped well before the services' own keep-alive timeout
        # (uvicorn's is 5 s, httpx's default also 5 s): otherwise a request can go out on a
        # connection the service is closing at that moment, and fail as "unreachable".
        self._clients = [
            httpx.AsyncClient(base_url=url.strip(), timeout=timeout, limits=httpx.Limits(keepalive_expiry=2.0), auth=auth)
            for url in base_urls.split(",")
            if url.strip()
        ]
        self._turn = itertools.count()

    def _in_turn(self) -> list[httpx.AsyncClient]:
        first = next(self._turn) % len(self._clients)
        return self._clients[first:] + self._clients[:first]

    async def call(
        self, method: str, path: str, *, json: Any = None, headers: dict[str, str] | None = None, params: dict | None = None
    ) -> httpx.Response:
        for client in self._in_turn():
            try:
                return await self._call(client, method, path, json=json, headers=headers, params=params)
            except httpx.ConnectError as exc:
                # Nothing was sent: the next replica may take it.
                log.warning("%s service unreachable at %s: %s", self.name, client.base_url, exc)
        raise Problem(503, "Service unavailable", f"the {self.name} service is unreachable")

    async def call_every(self, method: str, path: str, *, json: Any = None) -> httpx.Response:
        """The same call to every replica (a switch that must hold for the whole context): the
        first refusal, else the first answer."""
        answers = []
        for client in self._clients:
            try:
                answers.append(await self._call(client, method, path, json=json))
            except httpx.ConnectError:
                raise Problem(503, "Service unavailable", f"the {self.name} service is unreachable") from None
        return next((answer for answer in answers if answer.status_code >= 400), answers[0])

    async def _call(self, client: httpx.AsyncClient, method: str, path: str, **request: Any) -> httpx.Response:
        """One request to one replica. A refused connection is raised (ConnectError); any other
        failure becomes a problem."""
        headers = {k: v for k, v in (request.pop("headers", None) or {}).items() if v is not None}
        if correlation_id():
            headers["X-Correlation-ID"] = correlation_id()
        method_path = f"{method} {path}"
        try:
            response = await client.request(method, path, headers=headers, **request)
        except httpx.ConnectError:
            raise
        except httpx.TimeoutException:
            # Not tried elsewhere: the request may have been carried out.
            log.warning("%s service did not answer %s in time", self.name, method_path)
            raise Problem(503, "Service unavailable", f"the {self.name} service did not answer in time") from None
        except httpx.TransportError as exc:
            log.warning("%s service failed during %s: %s", self.name, method_path, exc)
            raise Problem(503, "Service unavailable", f"the {self.name} service is unreachable") from None
        try_again = response.status_code == 503 and response.headers.get("content-type", "").startswith("application/problem+json")
        if response.status_code >= 500 and not try_again:
            log.error("%s service failed: %s %s", self.name, response.status_code, response.text[:500])
            raise Problem(502, "Bad gateway", f"the {self.name} service failed")
        return response

    async def metrics(self) -> list[str] | None:
        """Every replica's /metrics (the figures add up across them); None if one cannot be read."""
        pages = []
        for client in self._clients:
            try:
                response = await client.get("/metrics")
                response.raise_for_status()
            except httpx.HTTPError as exc:
                log.warning("%s metrics unreadable at %s: %s", self.name, client.base_url, exc)
                return None
            pages.append(response.text)
        return pages

    async def ready(self) -> bool:
        """Ready when some replica is: the calls go to whichever answers."""
        for client in self._clients:
            try:
                if (await client.get("/health/ready")).status_code == 200:
                    return True
            except httpx.HTTPError:
                continue
        return False

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()


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
