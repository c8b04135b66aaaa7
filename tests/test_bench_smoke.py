"""Smoke test of the herd simulation behind ``make bench`` (counts only, no timings).

A small fleet on a fixed seed: the benchmark code runs, is deterministic, counts
requests correctly, and the policies differ the way docs/performance.md says.
"""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.herd import (  # noqa: E402
    BotocoreStyle,
    FixedInterval,
    LeaseAwareRetry,
    Scenario,
    VendSidecar,
    simulate,
)
from sidecar.schedule import REFRESH_POINT, TRANSIENT_CAP  # noqa: E402

SMALL = Scenario(pods=600, deployments=12, seed=11)


@pytest.fixture(scope="module")
def results() -> dict[str, object]:
    return {policy.name: simulate(policy(), SMALL) for policy in (VendSidecar, FixedInterval, BotocoreStyle)}


def test_engine_counts_every_request_of_a_fixed_fleet_without_outage() -> None:
    calm = replace(SMALL, outage=0.0)
    result = simulate(FixedInterval(), calm)
    interval = REFRESH_POINT * calm.lease
    expected = sum(math.floor((calm.horizon - start) / interval - 1e-9) + 1 for start in calm.pod_starts())
    assert result.total_requests == expected
    assert result.failed_requests == 0 and result.expired_pods == 0


def test_same_seed_same_run() -> None:
    first, second = simulate(VendSidecar(), SMALL), simulate(VendSidecar(), SMALL)
    assert first == second
    assert simulate(VendSidecar(), replace(SMALL, seed=12)).rates != first.rates


def test_project_policy_keeps_every_pod_supplied_with_fewer_requests(results: dict) -> None:  # type: ignore[type-arg]
    ours, fixed, boto = results["vend-sidecar"], results["fixed interval"], results["botocore-style"]
    assert ours.failed_requests > 0  # the outage was felt
    assert ours.expired_pods == fixed.expired_pods == boto.expired_pods == 0
    assert ours.total_requests < fixed.total_requests
    assert ours.total_requests < boto.total_requests
    assert ours.failed_requests < fixed.failed_requests and ours.failed_requests < boto.failed_requests


def test_jitter_and_backoff_flatten_the_recovery_peak(results: dict) -> None:  # type: ignore[type-arg]
    ours, fixed, boto = results["vend-sidecar"], results["fixed interval"], results["botocore-style"]
    assert ours.peak_after_rate * 2 < fixed.peak_after_rate
    assert ours.peak_after_rate * 2 < boto.peak_after_rate
    # botocore refreshes at half the lease (15 of 30 min), the others at two thirds
    assert boto.steady_rate > ours.steady_rate


def test_project_backoff_waits_come_from_the_real_strategy() -> None:
    policy = VendSidecar()
    policy.setup(SMALL, SMALL.pod_starts())
    error = RuntimeError("outage")
    waits = [policy.after_failure(0, 100.0, attempt, error) - 100.0 for attempt in range(1, 40)]
    assert all(0.0 <= w <= TRANSIENT_CAP for w in waits)
    assert max(waits[:3]) <= 4.0  # full jitter: uniform(0, 2**(n-1)) for the first attempts
    assert max(waits[10:]) > 4.0


def test_what_ifs_behave_as_documented() -> None:
    longer = replace(SMALL, outage=0.3 * SMALL.lease)
    shipped = simulate(VendSidecar(), longer)
    earlier = simulate(LeaseAwareRetry(point=0.55), longer)
    assert shipped.expired_pods > 0  # jitter puts some refresh points at 23 % of the lease left
    assert earlier.expired_pods == 0
    lease_aware = simulate(LeaseAwareRetry(), SMALL)
    assert lease_aware.failed_requests * 5 < simulate(VendSidecar(), SMALL).failed_requests
