"""A real ``vend-sidecar`` subprocess for endpoint, command and log tests.

The process is started through the installed console script (what an image runs),
its stderr is collected line by line on a thread, and tests wait for states by
polling a condition with a generous bound, never by sleeping "long enough".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

#: The console script installed next to the interpreter running the tests.
VEND_SIDECAR = str(Path(sys.executable).parent / "vend-sidecar")
#: Upper bound for any single wait on a subprocess; generous for a loaded CI box.
WAIT = 20.0

T = TypeVar("T")


def wait_until(condition: Callable[[], T], *, timeout: float = WAIT, what: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
    """Run one short CLI command (check, credential-process, a bad config) to the end."""
    return subprocess.run([VEND_SIDECAR, *args], capture_output=True, text=True, timeout=timeout, env=env)


class SidecarProcess:
    """``vend-sidecar run`` in a subprocess; JSON or text log lines in :attr:`lines`."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.args = list(args)
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [VEND_SIDECAR, *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def events(self) -> list[dict[str, Any]]:
        """Parsed JSON log lines (run with ``--log-format json``)."""
        with self._lock:
            lines = list(self.lines)
        return [json.loads(line) for line in lines if line.startswith("{")]

    def find(self, name: str, **match: Any) -> dict[str, Any] | None:
        for doc in self.events():
            if doc.get("event") == name and all(doc.get(k) == v for k, v in match.items()):
                return doc
        return None

    def wait_event(self, name: str, *, timeout: float = WAIT, **match: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            if self.proc.poll() is not None and self.find(name, **match) is None:
                raise AssertionError(f"sidecar exited ({self.proc.returncode}) before {name}:\n{self.output}")
            return self.find(name, **match)

        return wait_until(found, timeout=timeout, what=f"log event {name} {match or ''}")

    def url(self, event_name: str = "health.listening") -> str:
        return str(self.wait_event(event_name)["url"])

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the process and wait for it (kill after the bound); return its code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(WAIT)
        self._reader.join(WAIT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def sidecar_env(**extra: str) -> dict[str, str]:
    """The test process's environment without VEND_SIDECAR_* and AWS_* (no leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VEND_SIDECAR_", "AWS_"))}
    env.update(extra)
    return env


@pytest.fixture
def start_sidecar(vendor: Any, token_dir: Any, out_dir: Path) -> Iterator[Callable[..., SidecarProcess]]:
    """Factory: start a sidecar against the ``vendor`` double with extra flags.

    Every process started is stopped (SIGTERM, then kill) at teardown.
    """
    started: list[SidecarProcess] = []

    def start(*extra: str, log_format: str = "json", env: dict[str, str] | None = None) -> SidecarProcess:
        args = [
            "--out", str(out_dir),
            "--vendor-url", vendor.url,
            "--bucket", "artifacts",
            "--token-file", str(token_dir.path),
            "--log-format", log_format,
            *extra,
        ]
        process = SidecarProcess(args, env=env or sidecar_env())
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
