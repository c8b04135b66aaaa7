"""Drive the real :class:`~sidecar.loop.RefreshLoop` on a virtual clock.

Everything below the loop is real: the token file on disk, the httpx client talking
to the vending double over loopback, the publisher writing OUT. Only time is virtual:
the loop's ``sleep`` records each wait with the loop's phase (``waiting`` for a
scheduled refresh, ``backoff`` after a failure), advances the clock and returns at
once, so a test sees the exact backoff the schedule chose without waiting for it.

Hooks let a test act at the two moments that matter: ``on_refresh_wait(n)`` runs
while the loop waits for its next refresh after ``n`` publishes (arm a fault there),
``on_backoff(i)`` while it backs off after its ``i``-th failure (check that the last
good set is intact there). With ``park_backoff`` a backoff never ends by itself: only
a token-directory change (the watchfiles watch) can wake the loop, which is how the
token tests prove recovery without a restart.
"""

from __future__ import annotations

import inspect
import io
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio

from sidecar.credentials import Grant
from sidecar.logs import configure
from sidecar.loop import LoopObserver, RefreshLoop
from sidecar.publish import Publisher, PublishResult
from sidecar.vendor import VendorClient, build_http_client

__all__ = ["LoopDriver", "Recorder", "capture_logs"]


class Recorder(LoopObserver):
    """Keeps every vend error and every published grant."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        self.grants: list[Grant] = []

    def vend_finished(self, *, duration: float, error: BaseException | None) -> None:
        if error is not None:
            self.errors.append(error)

    def published(self, grant: Grant, result: PublishResult, now: float) -> None:
        self.grants.append(grant)


class LoopDriver:
    """One real refresh loop against ``vendor_url``, on a virtual clock."""

    def __init__(
        self,
        *,
        token_file: Path,
        out: Path,
        vendor_url: str,
        ca_file: Path | None = None,
        timeout: float = 5.0,
        watch: bool = False,
        park_backoff: bool = False,
        seed: int = 0,
        on_step: Callable[[str], None] | None = None,
        audience: str | None = None,
    ) -> None:
        self.now = time.time()
        self.audience = audience
        self.token_file = token_file
        self.vendor_url = vendor_url
        self.ca_file = ca_file
        self.timeout = timeout
        self.watch = watch
        self.park_backoff = park_backoff
        self.seed = seed
        self.recorder = Recorder()
        self.publisher = Publisher(out, clock=self.clock, rng=random.Random(seed), on_step=on_step)
        publish = self.publisher.publish

        def recording_publish(files: dict[str, bytes]) -> PublishResult:
            try:
                return publish(files)
            except BaseException as exc:
                self.recorder.errors.append(exc)  # publish errors too, for leak checks
                raise

        self.publisher.publish = recording_publish  # type: ignore[method-assign]
        #: (phase, seconds) of every sleep the loop asked for.
        self.waits: list[tuple[str, float]] = []
        #: (class, message) as the loop's status showed them at each backoff.
        self.failures: list[tuple[str | None, str | None]] = []
        self.on_refresh_wait: Callable[[int], Awaitable[None] | None] = lambda published: None
        self.on_backoff: Callable[[int], Awaitable[None] | None] = lambda failures: None
        #: How many times the loop's token-directory watch reported a change.
        self.watch_events = 0
        self.loop: RefreshLoop | None = None
        self._target = 1
        self._scope: anyio.CancelScope | None = None

    def clock(self) -> float:
        return self.now

    @property
    def backoffs(self) -> list[float]:
        return [seconds for phase, seconds in self.waits if phase == "backoff"]

    async def _sleep(self, seconds: float) -> None:
        assert self.loop is not None and self._scope is not None
        phase = self.loop.status.phase
        self.waits.append((phase, seconds))
        self.now += max(seconds, 0.0)
        if phase == "waiting":
            if len(self.recorder.grants) >= self._target:
                self._scope.cancel()
            else:
                await _maybe_await(self.on_refresh_wait(len(self.recorder.grants)))
        else:
            status = self.loop.status
            self.failures.append((status.last_error_class, status.last_error))
            await _maybe_await(self.on_backoff(len(self.failures)))
            if self.park_backoff:
                await anyio.sleep_forever()  # only a token change (or the test) ends this
        await anyio.lowlevel.checkpoint()

    async def wait_for_watch(self, directory: Path, *, limit: float = 10.0) -> None:
        """Block until the loop's token watch is live: touch a probe file in
        ``directory`` until the loop reports a change (bounded, polled)."""
        seen = self.watch_events
        probe = directory / ".probe"
        with anyio.fail_after(limit):
            while self.watch_events == seen:
                probe.write_text(str(time.monotonic()))
                await anyio.sleep(0.05)
        probe.unlink()

    async def run(self, publishes: int, *, limit: float = 20.0) -> None:
        """Run until ``publishes`` sets have been published, or fail after ``limit`` s."""
        self._target = publishes
        http = build_http_client(timeout=self.timeout, ca_file=self.ca_file)
        async with http:
            vendor = VendorClient(
                vendor_url=self.vendor_url,
                bucket="artifacts",
                prefix="tenant-a/",
                actions=("read", "list"),
                ttl_seconds=3600,
                http=http,
            )
            self.loop = RefreshLoop(
                token_file=self.token_file,
                vendor=vendor,
                publisher=self.publisher,
                audience=self.audience,
                clock=self.clock,
                sleep=self._sleep,
                rng=random.Random(self.seed),
                observer=self.recorder,
                watch=self.watch,
            )
            # Count the watch's reports (a public method, wrapped on this instance only).
            notify = self.loop.token_changed

            def token_changed() -> None:
                self.watch_events += 1
                notify()

            self.loop.token_changed = token_changed  # type: ignore[method-assign]
            with anyio.fail_after(limit):
                with anyio.CancelScope() as self._scope:
                    await self.loop.run()


async def _maybe_await(result: Awaitable[None] | None) -> None:
    if inspect.isawaitable(result):
        await result


@contextmanager
def capture_logs(fmt: str = "json") -> Iterator[io.StringIO]:
    """sidecar.logs configured at debug level into a buffer; the root logger is restored."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    ours = logging.getLogger("vend_sidecar")
    saved_ours = ours.level
    buffer = io.StringIO()
    configure(fmt=fmt, level="debug", stream=buffer)
    try:
        yield buffer
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
        ours.setLevel(saved_ours)
        logging.captureWarnings(False)
