"""The consumer library's refreshable aiobotocore credentials (sidecar.consumer)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from sidecar.consumer import aio_session, lease_windows, refreshable_credentials
from sidecar.credentials import Credentials
from sidecar.errors import NotPublished
from sidecar.publish import Publisher
from sidecar.render import render

from conftest import FakeClock
from vendor_double import derive, is_consistent


def publish(publisher: Publisher, key: str, expires_at: float) -> None:
    secret, token = derive(key)
    credentials = Credentials(
        access_key_id=key,
        secret_access_key=SecretStr(secret),
        session_token=SecretStr(token),
        expiration=datetime.fromtimestamp(expires_at, UTC),
    )
    publisher.publish(render(credentials))


@pytest.fixture
def publisher(out_dir: Path) -> Publisher:
    writer = Publisher(out_dir)
    writer.prepare()
    return writer


@pytest.mark.parametrize(
    ("lease", "advisory", "mandatory"),
    [(5, 1.0, 0.5), (60, 12.0, 6.0), (900, 180.0, 90.0), (3600, 720.0, 360.0), (43200, 900.0, 600.0)],
)
def test_windows_scale_with_the_lease_and_keep_botocores_as_ceilings(lease: float, advisory: float, mandatory: float) -> None:
    assert lease_windows(lease) == pytest.approx((advisory, mandatory))
    # The point: a lease of 15 min or less starts outside the advisory window.
    assert lease_windows(lease)[0] < lease


@pytest.mark.anyio
async def test_rereads_only_near_expiry_and_picks_up_the_new_set(publisher: Publisher, out_dir: Path, fake_clock: FakeClock) -> None:
    t0 = int(fake_clock.t)
    fake_clock.t = t0
    publish(publisher, "ASIAFIRST00000000001", t0 + 60)
    credentials = refreshable_credentials(out_dir, lease=60, clock=fake_clock.now)
    assert (await credentials.get_frozen_credentials()).access_key == "ASIAFIRST00000000001"

    publish(publisher, "ASIASECOND0000000002", t0 + 100)  # the sidecar rotated early
    fake_clock.t = t0 + 47  # 13 s left: outside the 12 s advisory window, no re-read
    assert (await credentials.get_frozen_credentials()).access_key == "ASIAFIRST00000000001"

    fake_clock.t = t0 + 49  # 11 s left: advisory window, re-read
    frozen = await credentials.get_frozen_credentials()
    assert frozen.access_key == "ASIASECOND0000000002"
    assert is_consistent(frozen.access_key, frozen.secret_key, frozen.token)


@pytest.mark.anyio
async def test_advisory_keeps_the_old_set_but_mandatory_raises(publisher: Publisher, out_dir: Path, fake_clock: FakeClock) -> None:
    t0 = int(fake_clock.t)
    fake_clock.t = t0
    publish(publisher, "ASIAONLY000000000001", t0 + 60)
    credentials = refreshable_credentials(out_dir, lease=60, clock=fake_clock.now)

    fake_clock.t = t0 + 50  # advisory: the sidecar has not rotated; keep using the set
    assert (await credentials.get_frozen_credentials()).access_key == "ASIAONLY000000000001"

    fake_clock.t = t0 + 56  # mandatory: no newer set is an error, not silent use of a dying set
    with pytest.raises(NotPublished, match="4 s left"):
        await credentials.get_frozen_credentials()

    fake_clock.t = t0 + 61  # expired: the re-read itself fails, and the failure surfaces
    with pytest.raises(NotPublished, match="expired"):
        await credentials.get_frozen_credentials()


@pytest.mark.anyio
async def test_lease_is_estimated_from_the_published_set(publisher: Publisher, out_dir: Path, fake_clock: FakeClock) -> None:
    # The files' mtime is the real publication time; expiration = that + 60 s.
    now = fake_clock.t
    publish(publisher, "ASIAEST0000000000001", int(now) + 61)
    credentials = refreshable_credentials(out_dir, clock=fake_clock.now)
    assert 59 <= credentials._advisory_refresh_timeout / 0.2 <= 62  # botocore keeps the window here


@pytest.mark.anyio
async def test_rereads_never_mix_two_generations(publisher: Publisher, out_dir: Path, fake_clock: FakeClock) -> None:
    t0 = int(fake_clock.t)
    fake_clock.t = t0
    publish(publisher, "ASIASWAP000000000000", t0 + 100)
    # lease 600: advisory 120 s, mandatory 60 s; every access re-reads (100 s left).
    credentials = refreshable_credentials(out_dir, lease=600, clock=fake_clock.now)
    stop = threading.Event()

    def swap() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            publish(publisher, f"ASIASWAP{n:012d}", t0 + 100)

    writer = threading.Thread(target=swap)
    writer.start()
    seen = set()
    try:
        for _ in range(50_000):  # bounded; normally ends after a few hundred reads
            frozen = await credentials.get_frozen_credentials()
            assert is_consistent(frozen.access_key, frozen.secret_key, frozen.token)
            seen.add(frozen.access_key)
            if len(seen) >= 20:
                break
    finally:
        stop.set()
        writer.join(10)
    assert len(seen) >= 2  # the reads really raced the swaps


@pytest.mark.anyio
async def test_session_takes_credentials_only_from_the_directory(
    publisher: Publisher, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENVIRONMENT1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-the-environment")
    with pytest.raises(NotPublished):  # nothing published: an error, not the env's keys
        await aio_session(out_dir).get_credentials()
    import time

    publish(publisher, "ASIAFROMSIDECAR00001", time.time() + 3600)
    session = aio_session(out_dir)
    credentials = await session.get_credentials()
    assert credentials.method == "vend-sidecar"
    assert (await credentials.get_frozen_credentials()).access_key == "ASIAFROMSIDECAR00001"
