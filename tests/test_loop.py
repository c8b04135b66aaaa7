"""The refresh loop in-process against the real loopback double.

``sleep`` is injected: waits are recorded instead of slept, so the schedule and the
retry classes are asserted exactly and nothing waits on wall-clock luck.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from conftest import FakeClock, TokenDir, make_jwt
from sidecar.consumer import read_credentials
from sidecar.errors import AuthRejected, DeadlineExceeded, Denied
from sidecar.loop import RefreshLoop
from sidecar.publish import Publisher
from sidecar.schedule import JITTER_FRACTION, REFRESH_POINT
from sidecar.vendor import VendorClient, build_http_client
from vendor_double import VendorDouble, error, grant, is_consistent, raw

pytestmark = pytest.mark.anyio


class Sleeper:
    """Records each wait; stops the loop (cancels) after ``limit`` waits."""

    def __init__(self, limit: int, on_sleep: Callable[[float], None] | None = None) -> None:
        self.waits: list[float] = []
        self.limit = limit
        self.on_sleep = on_sleep
        self.scope: anyio.CancelScope | None = None

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.on_sleep:
            self.on_sleep(seconds)
        if len(self.waits) >= self.limit and self.scope is not None:
            self.scope.cancel()
        await anyio.lowlevel.checkpoint()


def make_loop(vendor: VendorDouble, token_dir: TokenDir, out: Path, sleep, **kwargs) -> RefreshLoop:  # type: ignore[no-untyped-def]
    client = VendorClient(
        vendor_url=vendor.url,
        bucket="artifacts",
        prefix="tenant-a/",
        actions=["read", "write"],
        ttl_seconds=1800,
        http=build_http_client(timeout=5.0),
    )
    return RefreshLoop(
        token_file=token_dir.path,
        vendor=client,
        publisher=Publisher(out),
        sleep=sleep,
        rng=random.Random(4),
        watch=kwargs.pop("watch", False),
        **kwargs,
    )


async def run_until_cancelled(loop: RefreshLoop, sleeper: Sleeper) -> None:
    with anyio.fail_after(30):
        with anyio.CancelScope() as scope:
            sleeper.scope = scope
            await loop.run()
    await loop.vendor.aclose()


async def test_publishes_and_schedules_refresh_in_the_jitter_band(vendor: VendorDouble, token_dir: TokenDir, out_dir: Path) -> None:
    vendor.lifetime = 1800
    sleeper = Sleeper(limit=3)
    loop = make_loop(vendor, token_dir, out_dir, sleeper)
    await run_until_cancelled(loop, sleeper)
    assert len(vendor.requests) == 3
    for wait in sleeper.waits:
        assert 1800 * (REFRESH_POINT - JITTER_FRACTION) - 5 <= wait <= 1800 * (REFRESH_POINT + JITTER_FRACTION)
    creds = read_credentials(out_dir)
    assert creds.access_key_id == vendor.issued[-1]["access_key_id"]
    assert is_consistent(creds.access_key_id, creds.secret_access_key.get_secret_value(), creds.session_token.get_secret_value())
    assert loop.status.published_expiry and loop.status.last_success and loop.status.consecutive_failures == 0


async def test_two_second_leases_refresh_before_expiry(vendor: VendorDouble, token_dir: TokenDir, out_dir: Path) -> None:
    vendor.lifetime = 2
    sleeper = Sleeper(limit=5)
    await run_until_cancelled(make_loop(vendor, token_dir, out_dir, sleeper), sleeper)
    assert all(0 < w < 2 for w in sleeper.waits)


async def test_transient_failures_back_off_with_full_jitter_and_keep_the_good_set(
    vendor: VendorDouble, token_dir: TokenDir, out_dir: Path
) -> None:
    snapshots: list[bytes] = []
    sleeper = Sleeper(limit=6, on_sleep=lambda _: snapshots.append((out_dir / "credentials.json").read_bytes()))
    vendor.script(grant(), error(503, "backend_unavailable"), error(500, None), raw(200, b"<html>"), raw(502, b""))
    loop = make_loop(vendor, token_dir, out_dir, sleeper)
    await run_until_cancelled(loop, sleeper)
    refresh, *backoffs, _ = sleeper.waits
    assert refresh > 1000
    # attempt n of a failure streak waits uniform(0, 2**(n-1)).
    assert [w <= 2 ** n for n, w in enumerate(backoffs)] == [True] * 4
    # During the failures the first good set stayed published, byte for byte.
    assert snapshots[0] == snapshots[1] == snapshots[2] == snapshots[3] == snapshots[4]
    assert read_credentials(out_dir).access_key_id == vendor.issued[-1]["access_key_id"]
    assert len(vendor.issued) == 2


async def test_retry_after_is_honoured(vendor: VendorDouble, token_dir: TokenDir, out_dir: Path) -> None:
    sleeper = Sleeper(limit=2)
    vendor.script(error(429, "rate_limited", retry_after="17"))
    await run_until_cancelled(make_loop(vendor, token_dir, out_dir, sleeper), sleeper)
    assert sleeper.waits[0] >= 17


async def test_denied_backs_off_slowly_and_logs_once(vendor: VendorDouble, token_dir: TokenDir, out_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="vend_sidecar")
    sleeper = Sleeper(limit=4)
    vendor.script(*[error(403, "denied", "prefix_not_allowed")] * 3)
    loop = make_loop(vendor, token_dir, out_dir, sleeper)
    await run_until_cancelled(loop, sleeper)
    assert [2.5 <= sleeper.waits[0] <= 5, 5 <= sleeper.waits[1] <= 10, 10 <= sleeper.waits[2] <= 20] == [True] * 3
    failures = [r for r in caplog.records if r.getMessage() == "vend.failure"]
    assert [r.levelname for r in failures] == ["WARNING", "DEBUG", "DEBUG"]
    assert failures[0].fields["reason"] == "prefix_not_allowed" and failures[0].fields["decision_id"] == "dec-err"
    assert failures[0].fields["request_id"] == vendor.requests[0].headers["X-Request-Id"]


async def test_auth_rejection_retries_at_once_when_the_token_rotates(vendor: VendorDouble, token_dir: TokenDir, out_dir: Path) -> None:
    """A 401 backs off slowly, but a kubelet swap of the token wakes the loop at once."""
    vendor.script(error(401, "invalid_token", "expired"))
    published = anyio.Event()

    async def sleep(seconds: float) -> None:
        if not published.is_set() and len(vendor.requests) >= 2:
            published.set()
        await anyio.sleep(3600)  # only a token change (or cancellation) ends this wait

    loop = make_loop(vendor, token_dir, out_dir, sleep, watch=True)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(loop.run)
            while len(vendor.requests) < 1:
                await anyio.sleep(0.01)
            # Rotate (a new token each time: an identical one is not rewritten) until
            # the watcher, armed in its own thread, notices.
            written: list[str] = []
            while len(vendor.requests) < 2:
                written.append(make_jwt(sub="fresh", jti=f"rotation-{len(written)}"))
                token_dir.write(written[-1])
                with anyio.move_on_after(0.5):
                    await published.wait()
            tg.cancel_scope.cancel()
    await loop.vendor.aclose()
    assert vendor.requests[1].headers["Authorization"].removeprefix("Bearer ") in written
    assert read_credentials(out_dir).access_key_id == vendor.issued[-1]["access_key_id"]


async def test_every_vend_reads_the_token_afresh(vendor: VendorDouble, token_dir: TokenDir, out_dir: Path) -> None:
    tokens = [make_jwt(sub=f"s{i}") for i in range(3)]
    token_dir.write(tokens[0])
    sleeper = Sleeper(limit=3, on_sleep=lambda _: token_dir.write(tokens[len(vendor.requests) % 3]))
    await run_until_cancelled(make_loop(vendor, token_dir, out_dir, sleeper), sleeper)
    sent = [r.headers["Authorization"].removeprefix("Bearer ") for r in vendor.requests]
    assert sent == tokens


async def test_token_errors_back_off_slowly_without_calling_the_vendor(vendor: VendorDouble, token_dir: TokenDir, out_dir: Path) -> None:
    token_dir.write(make_jwt(exp=int(time.time()) - 10))
    sleeper = Sleeper(limit=2)
    loop = make_loop(vendor, token_dir, out_dir, sleeper)
    await run_until_cancelled(loop, sleeper)
    assert vendor.requests == []
    assert loop.status.last_error_class == "token" and "expired" in (loop.status.last_error or "")
    assert 2.5 <= sleeper.waits[0] <= 5


async def test_once_publishes_one_set(vendor: VendorDouble, token_dir: TokenDir, out_dir: Path) -> None:
    loop = make_loop(vendor, token_dir, out_dir, Sleeper(limit=99), once=True)
    with anyio.fail_after(20):
        grant_ = await loop.run()
    await loop.vendor.aclose()
    assert grant_ is not None and len(vendor.requests) == 1
    assert read_credentials(out_dir).access_key_id == grant_.credentials.access_key_id


@pytest.mark.parametrize("status, code, exc", [(403, "denied", Denied), (400, "invalid_request", Denied), (401, "invalid_token", AuthRejected)])
async def test_once_stops_at_a_permanent_refusal(vendor: VendorDouble, token_dir: TokenDir, out_dir: Path, status: int, code: str, exc: type) -> None:
    vendor.script(error(status, code, "ttl_out_of_bounds"))
    loop = make_loop(vendor, token_dir, out_dir, Sleeper(limit=99), once=True)
    with anyio.fail_after(20), pytest.raises(exc):
        await loop.run()
    await loop.vendor.aclose()
    assert len(vendor.requests) == 1 and not (out_dir / "..data").exists()


async def test_once_gives_up_at_its_deadline_on_a_virtual_clock(vendor: VendorDouble, token_dir: TokenDir, out_dir: Path) -> None:
    clock = FakeClock()
    vendor.script(*[error(503, "backend_unavailable")] * 200)
    loop = make_loop(vendor, token_dir, out_dir, clock.sleep, clock=clock.now, once=True, once_timeout=60)
    with anyio.fail_after(20), pytest.raises(DeadlineExceeded) as info:
        await loop.run()
    await loop.vendor.aclose()
    assert sum(clock.sleeps) == pytest.approx(60, abs=1e-6)  # the last wait is cut to the deadline
    assert len(vendor.requests) == len(clock.sleeps) + 1
    assert "503" in str(info.value) or "unavailable" in str(info.value)
