"""Schedule decisions: pure functions of a seeded RNG; no sleeping, no clock."""

from __future__ import annotations

import random

import pytest
from tenacity import AsyncRetrying, RetryCallState

from sidecar.errors import AuthRejected, Denied, InvalidAnswer, PublishError, TokenError, TransientVendorError
from sidecar.schedule import (
    JITTER_FRACTION,
    REFRESH_POINT,
    EqualJitter,
    FailureWait,
    FullJitter,
    failure_class,
    refresh_delay,
    retryable,
)


def state(attempt: int, error: BaseException | None = None) -> RetryCallState:
    """A real tenacity RetryCallState at ``attempt`` whose outcome is ``error``."""
    rs = RetryCallState(AsyncRetrying(), None, (), {})
    rs.attempt_number = attempt
    if error is not None:
        rs.set_exception((type(error), error, None))
    return rs


class TestRefreshDelay:
    @pytest.mark.parametrize("lifetime", [1800.0, 3600.0, 900.0, 60.0, 5.0, 3.0])
    def test_within_jitter_band_around_two_thirds(self, lifetime: float) -> None:
        rng = random.Random(1)
        delays = [refresh_delay(lifetime, rng) for _ in range(2000)]
        low = lifetime * (REFRESH_POINT - JITTER_FRACTION)
        high = lifetime * (REFRESH_POINT + JITTER_FRACTION)
        assert all(low <= d <= high for d in delays)
        # Jitter really spreads the fleet: both halves of the band are used.
        assert min(delays) < lifetime * REFRESH_POINT < max(delays)

    def test_one_third_remains_on_average(self) -> None:
        rng = random.Random(7)
        delays = [refresh_delay(1800, rng) for _ in range(5000)]
        assert sum(delays) / len(delays) == pytest.approx(1200, rel=0.01)

    @pytest.mark.parametrize("lifetime", [2.0, 1.5, 1.0, 0.5, 0.01])
    def test_short_lifetimes_refresh_strictly_before_expiry(self, lifetime: float) -> None:
        rng = random.Random(3)
        for _ in range(500):
            delay = refresh_delay(lifetime, rng)
            assert 0 < delay < lifetime
            assert delay >= min(1.0, lifetime / 2)

    def test_never_more_often_than_once_a_second_when_lifetime_allows(self) -> None:
        rng = random.Random(5)
        assert all(refresh_delay(2.0, rng) >= 1.0 for _ in range(500))

    def test_expired_grant_refreshes_now(self) -> None:
        assert refresh_delay(0, random.Random()) == 0
        assert refresh_delay(-5, random.Random()) == 0

    def test_same_seed_same_schedule(self) -> None:
        a = [refresh_delay(1800, r) for r in [random.Random(42)] for _ in range(10)]
        b = [refresh_delay(1800, r) for r in [random.Random(42)] for _ in range(10)]
        assert a == b


class TestBackoff:
    def test_full_jitter_window_grows_and_caps(self) -> None:
        rng = random.Random(11)
        wait = FullJitter(rng)
        for attempt in range(1, 12):
            window = min(60.0, 2.0 ** (attempt - 1))
            samples = [wait(state(attempt)) for _ in range(400)]
            assert all(0 <= s <= window for s in samples)
            assert max(samples) > 0.8 * window  # the whole window is used
            assert min(samples) < 0.2 * window  # ... down to near zero (full jitter)

    def test_equal_jitter_is_slow_and_capped(self) -> None:
        rng = random.Random(12)
        wait = EqualJitter(rng)
        for attempt in range(1, 12):
            window = min(300.0, 5.0 * 2 ** (attempt - 1))
            samples = [wait(state(attempt)) for _ in range(200)]
            assert all(window / 2 <= s <= window for s in samples)

    @pytest.mark.parametrize(
        "error, slow",
        [
            (TransientVendorError("x"), False),
            (InvalidAnswer("x"), False),
            (PublishError("x"), False),
            (AuthRejected("x"), True),
            (Denied("x"), True),
            (TokenError("x"), True),
        ],
    )
    def test_wait_picked_by_class(self, error: BaseException, slow: bool) -> None:
        wait = FailureWait(random.Random(0))
        samples = [wait(state(1, error)) for _ in range(200)]
        if slow:
            assert all(2.5 <= s <= 5.0 for s in samples)
        else:
            assert all(0 <= s <= 1.0 for s in samples)

    def test_retry_after_is_a_floor(self) -> None:
        wait = FailureWait(random.Random(0))
        err = TransientVendorError("busy", status=429, retry_after=42.0)
        assert all(wait(state(1, err)) == 42.0 for _ in range(50))
        # ... but a longer backoff window still wins where it draws longer.
        err = TransientVendorError("busy", status=503, retry_after=0.5)
        draws = [wait(state(7, err)) for _ in range(200)]
        assert all(d >= 0.5 for d in draws) and max(draws) > 30

    def test_classes(self) -> None:
        assert failure_class(TransientVendorError("x")) == "transient"
        assert failure_class(InvalidAnswer("x")) == "invalid_answer"
        assert failure_class(AuthRejected("x")) == "auth"
        assert failure_class(Denied("x")) == "denied"
        assert failure_class(TokenError("x")) == "token"
        assert failure_class(PublishError("x")) == "publish"
        assert retryable(PublishError("x")) and retryable(TokenError("x"))
        assert not retryable(ValueError("bug")) and not retryable(KeyboardInterrupt())

    def test_rng_is_injected_not_global(self) -> None:
        random.seed(1)
        a = FailureWait(random.Random(99))(state(5, TransientVendorError("x")))
        random.seed(2)
        b = FailureWait(random.Random(99))(state(5, TransientVendorError("x")))
        assert a == b
