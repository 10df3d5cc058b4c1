"""Identity Center limits: one shared token bucket and jittered exponential back-off."""

import asyncio
import random
import time


class TokenBucket:
    """Paces calls to `rate` per second with at most `burst` at once, first come first served.

    Each caller reserves the next free slot under a lock and sleeps outside it, so waiting callers
    start in the order they asked and the bucket never lends more than `burst` tokens ahead.
    """

    def __init__(self, rate: float, *, burst: int = 1) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._interval = 1.0 / rate
        self._next = 0.0
        self._lock = asyncio.Lock()
        self.granted = 0

    def reserve(self, now: float) -> float:
        """Reserve one token at monotonic time `now`; return how long to wait for it."""
        earliest = now - (self.burst - 1) * self._interval
        slot = max(self._next, earliest)
        self._next = slot + self._interval
        self.granted += 1
        return max(0.0, slot - now)

    async def acquire(self) -> None:
        """Wait for a token."""
        async with self._lock:
            wait = self.reserve(time.monotonic())
        if wait > 0:
            await asyncio.sleep(wait)


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Full-jitter exponential back-off: uniform in [0, min(cap, base * 2**(attempt-1))].

    Full jitter spreads the retries of many throttled callers, so they do not come back
    together and trip the throttle again (the AWS Architecture Blog's recommendation).
    """
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return (rng or random).uniform(0.0, ceiling)
