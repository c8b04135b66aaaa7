"""The refresh loop: the one place that owns control flow.

::

    prepare OUT ──► read token ──► vend ──► render ──► publish ──► sleep until refresh point ─┐
                         ▲           │ error                                                 │
                         │           └──► tenacity decides: wait by class, or stop ──► sleep ┘
                         └── token directory watch (watchfiles) wakes an auth/token backoff

The loop asks :mod:`sidecar.schedule` *when*, :mod:`sidecar.vendor` *what*, and
:mod:`sidecar.publish` to make it visible; it decides nothing itself. tenacity's
``AsyncRetrying`` runs the retry decisions (``FailureWait``), with the loop's own
injected ``sleep`` so tests run on a virtual clock. The last good set stays
published while refreshes fail: nothing here ever deletes or overwrites it with
anything but a newer complete set.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from .credentials import Grant
from .errors import AuthRejected, DeadlineExceeded, Denied, SidecarError
from .logs import event
from .publish import Publisher, PublishResult
from .render import render
from .schedule import FailureWait, failure_class, is_slow, refresh_delay, retryable
from .token import Token, TokenWatch, read_token

__all__ = ["Exchanger", "LoopObserver", "LoopStatus", "RefreshLoop"]

Sleep = Callable[[float], Awaitable[None]]


class Exchanger(Protocol):
    """What the loop asks for credentials: the vending service (:class:`VendorClient`)
    or, in sandboxes, direct STS (:class:`sidecar.sts.StsExchanger`)."""

    url: str

    async def vend(self, token: Token, request_id: str | None = None) -> Grant: ...

    async def aclose(self) -> None: ...


@dataclass
class LoopStatus:
    """What health endpoints and metrics read; written only by the loop."""

    started_at: float
    phase: str = "starting"  # starting | vending | waiting | backoff | stopped
    phase_since: float = 0.0
    published_expiry: float | None = None
    last_success: float | None = None
    next_refresh: float | None = None
    last_error_class: str | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    token_expiry: float | None = None
    generation: str | None = None


class LoopObserver:
    """Hooks for metrics; every method is a no-op here. Must not raise or block."""

    def vend_finished(self, *, duration: float, error: BaseException | None) -> None: ...

    def published(self, grant: Grant, result: PublishResult, now: float) -> None: ...

    def token_read(self, token: Token) -> None: ...

    def refresh_failed(self, *, error_class: str, error: BaseException) -> None:
        """One refresh attempt failed (vendor, token or publish); called once per failure."""


@dataclass
class _Attempt:
    token_version: int = 0
    error: BaseException | None = None
    request_id: str | None = None


class RefreshLoop:
    """Keeps one output directory supplied with fresh credentials."""

    def __init__(
        self,
        *,
        token_file: Path,
        vendor: Exchanger,
        publisher: Publisher,
        audience: str | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = anyio.sleep,
        rng: random.Random | None = None,
        observer: LoopObserver | None = None,
        once: bool = False,
        once_timeout: float = 60.0,
        watch: bool = True,
    ) -> None:
        self.token_file = Path(token_file)
        self.vendor = vendor
        self.publisher = publisher
        self.audience = audience
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.observer = observer or LoopObserver()
        self.once = once
        self.once_timeout = once_timeout
        self._watch_enabled = watch
        self.status = LoopStatus(started_at=clock(), phase_since=clock())
        self._token_version = 0
        self._token_changed = anyio.Event()
        self._token_fingerprint: str | None = None  # last token the loop used
        self._watched_fingerprint: str | None = None  # last token the watcher saw
        self._watch = TokenWatch(self.token_file, lambda: self.token_changed())
        self._attempt = _Attempt()
        self._last_refusal: tuple[object, ...] | None = None
        self._deadline: float | None = None

    # -- phases ------------------------------------------------------------------

    def _enter(self, phase: str) -> None:
        # phase_since first: a health thread reading between the two assignments sees
        # the old phase with a fresh timestamp (harmless), never the new phase with a
        # stale one (which would look like an attempt stuck for hours).
        self.status.phase_since = self._clock()
        self.status.phase = phase

    # -- token watch ---------------------------------------------------------------

    def token_changed(self) -> None:
        """Note a change in the token's directory: wakes an auth/token backoff."""
        self._token_version += 1
        self._token_changed.set()
        self._token_changed = anyio.Event()
        try:
            digest = hashlib.sha256(self.token_file.read_bytes().strip()).hexdigest()[:12]
        except OSError:
            digest = None
        if digest is not None and digest != self._watched_fingerprint:
            if self._watched_fingerprint is not None:
                event(logging.INFO, "token.rotated", token_file=str(self.token_file), fingerprint=digest)
            self._watched_fingerprint = digest

    async def _sleep_or_token_change(self, delay: float, since_version: int) -> None:
        if self._token_version != since_version:
            return  # changed while the attempt ran: retry at once
        changed = self._token_changed
        async with anyio.create_task_group() as tg:

            async def wait_change() -> None:
                await changed.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(wait_change)
            await self._sleep(delay)
            tg.cancel_scope.cancel()

    # -- one attempt -----------------------------------------------------------------

    async def _attempt_once(self) -> Grant:
        attempt = self._attempt = _Attempt(token_version=self._token_version, request_id=str(uuid.uuid4()))
        self._enter("vending")
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            token = read_token(self.token_file, now=self._clock(), audience=self.audience)
            self._note_token(token)
            event(logging.DEBUG, "vend.attempt", request_id=attempt.request_id, url=self.vendor.url)
            if self._deadline is not None:
                with anyio.fail_after(max(self._deadline - self._clock(), 0.05)):
                    grant = await self.vendor.vend(token, attempt.request_id)
            else:
                grant = await self.vendor.vend(token, attempt.request_id)
        except TimeoutError as exc:
            error = DeadlineExceeded("--once deadline reached while waiting for the vendor", last_error=attempt.error)
            raise error from exc
        except BaseException as exc:
            error = exc
            raise
        finally:
            if not isinstance(error, anyio.get_cancelled_exc_class()):
                self.observer.vend_finished(duration=time.perf_counter() - started, error=error)
            attempt.error = error
        result = await anyio.to_thread.run_sync(self.publisher.publish, render(grant.credentials))
        self._record_success(token, grant, result, attempt.request_id)
        return grant

    def _note_token(self, token: Token) -> None:
        self.status.token_expiry = token.expires_at
        self.observer.token_read(token)
        if token.fingerprint != self._token_fingerprint:
            self._token_fingerprint = token.fingerprint
            event(
                logging.INFO,
                "token.loaded",
                token_file=str(self.token_file),
                fingerprint=token.fingerprint,
                exp=int(token.expires_at) if token.expires_at else None,
                **token.audit_fields(),
            )

    def _record_success(self, token: Token, grant: Grant, result: PublishResult, request_id: str | None) -> None:
        now = self._clock()
        status = self.status
        status.published_expiry = grant.credentials.expiration.timestamp()
        status.last_success = now
        status.consecutive_failures = 0
        status.last_error = status.last_error_class = None
        status.generation = result.generation
        self._last_refusal = None
        self.observer.published(grant, result, now)
        event(
            logging.INFO,
            "vend.success",
            request_id=request_id,
            **token.audit_fields(),
            **grant.audit_fields(),
            clock_skew=round(grant.clock_skew, 3) if grant.clock_skew is not None else None,
        )
        event(
            logging.INFO if result.changed else logging.DEBUG,
            "publish",
            out=str(self.publisher.root),
            generation=result.generation,
            changed=result.changed,
            expiration=grant.credentials.expiration_text,
        )

    # -- failures ----------------------------------------------------------------------

    def _record_failure(self, error: BaseException, retry_in: float | None) -> None:
        status = self.status
        status.consecutive_failures += 1
        status.last_error_class = failure_class(error)
        status.last_error = str(error)
        self.observer.refresh_failed(error_class=status.last_error_class, error=error)
        fields: dict[str, object] = {
            "class": status.last_error_class,
            "message": str(error),
            "attempt": status.consecutive_failures,
            "retry_in": round(retry_in, 3) if retry_in is not None else None,
            "request_id": self._attempt.request_id,
        }
        level = logging.WARNING
        if isinstance(error, SidecarError) and hasattr(error, "fields"):
            fields.update({k: v for k, v in error.fields().items() if v is not None})  # type: ignore[attr-defined]
        if isinstance(error, (Denied, AuthRejected)):
            key = (type(error), error.status, error.error, error.reason, error.decision_id)
            if key == self._last_refusal:
                level = logging.DEBUG  # once per distinct answer
            self._last_refusal = key
        event(level, "vend.failure", **fields)

    def _before_sleep(self, retry_state: RetryCallState) -> None:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        delay = retry_state.next_action.sleep if retry_state.next_action else None
        if error is not None:
            self._record_failure(error, delay)
        if delay is not None:
            self.status.next_refresh = self._clock() + delay

    def _should_stop(self, retry_state: RetryCallState) -> bool:
        if self._deadline is None:
            return False
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        return isinstance(error, (Denied, AuthRejected, DeadlineExceeded)) or self._clock() >= self._deadline

    async def _backoff_sleep(self, delay: float) -> None:
        self._enter("backoff")
        if self._deadline is not None:
            delay = max(0.0, min(delay, self._deadline - self._clock()))
        if is_slow(self._attempt.error):
            await self._sleep_or_token_change(delay, self._attempt.token_version)
        else:
            await self._sleep(delay)

    async def _obtain(self) -> Grant:
        retrying = AsyncRetrying(
            retry=retry_if_exception(retryable),
            wait=FailureWait(self._rng),
            stop=self._should_stop,
            sleep=self._backoff_sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                grant = await self._attempt_once()
        return grant

    # -- entry points -----------------------------------------------------------------

    async def run(self) -> Grant | None:
        """Run until cancelled (daemon) or until one set is published (``once``).

        ``once`` raises :class:`Denied`/:class:`AuthRejected` on a permanent refusal and
        :class:`DeadlineExceeded` when transient failures outlast ``once_timeout``.
        """
        live = await anyio.to_thread.run_sync(self.publisher.prepare)
        if live is not None:
            event(logging.INFO, "publish.found", out=str(self.publisher.root), generation=live)
        if self._watch_enabled:
            try:
                self._watched_fingerprint = hashlib.sha256(self.token_file.read_bytes().strip()).hexdigest()[:12]
            except OSError:
                pass
            self._watch.start()
        try:
            if self.once:
                return await self._run_once()
            await self._run_forever()
            return None  # pragma: no cover - _run_forever only ends by an exception
        finally:
            self.stop()
            self._enter("stopped")

    def stop(self) -> None:
        """Stop watching the token's directory (never blocks; see TokenWatch)."""
        self._watch.stop()

    async def _run_once(self) -> Grant:
        self._deadline = self._clock() + self.once_timeout
        try:
            return await self._obtain()
        except (Denied, AuthRejected, DeadlineExceeded) as exc:
            self._record_failure(exc, None)
            raise
        except SidecarError as exc:
            self._record_failure(exc, None)
            raise DeadlineExceeded(
                f"--once could not get credentials within {self.once_timeout:g} s: {exc}", last_error=exc
            ) from exc

    async def _run_forever(self) -> None:
        while True:
            grant = await self._obtain()
            delay = refresh_delay(grant.lifetime, self._rng)
            self.status.next_refresh = self._clock() + delay
            event(logging.DEBUG, "refresh.scheduled", in_seconds=round(delay, 3), lifetime=round(grant.lifetime, 3))
            self._enter("waiting")
            await self._sleep(delay)
