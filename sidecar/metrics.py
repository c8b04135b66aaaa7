"""Prometheus metrics: a :class:`~sidecar.loop.LoopObserver` plus a collector over
:class:`~sidecar.loop.LoopStatus`. Exposition is prometheus-client's.

Names are pinned (docs/operations.md explains each one):

===================================================  =========  ================================
``vend_sidecar_credentials_expiry_timestamp_seconds``  gauge      expiry of the set this process published
``vend_sidecar_last_success_timestamp_seconds``        gauge      time of the last successful refresh
``vend_sidecar_token_expiry_timestamp_seconds``        gauge      ``exp`` of the identity token last read
``vend_sidecar_refresh_total{result}``                 counter    refresh attempts: ``success``/``failure``
``vend_sidecar_refresh_failures_total{class}``         counter    failed attempts by retry class
``vend_sidecar_vendor_request_duration_seconds``       histogram  time of each request to the vending service
===================================================  =========  ================================

The three timestamp gauges are read from the loop's status at scrape time and are
*absent* until known, rather than 0: a 0 would make "expires within 5 minutes"
alerts fire at start-up, and "not ready" is a separate, better signal. Every
``result`` and ``class`` label value is created at 0 up front so that ``rate()`` and
``increase()`` see the first failure. No label ever carries a secret, a key id or a
request id (unbounded cardinality).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .credentials import Grant
from .errors import TokenError
from .loop import LoopObserver, LoopStatus
from .publish import PublishResult

__all__ = ["FAILURE_CLASSES", "Metrics"]

#: Every value of the ``class`` label (``sidecar.schedule.failure_class``).
FAILURE_CLASSES = ("transient", "auth", "denied", "invalid_answer", "token", "publish")
#: Vendor request buckets, seconds: loopback answers to the 60 s timeout ceiling.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _StatusCollector(Collector):
    """Timestamp gauges computed from the loop status when Prometheus scrapes."""

    _GAUGES = (
        ("vend_sidecar_credentials_expiry_timestamp_seconds", "published_expiry",
         "Expiry (Unix time) of the credential set this sidecar last published."),
        ("vend_sidecar_last_success_timestamp_seconds", "last_success",
         "Time (Unix) of the last successful refresh (vend and publish)."),
        ("vend_sidecar_token_expiry_timestamp_seconds", "token_expiry",
         "Expiry (Unix time, the exp claim) of the identity token last read."),
    )

    def __init__(self) -> None:
        self.status: LoopStatus | None = None

    def describe(self) -> Iterator[Metric]:
        for name, _, doc in self._GAUGES:
            yield GaugeMetricFamily(name, doc)

    def collect(self) -> Iterator[Metric]:
        status = self.status
        if status is None:
            return
        for name, attribute, doc in self._GAUGES:
            value = getattr(status, attribute)
            if value is not None:
                yield GaugeMetricFamily(name, doc, value=float(value))


class Metrics(LoopObserver):
    """The sidecar's metrics in their own registry (no global state shared with
    libraries); hand it to :class:`~sidecar.loop.RefreshLoop` as ``observer`` and call
    :meth:`watch` with the loop's status."""

    def __init__(self, *, process_metrics: bool = True) -> None:
        disable_created_metrics()  # no *_created series: noise for a single process
        self.registry = CollectorRegistry(auto_describe=True)
        self.refreshes = Counter(
            "vend_sidecar_refresh",
            "Refresh attempts (vend then publish), by result.",
            ["result"],
            registry=self.registry,
        )
        self.failures = Counter(
            "vend_sidecar_refresh_failures",
            "Failed refresh attempts, by retry class: transient (5xx, 429, network, TLS), "
            "invalid_answer (a 200 that breaks the contract), auth (401), denied (400/403), "
            "token (token file missing, unreadable or expired), publish (OUT not writable).",
            ["class"],
            registry=self.registry,
        )
        self.vendor_duration = Histogram(
            "vend_sidecar_vendor_request_duration_seconds",
            "Duration of each request to the credential-vending service, whatever its outcome.",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        for result in ("success", "failure"):
            self.refreshes.labels(result=result)
        for cls in FAILURE_CLASSES:
            self.failures.labels(**{"class": cls})
        self._status = _StatusCollector()
        self.registry.register(self._status)
        if process_metrics:
            from prometheus_client import PlatformCollector, ProcessCollector

            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)

    def watch(self, status: LoopStatus) -> None:
        """Read the timestamp gauges from this status from now on."""
        self._status.status = status

    # -- LoopObserver -------------------------------------------------------------------

    def vend_finished(self, *, duration: float, error: BaseException | None) -> None:
        if not isinstance(error, TokenError):  # a token error never reached the vendor
            self.vendor_duration.observe(duration)

    def published(self, grant: Grant, result: PublishResult, now: float) -> None:
        self.refreshes.labels(result="success").inc()

    def refresh_failed(self, *, error_class: str, error: BaseException) -> None:
        self.refreshes.labels(result="failure").inc()
        self.failures.labels(**{"class": error_class}).inc()
