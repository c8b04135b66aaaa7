"""Herd simulation: a fleet of sidecars against a vending service that goes down.

A discrete-event simulation on a virtual clock (an event heap; nothing sleeps). Each
pod is one event stream: it asks the vending service for credentials, and its
*policy* says when it asks next, after a success or after a failure. The vending
service model answers instantly: a grant of ``lease`` seconds, or
:class:`~sidecar.errors.TransientVendorError` while it is down.

Policies compared in the same run, on the same fleet:

``vend-sidecar``
    the project's real code: :func:`sidecar.schedule.refresh_delay` after a grant,
    and the tenacity wait strategy the refresh loop uses, :class:`~sidecar.schedule.FailureWait`
    (full jitter, Brooker 2015), after a failure, each pod with its own seeded
    :class:`random.Random`. The wait is computed from a real
    :class:`tenacity.RetryCallState` holding the attempt number and the exception.
``fixed interval``
    refresh at the same point (two thirds of the lease) with no jitter; after a
    failure retry every ``fixed_retry`` seconds, no jitter, no backoff.
``botocore-style``
    ``RefreshableCredentials``: the app touches its credentials every ``access_period``
    seconds; the first touch inside the advisory window (15 min before expiry)
    refreshes; a failed refresh is retried on the next touch (swallowed in the
    advisory window, raised to the app in the mandatory one), no jitter, no backoff.

The fleet: ``pods`` pods in ``deployments`` deployments, each rolled out over
``rollout`` seconds at a random time within the first ``deploy_spread`` seconds (the
same seeded fleet for every policy). The outage starts at ``outage_start`` and lasts
``outage`` seconds.

Reported per policy: total requests (and how many failed), the steady request rate
(mean over the lease before the outage), the peak rate in ``bin``-second buckets
during the outage and after it (from recovery to the end of the run, so that a
synchronised fleet's later echoes count too), their ratio to the steady rate, and
the pods whose credentials expired (and for how many pod-seconds).
"""

from __future__ import annotations

import heapq
import json
import math
import random
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tenacity import AsyncRetrying, RetryCallState

from sidecar.errors import TransientVendorError
from sidecar.schedule import REFRESH_POINT, FailureWait, refresh_delay

__all__ = ["POLICIES", "WHAT_IFS", "Scenario", "SimResult", "plot", "run", "simulate"]

#: botocore.credentials.RefreshableCredentials windows (seconds before expiry).
BOTOCORE_ADVISORY = 15 * 60
BOTOCORE_MANDATORY = 10 * 60


@dataclass(frozen=True)
class Scenario:
    pods: int = 10_000
    lease: float = 1800.0
    deployments: int = 100
    deploy_spread: float = 3600.0
    rollout: float = 120.0
    outage_start: float = 7200.0
    outage: float = 300.0
    horizon: float = 4 * 3600.0
    fixed_retry: float = 10.0
    access_period: float = 10.0
    bin: float = 10.0
    seed: int = 2026

    @property
    def outage_end(self) -> float:
        return self.outage_start + self.outage

    def pod_starts(self) -> list[float]:
        """Start time of every pod: deployments at random times, each rolled out evenly."""
        rng = random.Random(self.seed)
        per = math.ceil(self.pods / self.deployments)
        starts: list[float] = []
        for _ in range(self.deployments):
            at = rng.uniform(0.0, self.deploy_spread)
            starts += [at + rng.uniform(0.0, self.rollout) for _ in range(per)]
        return starts[: self.pods]


class Policy(Protocol):
    name: str

    def setup(self, scenario: Scenario, starts: list[float]) -> None: ...

    def after_success(self, pod: int, now: float, lifetime: float) -> float: ...

    def after_failure(self, pod: int, now: float, attempt: int, error: BaseException) -> float: ...


class VendSidecar:
    """The project's schedule and backoff, exactly as :class:`sidecar.loop.RefreshLoop` uses them."""

    name = "vend-sidecar"

    def setup(self, scenario: Scenario, starts: list[float]) -> None:
        self._rngs = [random.Random(scenario.seed * 1_000_003 + pod) for pod in range(len(starts))]
        self._waits = [FailureWait(rng) for rng in self._rngs]
        self._retrying = AsyncRetrying()

    def after_success(self, pod: int, now: float, lifetime: float) -> float:
        return now + refresh_delay(lifetime, self._rngs[pod])

    def after_failure(self, pod: int, now: float, attempt: int, error: BaseException) -> float:
        state = RetryCallState(self._retrying, None, (), {})
        state.attempt_number = attempt
        state.set_exception((type(error), error, None))
        return now + self._waits[pod](state)


