"""Disk faults: the old set stays intact, the error is clear, the sidecar retries.

* write errors (ENOSPC, EDQUOT, EROFS, EIO) injected at each pre-commit publish step
  of the real loop, and a *real* write failure in the real CLI: ``RLIMIT_FSIZE``
  lowered on the running process (``prlimit``) makes ``write(2)`` fail with EFBIG;
* OUT not writable, for real: the CLI runs unprivileged (``unprivileged.py``) and
  OUT is made read-only under it, then writable again;
* OUT, ``..data``, a visible entry or a generation replaced by a symlink pointing
  elsewhere: refused with a clear error, never written through;
* a crash's debris (stale ``..data_tmp``, half-written generation): removed at start.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cli_process import log_events, shared_tmp_dir, start_cli, unprivileged_ids, wait_until
from conftest import TokenDir, make_jwt
from loop_driver import LoopDriver
from published import check_set, credential_set, debris, files_under, snapshot
from sidecar.consumer import read_credentials
from sidecar.publish import Publisher
from vendor_double import VendorDouble

pytestmark = pytest.mark.anyio


def _fail_once(step: str, code: int) -> Callable[[str], None]:
    fired: list[str] = []

    def on_step(name: str) -> None:
        if name == step and not fired:
            fired.append(name)
            raise OSError(code, os.strerror(code))

    return on_step


WRITE_ERRORS = [
    ("mkdir", errno.ENOSPC, "no space left on device"),
    ("write", errno.ENOSPC, "no space left on device"),
    ("write", errno.EDQUOT, "disk quota exceeded"),
    ("write", errno.EIO, "Input/output error"),
    ("link_tmp", errno.EROFS, "read-only file system"),
]


@pytest.mark.parametrize(("step", "code", "says"), WRITE_ERRORS, ids=[f"{s}-{errno.errorcode[c]}" for s, c, _ in WRITE_ERRORS])
async def test_write_error_keeps_old_set_and_retries(
    step: str, code: int, says: str, tmp_path: Path, token_dir: TokenDir, vendor: VendorDouble
) -> None:
    out = tmp_path / "out"
    armed: list[bool] = []

    def on_step(name: str) -> None:
        if armed:
            inject(name)

    inject = _fail_once(step, code)
    driver = LoopDriver(token_file=token_dir.path, out=out, vendor_url=vendor.url, on_step=on_step)
    good: dict[str, bytes] = {}
    seen: list[tuple[bool, set[str]]] = []

    def on_refresh_wait(published: int) -> None:
        good.update(snapshot(out))
        armed.append(True)

    driver.on_refresh_wait = on_refresh_wait
    driver.on_backoff = lambda failures: seen.append((snapshot(out) == good, debris(out)))
    await driver.run(publishes=2)

    [(cls, message)] = driver.failures
    assert cls == "publish" and says in (message or "")
    assert seen == [(True, set())]  # old set live and byte-identical, no half-made generation
    [wait] = driver.backoffs
    assert 0 <= wait <= 1.0  # transient: the disk may free up any moment
    # The answer whose publication failed is gone: the retry vended afresh.
    assert len(vendor.requests) == 3 and len(driver.recorder.grants) == 2
    lost = vendor.issued[1]["secret_access_key"]
    assert str(lost).encode() not in b"".join(files_under(out).values())
    check_set(out)
    assert debris(out) == set()


def test_real_write_failure_efbig_in_the_running_cli(tmp_path: Path, token_dir: TokenDir) -> None:
    """RLIMIT_FSIZE on the live process: write(2) really fails (EFBIG); Python ignores
    SIGXFSZ, so the sidecar sees the error, keeps the old set, and recovers when the
    limit is lifted."""
    out, log = tmp_path / "out", tmp_path / "sidecar.log"
    with VendorDouble(lifetime=3.0) as vendor:
        proc = start_cli(
            ["--out", str(out), "--vendor-url", vendor.url, "--token-file", str(token_dir.path), "--bucket", "artifacts"],
            log,
        )
        try:
            wait_until(lambda: check_set(out) is not None, proc, log)
            good = snapshot(out)
            resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (16, resource.RLIM_INFINITY))  # soft limit only
            wait_until(lambda: any(e.get("class") == "publish" for e in log_events(log)), proc, log)
            failure = next(e for e in log_events(log) if e.get("class") == "publish")
            assert "File too large" in str(failure["message"]), failure
            assert snapshot(out) == good and debris(out) == set()

            resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            wait_until(lambda: snapshot(out)[".." + "data"] != good["..data"], proc, log)
            check_set(out)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        finally:
            proc.kill()
            proc.wait(10)
    assert debris(out) == set()


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    with shared_tmp_dir() as path:
        yield path


def test_out_dir_not_writable_for_real(shared_tmp: Path) -> None:
    """The CLI runs unprivileged (nobody under root); OUT turns read-only under it."""
    uid, gid = unprivileged_ids()
    tokens = TokenDir(shared_tmp / "tokens")
    tokens.write(make_jwt())
    out, log = shared_tmp / "out", shared_tmp / "sidecar.log"
    out.mkdir()
    os.chown(out, uid, gid)
    with VendorDouble(lifetime=3.0) as vendor:
        proc = start_cli(
            ["--out", str(out), "--vendor-url", vendor.url, "--token-file", str(tokens.path), "--bucket", "artifacts"],
            log,
            unprivileged=True,
        )
        try:
            wait_until(lambda: check_set(out) is not None, proc, log)
            good = snapshot(out)
            out.chmod(0o555)
            wait_until(lambda: any(e.get("class") == "publish" for e in log_events(log)), proc, log)
            failure = next(e for e in log_events(log) if e.get("class") == "publish")
            assert f"permission denied (uid {uid})" in str(failure["message"]), failure
            assert snapshot(out) == good and debris(out) == set()
            assert read_credentials(out).access_key_id == good["access_key_id"].decode()

            out.chmod(0o755)
            wait_until(lambda: snapshot(out)["..data"] != good["..data"], proc, log)
            check_set(out)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        finally:
            out.chmod(0o755)
            proc.kill()
            proc.wait(10)
    assert debris(out) == set()


# -- symlinks planted by someone else --------------------------------------------------


def _plant_out_link(out: Path, victim: Path) -> Callable[[], None]:
    moved = out.with_name("out.moved")
    out.rename(moved)
    out.symlink_to(victim, target_is_directory=True)

    def restore() -> None:
        out.unlink()
        moved.rename(out)

    return restore


def _plant_entry_link(out: Path, victim: Path) -> Callable[[], None]:
    (out / "secret_access_key").unlink()
    (out / "secret_access_key").symlink_to(victim / "file")

    def restore() -> None:
        (out / "secret_access_key").unlink()
        (out / "secret_access_key").symlink_to("..data/secret_access_key")

    return restore


def _plant_data_link(out: Path, victim: Path) -> Callable[[], None]:
    live = os.readlink(out / "..data")
    (out / "..data").unlink()
    (out / "..data").symlink_to(victim, target_is_directory=True)

    def restore() -> None:
        (out / "..data").unlink()
        (out / "..data").symlink_to(live)

    return restore


def _plant_regular_file(out: Path, victim: Path) -> Callable[[], None]:
    (out / "access_key_id").unlink()
    (out / "access_key_id").write_text("someone else's file")

    def restore() -> None:
        (out / "access_key_id").unlink()
        (out / "access_key_id").symlink_to("..data/access_key_id")

    return restore


PLANTS = [
    ("out-is-a-symlink", _plant_out_link, "is a symlink; refusing to write through it"),
    ("entry-is-a-foreign-symlink", _plant_entry_link, "is not vend-sidecar's link"),
    ("data-link-points-elsewhere", _plant_data_link, "not a vend-sidecar generation"),
    ("entry-is-a-regular-file", _plant_regular_file, "is not vend-sidecar's link"),
]


@pytest.mark.parametrize(("name", "plant", "says"), PLANTS, ids=[p[0] for p in PLANTS])
async def test_planted_symlink_is_refused_and_never_written_through(
    name: str, plant: Callable[[Path, Path], Callable[[], None]], says: str, tmp_path: Path, token_dir: TokenDir, vendor: VendorDouble
) -> None:
    out = tmp_path / "out"
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "file").write_text("victim content")
    driver = LoopDriver(token_file=token_dir.path, out=out, vendor_url=vendor.url)
    restore: list[Callable[[], None]] = []
    good: dict[str, bytes] = {}

    def on_refresh_wait(published: int) -> None:
        good.update(snapshot(out))
        restore.append(plant(out, victim))

    def on_backoff(failures: int) -> None:
        assert sorted(os.listdir(victim)) == ["file"]
        assert (victim / "file").read_text() == "victim content"
        if failures == 2:
            restore[0]()  # the operator fixes it; the next retry must succeed

    driver.on_refresh_wait = on_refresh_wait
    driver.on_backoff = on_backoff
    await driver.run(publishes=2)

    assert [cls for cls, _ in driver.failures] == ["publish", "publish"]
    assert all(says in (message or "") for _, message in driver.failures), driver.failures
    assert all("\n" not in (message or "") for _, message in driver.failures)
    assert sorted(os.listdir(victim)) == ["file"] and (victim / "file").read_text() == "victim content"
    check_set(out)
    assert debris(out) == set()
    assert snapshot(out)["..data"] != good["..data"]


async def test_generation_replaced_by_symlink_is_not_followed(tmp_path: Path, token_dir: TokenDir, vendor: VendorDouble) -> None:
    """The live generation directory swapped for a link elsewhere: the next publish
    writes a fresh generation, and neither reads nor deletes through the link."""
    out, victim = tmp_path / "out", tmp_path / "victim"
    victim.mkdir()
    (victim / "access_key_id").write_text("victim")
    driver = LoopDriver(token_file=token_dir.path, out=out, vendor_url=vendor.url)
    planted: list[str] = []

    def on_refresh_wait(published: int) -> None:
        live = os.readlink(out / "..data")
        os.rename(out / live, tmp_path / "stolen")
        os.symlink(victim, out / live)
        planted.append(live)

    driver.on_refresh_wait = on_refresh_wait
    await driver.run(publishes=2)
    assert driver.failures == []
    assert os.listdir(victim) == ["access_key_id"] and (victim / "access_key_id").read_text() == "victim"
    check_set(out)
    assert os.readlink(out / "..data") != planted[0]
    # prepare() never removes what it did not make, and a link is not a generation dir.
    Publisher(out).prepare()
    assert (out / planted[0]).is_symlink() and os.listdir(victim) == ["access_key_id"]


def test_cli_refuses_a_symlinked_out_at_start(tmp_path: Path, token_dir: TokenDir) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    out = tmp_path / "out"
    out.symlink_to(victim, target_is_directory=True)
    log = tmp_path / "sidecar.log"
    proc = start_cli(
        ["--out", str(out), "--vendor-url", "http://127.0.0.1:9", "--token-file", str(token_dir.path), "--bucket", "artifacts"],
        log,
    )
    assert proc.wait(30) == 2
    [line] = [e for e in log_events(log) if e.get("level") == "error"]
    assert "is a symlink; refusing to write through it" in str(line["reason"])
    assert os.listdir(victim) == []
    assert "Traceback" not in log.read_text()


# -- a crash's debris ---------------------------------------------------------------------


async def test_stale_tmp_link_and_half_written_generation_are_cleaned_at_start(
    tmp_path: Path, token_dir: TokenDir, vendor: VendorDouble
) -> None:
    out = tmp_path / "out"
    Publisher(out).prepare()
    Publisher(out).publish(credential_set("ASIAOLD0000000000001"))
    old = snapshot(out)
    half = "..2020_01_01_00_00_00.deadbeef"
    (out / half).mkdir()
    (out / half / "access_key_id").write_text("ASIAHALF000000000009")
    (out / half / "secret_access_key").write_bytes(b"")  # the crash hit mid-write
    os.symlink(half, out / "..data_tmp")
    victim = tmp_path / "victim"
    victim.mkdir()
    os.symlink(victim, out / "..2020_01_01_00_00_01.0badf00d")  # a link is never ours to delete
    # Readers are unaffected by the debris: ..data still names the complete old set.
    assert read_credentials(out).access_key_id == "ASIAOLD0000000000001"
    assert snapshot(out) == old

    driver = LoopDriver(token_file=token_dir.path, out=out, vendor_url=vendor.url)
    await driver.run(publishes=1)
    assert not (out / half).exists() and not (out / "..data_tmp").exists()
    assert debris(out) == {"..2020_01_01_00_00_01.0badf00d"}
    assert victim.is_dir()
    check_set(out)
