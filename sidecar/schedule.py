"""When to refresh and how long to back off (pure, deterministic given an RNG).

Refresh point
    Refresh when about one third of the granted lifetime remains, moved by a random
    jitter of up to ±10 % of the lifetime so that a fleet of pods started together
    spreads its load on the vending service. Never sooner than once a second, but
    always strictly before expiry (lifetimes down to a fraction of a second work).

Failures (the retry class decides, never the message)
    * transient (5xx, 429, network, TLS, bad answer, publish failure): exponential
      backoff with *full jitter* (Brooker, "Exponential Backoff And Jitter", AWS
      Architecture Blog, 2015): ``uniform(0, min(60, 1 * 2**(n-1)))``;
    * auth (401), denied (400/403) and token errors: a slow *equal jitter* backoff,
      ``uniform(w/2, w)`` with ``w = min(300, 5 * 2**(n-1))``, so a fixed policy or a
      rotated token is picked up within minutes without hammering the service;
    * ``Retry-After`` raises the wait to at least its value (it is capped when parsed).

The waits are tenacity wait strategies (``wait_exponential`` subclasses) that take
an injected :class:`random.Random`, because tenacity's own ``wait_random_exponential``
draws from the global RNG. Nothing here reads a clock or sleeps.
"""

from __future__ import annotations

import random

from tenacity import RetryCallState
from tenacity.wait import wait_base, wait_exponential

from .errors import AuthRejected, Denied, PublishError, TokenError, VendorError

__all__ = [
    "EqualJitter",
    "FailureWait",
    "FullJitter",
    "JITTER_FRACTION",
    "MIN_REFRESH_INTERVAL",
    "REFRESH_POINT",
    "failure_class",
    "is_slow",
    "refresh_delay",
    "retryable",
]

#: Fraction of the lifetime after which to refresh (one third remains).
REFRESH_POINT = 2.0 / 3.0
#: Jitter, as a fraction of the lifetime, either side of the refresh point.
JITTER_FRACTION = 0.10
#: Never refresh more often than this, unless the lifetime itself is shorter.
MIN_REFRESH_INTERVAL = 1.0

TRANSIENT_BASE, TRANSIENT_CAP = 1.0, 60.0
SLOW_BASE, SLOW_CAP = 5.0, 300.0


def refresh_delay(lifetime: float, rng: random.Random) -> float:
    """Seconds from receipt of a grant until the next refresh.

    Invariant: ``0 < result < lifetime`` for every ``lifetime > 0``, and the result
    lies in ``lifetime * [REFRESH_POINT ± JITTER_FRACTION]`` unless that would be
    sooner than ``min(MIN_REFRESH_INTERVAL, lifetime / 2)``.
    """
    if lifetime <= 0:
        return 0.0
    delay = lifetime * (REFRESH_POINT + rng.uniform(-JITTER_FRACTION, JITTER_FRACTION))
    return max(delay, min(MIN_REFRESH_INTERVAL, lifetime / 2))


class FullJitter(wait_exponential):
    """Full jitter: ``uniform(0, min(max, multiplier * 2**(attempt-1)))``, injected RNG."""

    def __init__(self, rng: random.Random, multiplier: float = TRANSIENT_BASE, max: float = TRANSIENT_CAP) -> None:  # noqa: A002
        super().__init__(multiplier=multiplier, max=max)
        self.rng = rng

    def __call__(self, retry_state: RetryCallState) -> float:
        return self.rng.uniform(0.0, super().__call__(retry_state))


class EqualJitter(wait_exponential):
    """Equal jitter: ``uniform(w/2, w)`` with ``w`` the capped exponential, injected RNG."""

    def __init__(self, rng: random.Random, multiplier: float = SLOW_BASE, max: float = SLOW_CAP) -> None:  # noqa: A002
        super().__init__(multiplier=multiplier, max=max)
        self.rng = rng

    def __call__(self, retry_state: RetryCallState) -> float:
        window = super().__call__(retry_state)
        return self.rng.uniform(window / 2.0, window)


def failure_class(error: BaseException | None) -> str:
    """The retry class of an error: ``transient``, ``invalid_answer``, ``auth``, ``denied``,
    ``token`` or ``publish`` (used for waits, logs and the metric label)."""
    if isinstance(error, VendorError):
        return error.kind
    if isinstance(error, TokenError):
        return "token"
    if isinstance(error, PublishError):
        return "publish"
    return "transient"


def is_slow(error: BaseException | None) -> bool:
    """Errors that only a change of token, policy or configuration will fix."""
    return isinstance(error, (AuthRejected, Denied, TokenError))


class FailureWait(wait_base):
    """tenacity wait strategy for the refresh loop: picks the backoff by error class
    and honours ``Retry-After``."""

    def __init__(self, rng: random.Random) -> None:
        self.transient = FullJitter(rng)
        self.slow = EqualJitter(rng)

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        delay = (self.slow if is_slow(error) else self.transient)(retry_state)
        retry_after = error.retry_after if isinstance(error, VendorError) else None
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay


def retryable(error: BaseException) -> bool:
    """Whether the loop retries this error at all (configuration errors end the run)."""
    return isinstance(error, (VendorError, TokenError, PublishError))
