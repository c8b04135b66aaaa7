"""The rig the process benchmarks share: a vending double on loopback, a kubelet-style
token directory, and a real ``vend-sidecar`` subprocess.

The vending double is the test suite's own (``tests/vendor_double.py``): a real aiohttp
server in a thread, serving contract v1. Waiting for the sidecar polls a condition
(``..data`` resolving to a complete set) with a bounded deadline; nothing sleeps for a
fixed "long enough" time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import jwt  # noqa: E402

from sidecar.publish import Publisher  # noqa: E402
from sidecar.render import FILE_NAMES  # noqa: E402
from vendor_double import VendorDouble  # noqa: E402

__all__ = ["ROOT", "Sidecar", "VendorDouble", "complete_set", "runtime_python", "sidecar_argv", "spawn_sidecar", "write_token"]

SIGNING_KEY = "benchmark-signing-key-not-a-secret-0123456789"


def write_token(directory: Path, name: str = "vend-token") -> Path:
    """A token directory laid out the way kubelet writes it (``..data`` swap)."""
    now = int(time.time())
    claims = {
        "iss": "https://key-cape.bench",
        "sub": "system:serviceaccount:bench:artifact-store",
        "aud": ["vend.platform"],
        "tenant": "bench",
        "iat": now,
        "exp": now + 3600,
    }
    writer = Publisher(directory, file_mode=0o644)
    writer.prepare()
    writer.publish({name: jwt.encode(claims, SIGNING_KEY, algorithm="HS256").encode() + b"\n"})
    return directory / name


def complete_set(out: Path) -> bool:
    """True once ``out/..data`` resolves to a directory holding every published file."""
    try:
        data = os.path.realpath(out / "..data")
        return all(os.path.isfile(os.path.join(data, name)) for name in FILE_NAMES)
    except OSError:
        return False


def runtime_python() -> Path:
    """An interpreter with the sidecar installed the way its container image installs it.

    ``pip install .`` (not editable, no extras) into ``build/bench-runtime-venv``: the
    development venv also holds moto, aiohttp, cryptography and click, which the
    runtime dependencies import opportunistically when present (httpx imports click,
    pyjwt imports cryptography) and which would inflate start-up and RSS. The venv is
    created once; the sidecar itself is reinstalled on every run so the code measured
    is the code in the worktree.
    """
    venv = ROOT / "build" / "bench-runtime-venv"
    python = venv / "bin" / "python"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, str(ROOT)], check=True, **quiet)  # picks up new or changed dependencies
    subprocess.run([*pip, "--no-deps", "--force-reinstall", str(ROOT)], check=True, **quiet)
    for staging in ("lib", "bdist.linux-x86_64"):  # setuptools leaves its staging copies
        shutil.rmtree(ROOT / "build" / staging, ignore_errors=True)
    return python


def sidecar_argv(python: Path) -> list[str]:
    """The console script installed next to ``python`` (what a container runs)."""
    return [str(python.with_name("vend-sidecar"))]


@dataclass
class Sidecar:
    process: subprocess.Popen[bytes]
    out: Path
    spawned_at: float

    def wait_published(self, timeout: float = 30.0, poll: float = 0.001) -> float:
        """Seconds from spawn until a complete set is published (bounded poll)."""
        deadline = self.spawned_at + timeout
        while not complete_set(self.out):
            if self.process.poll() is not None:
                raise RuntimeError(f"sidecar exited with {self.process.returncode} before publishing")
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no complete set in {self.out} after {timeout} s")
            time.sleep(poll)
        return time.perf_counter() - self.spawned_at

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return self.process.returncode


@contextmanager
def spawn_sidecar(python: Path, vendor_url: str, token_file: Path, out: Path, *extra: str) -> Iterator[Sidecar]:
    """Run the real sidecar (default configuration) against ``vendor_url``; stop on exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEND_SIDECAR_")}
    argv = [
        *sidecar_argv(python),
        "--out", str(out),
        "--vendor-url", vendor_url,
        "--token-file", str(token_file),
        "--bucket", "artifacts",
        "--prefix", "bench/",
        "--log-level", "warning",
        *extra,
    ]
    with open(out.parent / f"{out.name}.log", "wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        sidecar = Sidecar(process=process, out=out, spawned_at=started)
        try:
            yield sidecar
        finally:
            sidecar.stop()
