"""Token faults: clear error, slow backoff (no crash loop), recovery without restart.

The token directory is written the way kubelet writes it (``..data`` swap, see
``conftest.TokenDir``). In the in-process tests a backoff never ends by itself
(``park_backoff``): the only thing that can wake the loop is its watchfiles watch
on the token directory, so a passing test proves the sidecar recovers *because the
file was fixed*, not because a timer happened to fire. Nothing is ever sent to the
vending service with a bad token, and the last good set stays published throughout.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cli_process import log_events, shared_tmp_dir, start_cli, unprivileged_ids, wait_until
from conftest import TokenDir, make_jwt
from fault_matrix import TOKEN_FAULTS, fix_token
from loop_driver import LoopDriver, capture_logs
from published import check_set, snapshot
from sidecar.publish import Publisher
from vendor_double import VendorDouble, error, grant, when_token

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(("name", "breaks", "says"), TOKEN_FAULTS, ids=[f[0] for f in TOKEN_FAULTS])
async def test_token_fault_recovers_when_the_file_is_fixed(
    name: str, breaks: Callable[[TokenDir], None], says: str, tmp_path: Path, token_dir: TokenDir, vendor: VendorDouble
) -> None:
    out = tmp_path / "out"
    driver = LoopDriver(
        token_file=token_dir.path, out=out, vendor_url=vendor.url, watch=True, park_backoff=True
    )
    good: dict[str, bytes] = {}
    intact: list[bool] = []

    async def on_refresh_wait(published: int) -> None:
        await driver.wait_for_watch(token_dir.root)
        good.update(snapshot(out))
        breaks(token_dir)

    def on_backoff(failures: int) -> None:
        intact.append(snapshot(out) == good)
        if failures == 1:
            fix_token(token_dir)  # the parked backoff must now be woken by the watch

    driver.on_refresh_wait = on_refresh_wait
    driver.on_backoff = on_backoff
    with capture_logs("json") as buffer:
        await driver.run(publishes=2)

    assert len(driver.recorder.grants) == 2
    assert driver.failures, "the fault was never seen"
    for cls, message in driver.failures:
        assert cls == "token"
        assert says in (message or ""), message
        assert "\n" not in (message or "")
    assert all(intact) and intact
    for n, wait in enumerate(driver.backoffs, start=1):  # slow equal jitter: no hammering
        window = min(300.0, 5.0 * 2 ** (n - 1))
        assert window / 2 <= wait <= window
    # Only good tokens ever reached the vending service.
    assert [r.headers["Authorization"] for r in vendor.requests] == [
        f"Bearer {token_dir.tokens[0]}",
        f"Bearer {token_dir.tokens[-1]}",
    ]
    check_set(out)
    failures = [json.loads(line) for line in buffer.getvalue().splitlines() if '"vend.failure"' in line]
    assert failures and failures[0]["level"] == "warning" and failures[0]["class"] == "token"


async def test_token_for_another_audience_is_refused_before_any_request(
    tmp_path: Path, token_dir: TokenDir, vendor: VendorDouble
) -> None:
    token_dir.write(make_jwt(aud=["someone-else"]))
    driver = LoopDriver(
        token_file=token_dir.path,
        out=tmp_path / "out",
        vendor_url=vendor.url,
        audience="vend.platform",
    )
    driver.on_backoff = lambda failures: token_dir.write(make_jwt(aud=["vend.platform"]))
    await driver.run(publishes=1)
    assert driver.failures[0][0] == "token"
    assert "--audience is 'vend.platform'" in (driver.failures[0][1] or "")
    assert [r.headers["Authorization"] for r in vendor.requests] == [f"Bearer {token_dir.tokens[-1]}"]


async def test_rotation_mid_run_after_401_recovers_without_restart(
    tmp_path: Path, token_dir: TokenDir, vendor: VendorDouble
) -> None:
    """The service starts rejecting the current token (401); kubelet rotates it by a
    ``..data`` swap; the watch wakes the slow auth backoff and the new token works."""
    out = tmp_path / "out"
    rotated = make_jwt(jti="rotated")
    driver = LoopDriver(token_file=token_dir.path, out=out, vendor_url=vendor.url, watch=True, park_backoff=True)
    good: dict[str, bytes] = {}
    intact: list[bool] = []

    async def on_refresh_wait(published: int) -> None:
        await driver.wait_for_watch(token_dir.root)
        good.update(snapshot(out))
        vendor.script(when_token(rotated, then=grant(), otherwise=error(401, "invalid_token")))

    def on_backoff(failures: int) -> None:
        intact.append(snapshot(out) == good)
        if failures == 1:
            token_dir.write(rotated)  # kubelet-style ..data swap

    driver.on_refresh_wait = on_refresh_wait
    driver.on_backoff = on_backoff
    with capture_logs("json") as buffer:
        await driver.run(publishes=2)

    assert [cls for cls, _ in driver.failures] == ["auth"]
    assert intact == [True]
    sent = [r.headers["Authorization"].removeprefix("Bearer ") for r in vendor.requests]
    assert sent == [token_dir.tokens[0], token_dir.tokens[0], rotated]
    events = [json.loads(line)["event"] for line in buffer.getvalue().splitlines()]
    assert "token.rotated" in events
    check_set(out)
    assert snapshot(out)["access_key_id"].decode() == driver.recorder.grants[-1].credentials.access_key_id


# -- permissions, for real: a process that permission bits actually stop --------------


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    with shared_tmp_dir() as path:
        yield path


def test_unreadable_token_file_is_reported_and_recovered(shared_tmp: Path, vendor: VendorDouble) -> None:
    uid, gid = unprivileged_ids()
    tokens = TokenDir(shared_tmp / "tokens")
    # kubelet-style, but mode 0000 (and its generation directory 0700): unreadable by uid.
    Publisher(tokens.root, file_mode=0o000).publish({tokens.name: make_jwt().encode() + b"\n"})
    out = shared_tmp / "out"
    out.mkdir()
    os.chown(out, uid, gid)
    log = shared_tmp / "sidecar.log"
    proc = start_cli(
        ["--out", str(out), "--vendor-url", vendor.url, "--token-file", str(tokens.path), "--bucket", "artifacts"],
        log,
        unprivileged=True,
    )
    try:
        wait_until(lambda: any(e.get("event") == "vend.failure" for e in log_events(log)), proc, log)
        [failure] = [e for e in log_events(log) if e.get("event") == "vend.failure"][:1]
        assert failure["class"] == "token"
        assert f"is not readable by uid {uid}" in str(failure["message"]), failure
        assert vendor.requests == []  # nothing sent without a token
        assert check_set(out) is None

        tokens.write(make_jwt())  # fixed: a readable token, by ..data swap
        wait_until(lambda: check_set(out) is not None, proc, log)
        assert [r.headers["Authorization"] for r in vendor.requests] == [f"Bearer {tokens.tokens[-1]}"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        proc.kill()
        proc.wait(10)
