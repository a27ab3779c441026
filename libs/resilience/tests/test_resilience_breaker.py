"""The breaker's states, driven by real awaited calls (no clock tricks: a short recovery)."""

import asyncio

import pytest

from concerto_resilience import Breaker, BreakerOpen, retrying


class Down(Exception):
    pass


class Declined(Exception):
    pass


async def fail() -> None:
    raise Down()


async def ok() -> str:
    return "ok"


def breaker(recovery: float = 0.2) -> Breaker:
    return Breaker("psp", failure_threshold=2, recovery_seconds=recovery, counts_as_failure=(Down,))


async def test_resilience_breaker_opens_after_the_threshold_and_rejects_without_calling():
    b = breaker()
    for _ in range(2):
        with pytest.raises(Down):
            await b.call(fail)
    assert b.state == "open"
    called = False

    async def spy() -> None:
        nonlocal called
        called = True

    with pytest.raises(BreakerOpen):
        await b.call(spy)
    assert called is False
    assert b.snapshot()["calls"] == {"failed": 2, "rejected": 1}


async def test_resilience_breaker_half_opens_then_closes_on_a_good_trial():
    b = breaker(recovery=0.2)
    for _ in range(2):
        with pytest.raises(Down):
            await b.call(fail)
    while b.state == "open":  # bounded by the recovery time
        await asyncio.sleep(0.05)
    assert b.state == "half_open"
    assert await b.call(ok) == "ok"
    assert b.state == "closed"
    assert b.snapshot()["consecutive_failures"] == 0


async def test_resilience_breaker_reopens_on_a_failed_trial():
    b = breaker(recovery=0.2)
    for _ in range(2):
        with pytest.raises(Down):
            await b.call(fail)
    while b.state == "open":
        await asyncio.sleep(0.05)
    with pytest.raises(Down):
        await b.call(fail)
    assert b.state == "open"


async def test_resilience_a_decline_is_not_a_failure():
    b = breaker()

    async def decline() -> None:
        raise Declined()

    for _ in range(5):
        with pytest.raises(Declined):
            await b.call(decline)
    assert b.state == "closed"


async def test_resilience_retrying_retries_only_what_it_is_told():
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Down()
        return "done"

    async for attempt in retrying(attempts=3, on=(Down,), first_wait=0.001, max_wait=0.01):
        with attempt:
            result = await flaky()
    assert result == "done" and len(calls) == 3

    declined = []
    with pytest.raises(Declined):
        async for attempt in retrying(attempts=3, on=(Down,), first_wait=0.001):
            with attempt:
                declined.append(1)
                raise Declined()
    assert len(declined) == 1