class FixedInterval:
    """Refresh at two thirds of the lease, retry every ``fixed_retry`` s; no jitter."""

    name = "fixed interval"

    def setup(self, scenario: Scenario, starts: list[float]) -> None:
        self._retry = scenario.fixed_retry

    def after_success(self, pod: int, now: float, lifetime: float) -> float:
        return now + REFRESH_POINT * lifetime

    def after_failure(self, pod: int, now: float, attempt: int, error: BaseException) -> float:
        return now + self._retry


class BotocoreStyle:
    """Refresh on the first credential access inside the advisory window; no jitter."""

    name = "botocore-style"

    def setup(self, scenario: Scenario, starts: list[float]) -> None:
        self._phase = starts
        self._period = scenario.access_period

    def _next_access(self, pod: int, at: float) -> float:
        phase = self._phase[pod]
        return phase + math.ceil((at - phase) / self._period - 1e-9) * self._period

    def after_success(self, pod: int, now: float, lifetime: float) -> float:
        return self._next_access(pod, now + max(lifetime - BOTOCORE_ADVISORY, 0.0))

    def after_failure(self, pod: int, now: float, attempt: int, error: BaseException) -> float:
        return self._next_access(pod, now + self._period)


POLICIES: tuple[type[Policy], ...] = (VendSidecar, FixedInterval, BotocoreStyle)


class LeaseAwareRetry(VendSidecar):
    """NOT shipped; a what-if for the report. After a failure while the published set
    still has ``R`` seconds left, wait at least ``refresh_delay(R)`` (the refresh rule
    applied to what remains) instead of only the full-jitter backoff; optionally
    refresh at ``point`` ± ``jitter`` of the lease instead of the shipped 2/3 ± 0.1."""

    def __init__(self, point: float | None = None, jitter: float = 0.10) -> None:
        self.point, self.jitter = point, jitter
        self.name = "what-if: lease-aware retry" + (f", refresh at {point:.2f}±{jitter:.2f}" if point else "")

    def setup(self, scenario: Scenario, starts: list[float]) -> None:
        super().setup(scenario, starts)
        self._expiry = [0.0] * len(starts)

    def after_success(self, pod: int, now: float, lifetime: float) -> float:
        self._expiry[pod] = now + lifetime
        if self.point is None:
            return super().after_success(pod, now, lifetime)
        return now + lifetime * (self.point + self._rngs[pod].uniform(-self.jitter, self.jitter))

    def after_failure(self, pod: int, now: float, attempt: int, error: BaseException) -> float:
        backoff = super().after_failure(pod, now, attempt, error)
        remaining = self._expiry[pod] - now
        if remaining <= 0:
            return backoff
        return max(backoff, now + refresh_delay(remaining, self._rngs[pod]))


#: What-if policies simulated next to the shipped one (reported, not plotted).
WHAT_IFS: tuple[LeaseAwareRetry, ...] = (LeaseAwareRetry(), LeaseAwareRetry(point=0.55))


@dataclass
class SimResult:
    policy: str
    total_requests: int
    failed_requests: int
    steady_rate: float
    peak_outage_rate: float
    peak_after_rate: float
    peak_to_mean_after: float
    peak_to_mean_outage: float
    expired_pods: int
    expired_pod_seconds: float
    rates: list[float] = field(repr=False)


