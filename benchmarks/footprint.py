"""Footprint: RSS of the real sidecar after start, and RSS / fds over many refreshes.

1. *After start*: ``vend-sidecar`` in its default configuration (runtime install, no
   extras) is spawned against the loopback vending double; once a complete set is
   published and the process has settled, psutil samples its RSS, USS, threads and
   open file descriptors.
2. *Over refreshes*: the real refresh loop with an injected sleep that returns at
   once (:mod:`benchmarks.cycles`, a separate process so the vending double's own
   bookkeeping is not counted) refreshes ``warmup + n * step`` times against the same
   double, publishing onto ``/dev/shm`` (where a Memory-medium emptyDir lives). RSS
   and fds are sampled at each checkpoint while the loop stands still; growth per
   1,000 refreshes is the least-squares slope over the checkpoints after warm-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from benchmarks.rig import VendorDouble, runtime_python, spawn_sidecar, write_token

__all__ = ["main", "run"]

MiB = 1024 * 1024


def _sample(process: psutil.Process) -> dict[str, float]:
    info = process.memory_full_info()
    return {"rss_mib": info.rss / MiB, "uss_mib": info.uss / MiB, "fds": process.num_fds(), "threads": process.num_threads()}


def after_start(python: Path, vendor: VendorDouble, token: Path, tmp: Path, settle: float = 2.0) -> dict[str, float]:
    with spawn_sidecar(python, vendor.url, token, tmp / "out-start") as sidecar:
        sidecar.wait_published()
        time.sleep(settle)  # let start-up garbage be collected and worker threads park
        return _sample(psutil.Process(sidecar.process.pid))


#: Import steps whose RSS cost the report breaks down (cumulative, in this order).
LADDER = (
    ("interpreter", ""),
    ("asyncio + ssl", "import asyncio, ssl"),
    ("anyio", "import anyio, anyio._backends._asyncio"),
    ("httpx + httpcore", "import httpx, httpcore"),
    ("tenacity", "import tenacity"),
    ("pydantic", "import pydantic, pydantic.types"),
    ("pydantic-settings", "import pydantic_settings"),
    ("pyjwt", "import jwt"),
    ("watchfiles", "import watchfiles"),
    ("sidecar (run command)", "import sidecar.cli, sidecar.loop, sidecar.vendor, sidecar.publish, sidecar.settings"),
)


def import_ladder(python: Path) -> list[tuple[str, float]]:
    """Cumulative RSS (MiB) of one interpreter after each import step of :data:`LADDER`."""
    rss = "int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])"
    code = "\n".join(f"{stmt}\nprint({rss}, flush=True)" for _, stmt in LADDER)
    done = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True)
    return [(name, int(kib) / 1024) for (name, _), kib in zip(LADDER, done.stdout.split())]


def import_floor_rss(python: Path) -> float:
    """RSS (MiB) of a bare interpreter that has only imported the runtime dependencies."""
    from benchmarks.startup import DEPENDENCIES

    code = (
        f"import {', '.join(DEPENDENCIES)}\n"
        "print(int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]))"
    )
    done = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True)
    return int(done.stdout) / 1024


def over_refreshes(python: Path, vendor: VendorDouble, token: Path, checkpoints: list[int]) -> list[dict[str, float]]:
    script = Path(__file__).with_name("cycles.py")
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="bench-cycles-", dir=shm) as out:
        requests_before = len(vendor.requests)
        process = subprocess.Popen(
            [str(python), str(script), vendor.url, str(token), out, *map(str, checkpoints)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdin is not None and process.stdout is not None
        samples = []
        watched = psutil.Process(process.pid)
        try:
            for expected in checkpoints:
                line = process.stdout.readline().strip()
                if line != f"cycles {expected}":
                    raise RuntimeError(f"cycle driver said {line!r}, expected 'cycles {expected}'")
                samples.append({"cycles": expected, **_sample(watched)})
                process.stdin.write("go\n")
                process.stdin.flush()
            if process.stdout.readline().strip() != "done" or process.wait(30) != 0:
                raise RuntimeError("cycle driver did not finish cleanly")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        served = len(vendor.requests) - requests_before
        if served < checkpoints[-1]:
            raise RuntimeError(f"only {served} vend requests for {checkpoints[-1]} cycles")
    return samples


def _slope(xs: list[float], ys: list[float]) -> float:
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)


def run(python: Path, warmup: int = 200, step: int = 500, steps: int = 6) -> dict[str, object]:
    checkpoints = [warmup + i * step for i in range(steps + 1)]
    with VendorDouble(lifetime=3600.0) as vendor, tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp:
        token = write_token(Path(tmp) / "token")
        start = after_start(python, vendor, token, Path(tmp))
        floor = import_floor_rss(python)
        floor_dev = import_floor_rss(Path(sys.executable))  # the development venv, for contrast
        ladder = import_ladder(python)
        started = time.perf_counter()
        samples = over_refreshes(python, vendor, token, checkpoints)
        elapsed = time.perf_counter() - started
    xs = [s["cycles"] for s in samples]
    growth = _slope(xs, [s["rss_mib"] for s in samples]) * 1000
    return {
        "after_start": start,
        "import_floor_rss_mib": floor,
        "import_floor_rss_dev_venv_mib": floor_dev,
        "import_ladder_mib": ladder,
        "checkpoints": samples,
        "refreshes": checkpoints[-1],
        "refreshes_measured": checkpoints[-1] - warmup,
        "warmup": warmup,
        "cycles_per_s": checkpoints[-1] / elapsed,
        "growth_mib_per_1000": growth,
        "rss_end_minus_warm_mib": samples[-1]["rss_mib"] - samples[0]["rss_mib"],
        "fds": sorted({int(s["fds"]) for s in samples}),
        "publish_dir": "/dev/shm" if Path("/dev/shm").is_dir() else tempfile.gettempdir(),
    }


def main() -> None:
    print(json.dumps(run(runtime_python()), indent=2))


if __name__ == "__main__":
    main()
