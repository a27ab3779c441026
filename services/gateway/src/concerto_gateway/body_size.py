"""A ceiling on request bodies (OWASP API4): the gateway reads no more than MAX_BODY_BYTES of
any request before it answers 413. A declared Content-Length over the ceiling is refused before
a byte is read; a chunked body is counted as it arrives and refused once it passes the ceiling.

FastAPI's own `max_body_size` answers a plain-text 413 from outside the app's problem handlers;
this one answers problem+json like every other refusal at the edge."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from concerto_runtime import problem_response


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        detail = f"a request body may have at most {self.max_bytes} bytes"
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            if declared.isdigit():
                response = problem_response(413, "Content too large", detail, scope["path"])
            else:
                response = problem_response(400, "Bad request", "Content-Length is not a number", scope["path"])
            return await response(scope, receive, send)
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # Raised where the route reads its body; the problem handlers answer it as problem+json.
                raise HTTPException(413, detail)
            return message

        await self.app(scope, counted, send)
