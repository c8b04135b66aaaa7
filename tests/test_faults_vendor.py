"""Vendor faults against the real refresh loop and a real loopback server.

For every fault of issue #3: nothing from the bad answer is published, the last good
set stays live and byte-identical until the next good answer, the loop keeps
running and recovers, one warning line says what happened, and the backoff has the
right class (transient full jitter, slow equal jitter, or ``Retry-After``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import TokenDir
from fault_matrix import VENDOR_FAULTS, VendorFault, run_vendor_fault
from loop_driver import LoopDriver, capture_logs
from published import check_set, debris, files_under
from vendor_double import VendorDouble, error

pytestmark = pytest.mark.anyio


def _events(log: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.splitlines() if line.strip()]


@pytest.mark.parametrize("fault", VENDOR_FAULTS, ids=[f.name for f in VENDOR_FAULTS])
async def test_fault_keeps_last_good_set_and_recovers(fault: VendorFault, tmp_path: Path, token_dir: TokenDir) -> None:
    with capture_logs("json") as buffer:
        run = await run_vendor_fault(fault, tmp=tmp_path, token_file=token_dir.path)
    driver = run.driver
    out = driver.publisher.root

    # Exactly one failure, of the contract's class, then recovery.
    assert [cls for cls, _ in driver.failures] == [fault.cls]
    assert len(driver.recorder.grants) == 2
    assert driver.loop is not None and driver.loop.status.consecutive_failures == 0
    # The last good set was live and byte-identical while the loop backed off.
    assert run.intact_at_backoff == [True]

    # Nothing from the bad answer reached the disk; the final set is the good one.
    assert check_set(out) is not None
    assert debris(out) == set()
    final = json.loads((out / "credentials.json").read_bytes())
    assert final["AccessKeyId"] == run.published_keys[-1]
    on_disk = b"".join(files_under(out).values())
    for value in run.bad_values():
        assert value.encode() not in on_disk

    # The backoff class: full jitter <= 1 s, equal jitter in [2.5, 5] s, or Retry-After.
    [wait] = driver.backoffs
    if fault.wait == "transient":
        assert 0.0 <= wait <= 1.0
    elif fault.wait == "slow":
        assert 2.5 <= wait <= 5.0
    else:
        assert wait == fault.wait

    # One warning line says what happened (and no secret; see test_no_secrets.py).
    warnings = [e for e in _events(buffer.getvalue()) if e["level"] in ("warning", "error") and "logger" not in e]
    assert len(warnings) == 1, "\n".join(json.dumps(w) for w in warnings)
    [line] = warnings
    assert line["event"] == "vend.failure" and line["class"] == fault.cls
    assert fault.says in str(line["message"]), line
    assert line.get("request_id")

    # The redirect was not followed: the other server never saw a request, let
    # alone the bearer token.
    assert run.elsewhere.requests == []
    requests = run.double.requests
    assert len(requests) == (2 if fault.tls else 3)  # a failed handshake never becomes a request
    assert all(r.headers["Authorization"] == f"Bearer {token_dir.tokens[-1]}" for r in requests)


async def test_transient_backoff_grows_with_full_jitter(tmp_path: Path, token_dir: TokenDir, vendor: VendorDouble) -> None:
    vendor.script(*[error(500, "internal_error")] * 6)
    driver = LoopDriver(token_file=token_dir.path, out=tmp_path / "out", vendor_url=vendor.url, seed=7)
    await driver.run(publishes=1)
    waits = driver.backoffs
    assert len(waits) == 6
    for n, wait in enumerate(waits, start=1):
        assert 0.0 <= wait <= min(60.0, 2.0 ** (n - 1))
    assert max(waits) > 1.0  # the window really grew (seeded, so not luck)


async def test_slow_backoff_is_equal_jitter_capped_at_five_minutes(tmp_path: Path, token_dir: TokenDir, vendor: VendorDouble) -> None:
    vendor.script(*[error(401, "invalid_token")] * 9)
    driver = LoopDriver(token_file=token_dir.path, out=tmp_path / "out", vendor_url=vendor.url, seed=3)
    await driver.run(publishes=1)
    waits = driver.backoffs
    assert len(waits) == 9
    for n, wait in enumerate(waits, start=1):
        window = min(300.0, 5.0 * 2 ** (n - 1))
        assert window / 2 <= wait <= window
    assert max(waits) > 150.0  # reached the cap's range


async def test_retry_after_raises_the_wait_but_is_capped(tmp_path: Path, token_dir: TokenDir, vendor: VendorDouble) -> None:
    vendor.script(
        error(429, "rate_limited", retry_after="86400"),  # a buggy header must not park the sidecar for a day
        error(503, "backend_unavailable", retry_after="Wed, 21 Oct 2015 07:28:00 GMT"),  # a date in the past
    )
    driver = LoopDriver(token_file=token_dir.path, out=tmp_path / "out", vendor_url=vendor.url)
    await driver.run(publishes=1)
    first, second = driver.backoffs
    assert first == 600.0
    assert 0.0 <= second <= 2.0


async def test_repeated_refusal_is_logged_once(tmp_path: Path, token_dir: TokenDir, vendor: VendorDouble) -> None:
    vendor.script(*[error(403, "denied", "prefix_not_allowed", decision_id="dec-same")] * 3, error(403, "denied", "tenant_mismatch"))
    with capture_logs("json") as buffer:
        driver = LoopDriver(token_file=token_dir.path, out=tmp_path / "out", vendor_url=vendor.url)
        await driver.run(publishes=1)
    warnings = [e for e in _events(buffer.getvalue()) if e["level"] == "warning" and "logger" not in e]
    assert [(w["event"], w["reason"]) for w in warnings] == [
        ("vend.failure", "prefix_not_allowed"),
        ("vend.failure", "tenant_mismatch"),
    ]
    assert warnings[0]["decision_id"] == "dec-same" and warnings[0]["status"] == 403
    assert len(driver.backoffs) == 4