def _peak(counts: list[int], scenario: Scenario, start: float, end: float) -> float:
    first, last = int(start // scenario.bin), int(math.ceil(end / scenario.bin))
    return max(counts[first:last], default=0) / scenario.bin


def simulate(policy: Policy, scenario: Scenario) -> SimResult:
    """Run one policy over the scenario's fleet; see the module docstring."""
    starts = scenario.pod_starts()
    policy.setup(scenario, starts)
    counts = [0] * int(math.ceil(scenario.horizon / scenario.bin))
    expiry: list[float | None] = [None] * len(starts)
    attempts = [0] * len(starts)
    expired: set[int] = set()
    expired_seconds = 0.0
    failed = 0
    error = TransientVendorError("vending service unavailable (simulated outage)")
    heap = [(t, pod) for pod, t in enumerate(starts)]
    heapq.heapify(heap)
    while heap:
        now, pod = heapq.heappop(heap)
        if now >= scenario.horizon:
            continue
        counts[int(now // scenario.bin)] += 1
        if scenario.outage_start <= now < scenario.outage_end:
            failed += 1
            attempts[pod] += 1
            following = policy.after_failure(pod, now, attempts[pod], error)
        else:
            held = expiry[pod]
            if held is not None and held < now:
                expired.add(pod)
                expired_seconds += now - held
            expiry[pod] = now + scenario.lease
            attempts[pod] = 0
            following = policy.after_success(pod, now, scenario.lease)
        heapq.heappush(heap, (following, pod))
    for pod, held in enumerate(expiry):  # still without fresh credentials at the end
        if held is not None and held < scenario.horizon:
            expired.add(pod)
            expired_seconds += scenario.horizon - held

    first = int((scenario.outage_start - scenario.lease) // scenario.bin)
    last = int(scenario.outage_start // scenario.bin)
    steady = sum(counts[first:last]) / (scenario.outage_start - first * scenario.bin)
    peak_outage = _peak(counts, scenario, scenario.outage_start, scenario.outage_end)
    peak_after = _peak(counts, scenario, scenario.outage_end, scenario.horizon)
    return SimResult(
        policy=policy.name,
        total_requests=sum(counts),
        failed_requests=failed,
        steady_rate=steady,
        peak_outage_rate=peak_outage,
        peak_after_rate=peak_after,
        peak_to_mean_after=peak_after / steady if steady else math.inf,
        peak_to_mean_outage=peak_outage / steady if steady else math.inf,
        expired_pods=len(expired),
        expired_pod_seconds=expired_seconds,
        rates=[c / scenario.bin for c in counts],
    )


def run(scenario: Scenario | None = None, *, what_ifs: bool = True) -> dict[str, object]:
    """The three policies on ``scenario``; with ``what_ifs`` also the what-if policies
    on it and on a longer outage (0.3 of the lease, just under the one-third bound)."""
    scenario = scenario or Scenario()
    outcome: dict[str, object] = {
        "scenario": asdict(scenario),
        "results": [simulate(policy(), scenario) for policy in POLICIES],
    }
    if what_ifs:
        longer = replace(scenario, outage=round(0.3 * scenario.lease))
        outcome["longer_outage"] = asdict(longer)
        outcome["what_ifs"] = {
            "outage": [simulate(p, scenario) for p in (VendSidecar(), *WHAT_IFS)],
            "longer_outage": [simulate(p, longer) for p in (VendSidecar(), *WHAT_IFS)],
        }
    return outcome


def plot(results: list[SimResult], scenario: Scenario, path: Path) -> None:
    """Request rate over time, one line per policy: the whole run (1-minute means)
    above, the outage and recovery (``bin``-second buckets) below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"vend-sidecar": "#1b7837", "fixed interval": "#d6604d", "botocore-style": "#4393c3"}
    fig, (whole, zoom) = plt.subplots(2, 1, figsize=(11, 8), constrained_layout=True)
    per_minute = max(1, int(60 // scenario.bin))
    for result in results:
        rates = result.rates
        minutes = [sum(rates[i : i + per_minute]) / per_minute for i in range(0, len(rates), per_minute)]
        whole.plot(
            [i * per_minute * scenario.bin / 3600 for i in range(len(minutes))],
            [m if m > 0 else float("nan") for m in minutes],
            label=f"{result.policy}: {result.total_requests:,} requests, {result.expired_pods} pods expired",
            color=colours.get(result.policy),
            linewidth=1.2,
        )
        lo = int((scenario.outage_start - 600) // scenario.bin)
        hi = int(min(scenario.outage_end + 2700, scenario.horizon) // scenario.bin)
        zoom.plot(
            [(i * scenario.bin - scenario.outage_start) / 60 for i in range(lo, hi)],
            [r if r > 0 else float("nan") for r in rates[lo:hi]],
            label=f"{result.policy}: peak {result.peak_after_rate:.0f}/s after the outage "
            f"({result.peak_to_mean_after:.1f}x its steady {result.steady_rate:.1f}/s)",
            color=colours.get(result.policy),
            linewidth=1.2,
        )
    whole.axvspan(scenario.outage_start / 3600, scenario.outage_end / 3600, color="0.85", label="vending service down")
    whole.set(
        title=f"{scenario.pods:,} sidecars, {scenario.lease / 60:.0f}-minute lease, "
        f"{scenario.outage / 60:.0f}-minute outage (simulated, virtual clock)",
        xlabel="hours since the first deployment",
        ylabel="requests/s (1-minute mean)",
        yscale="log",
    )
    whole.legend(loc="upper right", fontsize=8)
    zoom.axvspan(0, scenario.outage / 60, color="0.85", label="vending service down")
    zoom.set(
        title=f"Outage and recovery ({scenario.bin:.0f}-second buckets)",
        xlabel="minutes since the outage began",
        ylabel="requests/s",
        yscale="log",
    )
    zoom.legend(loc="upper right", fontsize=8)
    top = max(max(r.rates) for r in results)
    for axis in (whole, zoom):
        axis.grid(True, which="major", alpha=0.3)
        axis.set_ylim(top=top * 40)  # head room on the log scale keeps the legend off the lines
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary(result: SimResult) -> dict[str, object]:
    """A result without its time series (for JSON)."""
    return {k: v for k, v in asdict(result).items() if k != "rates"}


def main() -> None:
    pods = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    outcome = run(Scenario(pods=pods))
    print(
        json.dumps(
            outcome,
            indent=2,
            default=lambda o: summary(o) if isinstance(o, SimResult) else str(o),
        )
    )


if __name__ == "__main__":
    main()
