"""Polling waits for asynchronous outcomes: never bare sleeps, always a generous deadline."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 20.0, interval: float = 0.05
) -> T:
    """Call `check` until it returns without raising (its value), or re-raise after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except (AssertionError, LookupError):
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(interval)
