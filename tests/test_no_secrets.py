"""No secret ever reaches a log line or an exception's text.

One test per log format (text and JSON) runs the whole fault matrix at debug level
with ``sidecar.logs`` writing into a buffer: every vendor fault, every token fault,
disk write errors and planted symlinks, through the real loop. Then it asserts that
no secret access key, session token (every value the doubles issued, including the
ones in bad answers) or identity token (every JWT written, and its signature part)
appears anywhere in the log, nor in ``str()`` / ``repr()`` of any exception raised,
following ``__cause__`` / ``__context__`` chains. A subprocess run of the CLI
checks the same for its stderr, with a refused ``--once``.
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TokenDir, make_jwt
from fault_matrix import TOKEN_FAULTS, VENDOR_FAULTS, fix_token, run_vendor_fault
from loop_driver import LoopDriver, capture_logs
from vendor_double import VendorDouble, error, grant

pytestmark = pytest.mark.anyio


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
        todo += list(getattr(current, "exceptions", ()))
    return seen


def _needles(secrets: list[str]) -> list[str]:
    """What to search for: each secret, its JSON-escaped form, and every piece of it
    between white space or control characters (a log may escape or split those)."""
    out: set[str] = set()
    for secret in secrets:
        out |= {secret, json.dumps(secret)[1:-1]}
        out |= {piece for piece in re.split(r"[\s\x00-\x1f\x7f-\x9f]+", secret) if len(piece) >= 12}
    return sorted(s for s in out if len(s) >= 12)


def _token_secrets(tokens: list[str]) -> list[str]:
    out: list[str] = []
    for token in tokens:
        token = token.strip()
        if len(token) >= 16:
            out.append(token)
        if token.count(".") == 2 and len(token.rsplit(".", 1)[1]) >= 16:
            out.append(token.rsplit(".", 1)[1])  # the signature part alone
    return out


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_whole_fault_matrix_leaks_no_secret(fmt: str, tmp_path: Path, token_dir: TokenDir) -> None:
    secrets: list[str] = []
    errors: list[BaseException] = []
    drivers: list[LoopDriver] = []
    with capture_logs(fmt) as buffer:
        # Every vendor fault (each with its own doubles).
        for fault in VENDOR_FAULTS:
            run = await run_vendor_fault(fault, tmp=tmp_path / "vendor", token_file=token_dir.path)
            secrets += run.double.secrets() + run.elsewhere.secrets()
            drivers.append(run.driver)

        with VendorDouble() as vendor:
            # Every token fault: good set, break, retry, fix, recover.
            for name, breaks, _says in TOKEN_FAULTS:
                driver = LoopDriver(token_file=token_dir.path, out=tmp_path / f"token-{name}", vendor_url=vendor.url)
                driver.on_refresh_wait = lambda published, breaks=breaks: breaks(token_dir)
                driver.on_backoff = lambda failures: fix_token(token_dir)
                await driver.run(publishes=2)
                drivers.append(driver)

            # A 401 with the token in a hostile error body, and a bad answer that
            # echoes a secret-looking value in an unknown field.
            vendor.script(error(401, "invalid_token"), grant(session_token=None, echo=token_dir.tokens[-1]))
            driver = LoopDriver(token_file=token_dir.path, out=tmp_path / "echo", vendor_url=vendor.url)
            await driver.run(publishes=1)
            drivers.append(driver)

            # Disk: ENOSPC at write, then OUT swapped for a symlink.
            fired: list[str] = []

            def enospc(step: str) -> None:
                if step == "write" and len(fired) == 1:
                    fired.append(step)
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                if step == "cleanup" and not fired:
                    fired.append(step)

            driver = LoopDriver(token_file=token_dir.path, out=tmp_path / "disk", vendor_url=vendor.url, on_step=enospc)
            await driver.run(publishes=2)
            drivers.append(driver)

            out = tmp_path / "planted"
            victim = tmp_path / "victim"
            victim.mkdir()
            driver = LoopDriver(token_file=token_dir.path, out=out, vendor_url=vendor.url)

            def plant(published: int) -> None:
                out.rename(tmp_path / "planted.moved")
                out.symlink_to(victim, target_is_directory=True)

            def unplant(failures: int) -> None:
                out.unlink()
                (tmp_path / "planted.moved").rename(out)

            driver.on_refresh_wait = plant
            driver.on_backoff = unplant
            await driver.run(publishes=2)
            drivers.append(driver)
            secrets += vendor.secrets()

    for driver in drivers:
        errors += driver.recorder.errors
    log = buffer.getvalue()
    secrets += _token_secrets(token_dir.tokens)
    secrets = _needles([s for s in set(secrets) if len(s) >= 16])

    # The capture is real: it saw every kind of event, and plenty of them.
    for name in ("vend.success", "vend.failure", "publish", "token.loaded"):
        assert name in log
    assert log.count("vend.failure") >= len(VENDOR_FAULTS) + len(TOKEN_FAULTS) + 3
    assert len(errors) >= len(VENDOR_FAULTS) + len(TOKEN_FAULTS) + 3
    assert len(secrets) > 2 * len(VENDOR_FAULTS)

    leaked_in_log = [s[:6] + "..." for s in secrets if s in log]
    assert leaked_in_log == [], f"secrets in the {fmt} log"
    for exc in errors:
        for link in _chain(exc):
            text = str(link) + repr(link)
            leaked = [s[:6] + "..." for s in secrets if s in text]
            assert leaked == [], f"secret in {type(link).__name__}: {text[:200]}"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_cli_stderr_leaks_no_secret(fmt: str, tmp_path: Path, token_dir: TokenDir) -> None:
    """The real CLI, ``--once``: a refused attempt (exit 3) and a successful one."""
    with VendorDouble() as vendor:
        vendor.script(error(403, "denied", "prefix_not_allowed"))
        base = [
            sys.executable, "-m", "sidecar", "--once",
            "--out", str(tmp_path / "out"),
            "--vendor-url", vendor.url,
            "--token-file", str(token_dir.path),
            "--bucket", "artifacts",
            "--log-format", fmt,
            "--log-level", "debug",
        ]
        refused = subprocess.run(base, capture_output=True, text=True, timeout=60)
        token_dir.write(make_jwt())
        granted = subprocess.run(base, capture_output=True, text=True, timeout=60)
        secrets = _needles(vendor.secrets() + _token_secrets(token_dir.tokens))
    assert refused.returncode == 3 and granted.returncode == 0, refused.stderr + granted.stderr
    output = refused.stderr + refused.stdout + granted.stderr + granted.stdout
    assert "prefix_not_allowed" in output and "vend.success" in output
    assert [s[:6] for s in secrets if s in output] == []
