"""The correlation id of the work in hand, kept in a context variable so every log line
(and every event published) picks it up without being passed through each call."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
_order_id: ContextVar[str | None] = ContextVar("order_id", default=None)


def new_correlation_id() -> str:
    return str(uuid.uuid4())


def correlation_id() -> str | None:
    return _correlation_id.get()


def order_id() -> str | None:
    return _order_id.get()


@contextmanager
def bind(*, correlation_id: str | None, order_id: str | None = None) -> Iterator[None]:
    tokens = (_correlation_id.set(correlation_id), _order_id.set(order_id))
    try:
        yield
    finally:
        _correlation_id.reset(tokens[0])
        _order_id.reset(tokens[1])
