"""Pure logic of the Identity Center limits (no I/O): token bucket pacing and back-off."""

import random

import pytest

from lifecycle_service.limits import TokenBucket, backoff_delay


class TestTokenBucket:
    def test_paces_calls_at_the_rate_in_request_order(self) -> None:
        bucket = TokenBucket(20.0)
        waits = [bucket.reserve(now=100.0) for _ in range(5)]
        assert waits == pytest.approx([0.0, 0.05, 0.10, 0.15, 0.20])

    def test_burst_lends_tokens_after_idle_time_only(self) -> None:
        bucket = TokenBucket(10.0, burst=3)
        assert [bucket.reserve(now=50.0) for _ in range(4)] == pytest.approx([0, 0, 0, 0.1])
        # Idle for a long time: at most `burst` calls go at once again, never more.
        assert [bucket.reserve(now=500.0) for _ in range(4)] == pytest.approx([0, 0, 0, 0.1])

    def test_rejects_nonsense(self) -> None:
        with pytest.raises(ValueError, match="rate"):
            TokenBucket(0)


class TestBackoff:
    def test_full_jitter_within_a_capped_exponential_ceiling(self) -> None:
        rng = random.Random(7)  # noqa: S311 - reproducible jitter, not security
        for attempt in range(1, 12):
            ceiling = min(5.0, 0.2 * 2 ** (attempt - 1))
            delays = [backoff_delay(attempt, base=0.2, cap=5.0, rng=rng) for _ in range(200)]
            assert all(0 <= d <= ceiling for d in delays)
            assert max(delays) > ceiling * 0.8  # spread over the whole range, not clustered
