"""Run the real CLI as a subprocess and watch it: start, poll its JSON log, wait.

Waiting is always polling a condition with a generous bound, never a fixed sleep.
``start_cli(unprivileged=True)`` runs it through ``unprivileged.py`` so that
permission bits really apply (the suite may run as root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = ["log_events", "shared_tmp_dir", "start_cli", "unprivileged_ids", "wait_until"]

HERE = Path(__file__).parent


def unprivileged_ids() -> tuple[int, int]:
    """nobody when the suite runs as root; otherwise the current user, for whom
    permission bits already apply."""
    return (65534, 65534) if os.geteuid() == 0 else (os.getuid(), os.getgid())


@contextmanager
def shared_tmp_dir() -> Iterator[Path]:
    """A directory an unprivileged user can enter (pytest's tmp_path is owner-only)."""
    path = Path(tempfile.mkdtemp(prefix="vend-faults-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def start_cli(args: list[str], log: Path, *, unprivileged: bool = False) -> subprocess.Popen[bytes]:
    """``vend-sidecar run ARGS --log-format json`` with stderr into ``log``."""
    if unprivileged:
        uid, gid = unprivileged_ids()
        command = [sys.executable, str(HERE / "unprivileged.py"), str(uid), str(gid)]
    else:
        command = [sys.executable, "-m", "sidecar"]
    log.touch()
    proc = subprocess.Popen(
        [*command, *args, "--log-format", "json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    # Through a pipe, copied by a thread: a file limit (RLIMIT_FSIZE) set on the
    # sidecar must not stop its own log.
    threading.Thread(target=_copy, args=(proc.stderr, log), daemon=True).start()
    return proc


def _copy(source: IO[bytes], log: Path) -> None:
    with log.open("ab", buffering=0) as sink:
        for line in source:
            sink.write(line)


def log_events(log: Path) -> list[dict[str, object]]:
    events = []
    for line in log.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            pass
    return events


def wait_until(predicate: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, timeout: float = 20.0) -> None:
    """Poll ``predicate`` until true; fail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"sidecar exited {proc.returncode}: {log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"condition not reached: {log.read_text()[-2000:]}"
        time.sleep(0.02)
