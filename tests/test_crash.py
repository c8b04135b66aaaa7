"""Crash safety of the publish algorithm and of the running sidecar.

Three levels, from exact to realistic:

1. an exception after every publish step k (``Publisher.on_step``): OUT holds the
   complete old set before the commit point and the complete new set from it on;
   ``prepare()`` removes whatever was left;
2. a hard ``os._exit`` after every step k and after every ``write(2)`` of a
   generation, in a child process, so no ``finally`` and no cleanup runs: the same
   old-or-new guarantee, and the next ``prepare()`` cleans up;
3. the real CLI with 2-second leases, ``kill -9``-ed at seeded random moments and
   restarted, at least 25 times: never an inconsistent set or a dangling link, and
   no leftovers after a final clean run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TokenDir
from published import STEPS, check_set, credential_set, debris, snapshot
from sidecar.publish import Publisher
from sidecar.render import FILE_NAMES
from vendor_double import VendorDouble

COMMITTED_FROM = STEPS.index("rename")
HERE = Path(__file__).parent


class Crash(Exception):
    pass


def _crash_after(target: str):
    def on_step(step: str) -> None:
        if step == target:
            raise Crash(step)

    return on_step


def _live_key(out: Path) -> str | None:
    """The access key of the set ``..data`` points at (after checking the whole set)."""
    if check_set(out) is None:
        return None
    return snapshot(out)["access_key_id"].decode()


def _all_visible(out: Path) -> bool:
    return all((out / name).is_symlink() for name in FILE_NAMES)


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("with_old_set", [True, False], ids=["over-old-set", "first-set"])
def test_exception_after_each_step_leaves_old_or_new_set(step: str, with_old_set: bool, tmp_path: Path) -> None:
    out = tmp_path / "out"
    Publisher(out).prepare()
    if with_old_set:
        Publisher(out).publish(credential_set("ASIAOLD0000000000001"))
    before = snapshot(out) if with_old_set else None

    with pytest.raises(Crash):
        Publisher(out, on_step=_crash_after(step)).publish(credential_set("ASIANEW0000000000002"))

    committed = STEPS.index(step) >= COMMITTED_FROM
    expected = "ASIANEW0000000000002" if committed else ("ASIAOLD0000000000001" if with_old_set else None)
    assert _live_key(out) == expected
    if not committed:
        # Before the commit point the failed publish cleaned up after itself.
        assert debris(out) == set()
        if before is not None:
            assert snapshot(out) == before

    Publisher(out).prepare()
    assert debris(out) == set()
    assert _live_key(out) == expected
    assert _all_visible(out) == (expected is not None)  # prepare() restores missing links
    Publisher(out).publish(credential_set("ASIANEXT000000000003"))
    assert _live_key(out) == "ASIANEXT000000000003"
    assert debris(out) == set()


HARD_CRASHES = [f"step:{s}" for s in STEPS] + [f"write:{n}" for n in range(len(FILE_NAMES))]


@pytest.mark.parametrize("where", HARD_CRASHES)
@pytest.mark.parametrize("with_old_set", [True, False], ids=["over-old-set", "first-set"])
def test_hard_exit_mid_publish_then_prepare_cleans_up(where: str, with_old_set: bool, tmp_path: Path) -> None:
    out = tmp_path / "out"
    Publisher(out).prepare()
    if with_old_set:
        Publisher(out).publish(credential_set("ASIAOLD0000000000001"))
    result = subprocess.run(
        [sys.executable, str(HERE / "crash_publish.py"), str(out), "ASIANEW0000000000002", where],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 86, result.stderr  # it really died at that point

    live = _live_key(out)
    step = where.partition(":")[2]
    if where.startswith("step:") and STEPS.index(step) >= COMMITTED_FROM:
        assert live == "ASIANEW0000000000002"
    else:
        assert live == ("ASIAOLD0000000000001" if with_old_set else None)
        if where != "step:validate" and where != "step:compare":
            assert debris(out), "the crash should have left a half-made generation behind"

    Publisher(out).prepare()
    assert debris(out) == set()
    assert _live_key(out) == live and _all_visible(out) == (live is not None)
    Publisher(out).publish(credential_set("ASIANEXT000000000003"))
    assert _live_key(out) == "ASIANEXT000000000003"
    assert debris(out) == set()


# -- the real CLI under kill -9 ----------------------------------------------------------

KILLS = 26


def _sidecar(out: Path, token_file: Path, vendor: VendorDouble, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "sidecar", "run",
            "--out", str(out),
            "--vendor-url", vendor.url,
            "--token-file", str(token_file),
            "--bucket", "artifacts",
            "--ttl", "2",
            "--log-format", "json",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _generation(out: Path) -> str | None:
    try:
        return os.readlink(out / "..data")
    except OSError:
        return None


def _wait_for(predicate, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc is None or proc.poll() is None, f"sidecar exited with {proc.returncode}"
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def _kill_when_publishing(out: Path, proc: subprocess.Popen[bytes], timeout: float) -> str:
    """Spin on OUT and SIGKILL the moment a publish is visibly under way."""
    known = set(os.listdir(out)) if out.exists() else set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            entries = set(os.listdir(out))
        except FileNotFoundError:
            continue
        fresh = {e for e in entries - known if e.startswith("..")}
        if fresh:
            proc.kill()
            return "mid-publish:" + ",".join(sorted(fresh))
    proc.kill()
    return "timeout"


@pytest.mark.slow
def test_kill_9_at_random_moments_never_leaves_an_inconsistent_set(tmp_path: Path, token_dir: TokenDir) -> None:
    rng = random.Random(20261203)
    out = tmp_path / "out"
    log = tmp_path / "sidecar.log"
    moments: list[str] = []
    with VendorDouble(lifetime=2.0) as vendor:
        for _ in range(KILLS):
            proc = _sidecar(out, token_dir.path, vendor, log)
            try:
                if rng.random() < 0.5:
                    delay = rng.uniform(0.0, 2.5)
                    time.sleep(delay)  # a random moment, not a wait for a condition
                    proc.kill()
                    moments.append(f"after {delay:.2f}s")
                else:
                    moments.append(_kill_when_publishing(out, proc, timeout=15))
            finally:
                proc.kill()
                proc.wait(10)
            assert proc.returncode == -signal.SIGKILL or proc.returncode is not None
            # Whatever moment it died at: nothing, or one complete self-consistent set,
            # and no visible link pointing nowhere.
            check_set(out)

        # A clean run after all that: it cleans up at start, publishes twice, stops on
        # SIGTERM with exit 0 and leaves exactly ..data, one generation and the links.
        proc = _sidecar(out, token_dir.path, vendor, log)
        try:
            first = _generation(out)
            _wait_for(lambda: _generation(out) not in (None, first), 20, proc)
            second = _generation(out)
            _wait_for(lambda: _generation(out) != second, 20, proc)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        finally:
            proc.kill()
            proc.wait(10)
        assert check_set(out) is not None
        assert debris(out) == set()
        secrets = vendor.secrets()
    text = log.read_text()
    assert all(secret not in text for secret in secrets)
    assert token_dir.tokens[-1] not in text
    mid = [m for m in moments if m.startswith("mid-publish")]
    print(f"\n{len(moments)} kills; {len(mid)} while a publish was visibly under way: {moments}")
    assert len(moments) >= 25
