"""A rotation cuts a ``--once`` run's token backoff short (real watch, real vending
double), and the watch never holds up the run's end.

watchfiles' worker notices its stop event only at its next wake-up (every
``WATCH_STEP_MS``), so the watch runs in a daemon thread that nobody waits for:
``run()`` returns as soon as the set is published, and the thread ends by itself.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import anyio
import pytest
from conftest import TokenDir, make_jwt
from vendor_double import VendorDouble, error

from sidecar.loop import RefreshLoop
from sidecar.publish import Publisher
from sidecar.vendor import VendorClient, build_http_client

pytestmark = pytest.mark.anyio


def _watch_threads() -> list[str]:
    """This process's inotify threads (watchfiles names its thread ``notify-rs ...``)."""
    names = []
    for tid in os.listdir("/proc/self/task"):
        try:
            names.append(Path(f"/proc/self/task/{tid}/comm").read_text().strip())
        except OSError:
            continue
    return [name for name in names if name.startswith("notify-rs")]


async def _until(condition, what: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.01)


async def test_a_rotation_ends_a_once_token_backoff_and_the_watch_ends_by_itself(
    vendor: VendorDouble, token_dir: TokenDir, out_dir: Path
) -> None:
    vendor.script(error(503, "backend_unavailable"))
    seen: list[tuple[str | None, list[str]]] = []

    async def sleep(seconds: float) -> None:
        seen.append((loop.status.last_error_class, _watch_threads()))
        if loop.status.last_error_class == "transient":
            token_dir.write(b"")  # kubelet has not written the token yet: the next read fails
            return
        # The token backoff: only the token watch can end this wait.
        await _until(_watch_threads, "the backoff's token watch")
        token_dir.write(make_jwt(jti="rotated"))
        await anyio.sleep_forever()

    async with build_http_client(timeout=5.0) as http:
        client = VendorClient(
            vendor_url=vendor.url, bucket="artifacts", prefix="t/", actions=["read"], ttl_seconds=900, http=http
        )
        loop = RefreshLoop(
            token_file=token_dir.path,
            vendor=client,
            publisher=Publisher(out_dir),
            rng=random.Random(1),
            sleep=sleep,
            once=True,
            watch=True,
        )
        with anyio.fail_after(20):
            grant = await loop.run()

    assert grant is not None
    assert seen[0][0] == "transient"
    assert seen[1][0] == "token"
    assert len(seen) == 2 and len(vendor.requests) == 2
    sent = [r.headers["Authorization"].removeprefix("Bearer ") for r in vendor.requests]
    assert sent[0] != sent[1] and sent[1] == token_dir.tokens[-1]
    deadline = time.monotonic() + 10
    while _watch_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _watch_threads() == []  # the watch ended by itself after run() returned
