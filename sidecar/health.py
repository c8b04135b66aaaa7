"""Probes: ``/healthz`` (liveness), ``/readyz`` (readiness) and ``/metrics``, one port.

Liveness answers "would a restart help?", so it fails only when the sidecar is
*wedged*, never because the vending service is down (a restart cannot fix that,
and a restart loop would only add load). Wedged means one of, concretely:

* the refresh loop has stopped (it only stops on the way out);
* start-up (preparing OUT) or one refresh attempt (token read, request, publish)
  has been running for longer than ``stall_after`` seconds. Timeouts bound every network operation, so this
  catches what they cannot: an answer trickled a byte at a time, an fsync hung on
  a dead volume;
* the event loop has not run for ``stall_after`` seconds (a heartbeat task stamps
  a monotonic clock; the probe runs on its own thread, so it can still answer).

Readiness answers "can the app use the credentials now?" and is computed from the
*disk*, with :func:`sidecar.consumer.read_credentials`: the same check, on the same
bytes, as ``vend-sidecar check`` and as a careful app. It fails until a consistent
set is published, and again when the set has ``min_remaining`` seconds or fewer left.
A valid set found on disk at start (the sidecar container restarted, the volume
did not) counts as published.

The verdicts (:func:`liveness`, :func:`readiness`) are plain functions of plain
values; :func:`health_app` is the thin WSGI shell around them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from .consumer import read_credentials
from .errors import NotPublished
from .loop import LoopStatus

__all__ = ["Heartbeat", "Verdict", "health_app", "liveness", "readiness"]


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str
    fields: dict[str, Any] = field(default_factory=dict)

    def body(self) -> bytes:
        doc = {"status": "ok" if self.ok else "fail", "reason": self.reason, **self.fields}
        return (json.dumps(doc, sort_keys=False) + "\n").encode()


def _loop_fields(status: LoopStatus, now: float) -> dict[str, Any]:
    return {
        "phase": status.phase,
        "phase_seconds": round(max(now - status.phase_since, 0.0), 3),
        "consecutive_failures": status.consecutive_failures,
        "last_error_class": status.last_error_class,
        "last_success": status.last_success,
        "next_refresh": status.next_refresh,
    }


def liveness(status: LoopStatus, *, now: float, heartbeat_age: float, stall_after: float) -> Verdict:
    """Alive unless wedged (see the module docstring for the exact conditions)."""
    phase, since = status.phase, status.phase_since  # read once: the loop writes concurrently
    fields = _loop_fields(status, now) | {"stall_after": stall_after}
    if phase == "stopped":
        return Verdict(False, "the refresh loop has stopped", fields)
    if heartbeat_age > stall_after:
        return Verdict(False, f"the event loop has not run for {heartbeat_age:.0f} s (limit {stall_after:g} s)", fields)
    if phase in ("starting", "vending") and now - since > stall_after:
        doing = "start-up (preparing OUT)" if phase == "starting" else "one refresh attempt"
        return Verdict(False, f"{doing} has been running for {now - since:.0f} s (limit {stall_after:g} s)", fields)
    return Verdict(True, f"alive ({phase})", fields)


def readiness(out: Path, status: LoopStatus | None, *, now: float, min_remaining: float) -> Verdict:
    """Ready while OUT holds one consistent set with more than ``min_remaining`` s left."""
    fields: dict[str, Any] = {"min_remaining": min_remaining}
    if status is not None:
        fields |= _loop_fields(status, now)
    try:
        credentials = read_credentials(out, min_remaining=min_remaining, clock=lambda: now)
    except NotPublished as exc:
        return Verdict(False, str(exc), fields)
    remaining = credentials.expiration.timestamp() - now
    fields |= {"expiration": credentials.expiration_text, "remaining_seconds": int(remaining)}
    return Verdict(True, f"credentials valid until {credentials.expiration_text} ({int(remaining)} s left)", fields)


class Heartbeat:
    """A task in the event loop stamps a monotonic clock every ``interval`` seconds;
    :meth:`age` tells another thread how long ago the loop last ran."""

    def __init__(self, interval: float = 5.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._monotonic = monotonic
        self._last = monotonic()

    def age(self) -> float:
        return max(self._monotonic() - self._last, 0.0)

    async def run(self) -> None:
        while True:
            self._last = self._monotonic()
            await anyio.sleep(self.interval)


def _json_headers(*extra: tuple[str, str]) -> list[tuple[str, str]]:
    # A fresh list per answer: wsgiref appends Content-Length to the list it is given.
    return [("Content-Type", "application/json"), ("Cache-Control", "no-store"), *extra]


def health_app(
    *,
    status: LoopStatus,
    out: Path,
    min_remaining: float,
    stall_after: float,
    heartbeat: Heartbeat,
    metrics_app: Callable[..., Iterable[bytes]],
    clock: Callable[[], float] = time.time,
) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """WSGI app: ``GET /healthz``, ``GET /readyz`` (JSON, 200 or 503), ``GET /metrics``."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path not in ("/healthz", "/readyz"):
            start_response("404 Not Found", _json_headers())
            return [b'{"status":"fail","reason":"not found; try /healthz, /readyz or /metrics"}\n']
        if method not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", _json_headers(("Allow", "GET, HEAD")))
            return [b'{"status":"fail","reason":"use GET"}\n']
        now = clock()
        if path == "/healthz":
            verdict = liveness(status, now=now, heartbeat_age=heartbeat.age(), stall_after=stall_after)
        else:
            verdict = readiness(out, status, now=now, min_remaining=min_remaining)
        start_response("200 OK" if verdict.ok else "503 Service Unavailable", _json_headers())
        return [b""] if method == "HEAD" else [verdict.body()]

    return app
