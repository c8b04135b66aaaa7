"""Start-up: wall time from spawning ``vend-sidecar`` to a complete published set.

The sidecar runs in its default configuration against the vending double on
loopback; the clock starts just before ``Popen`` and stops when ``OUT/..data``
resolves to a directory holding all six files (polled every millisecond). The
floor is the time a bare interpreter in the same environment takes to import the
project's own runtime dependencies: no Python program using them can start faster.
The two are measured alternately, run by run.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.rig import VendorDouble, runtime_python, spawn_sidecar, write_token

__all__ = ["DEPENDENCIES", "main", "run"]

#: The runtime dependencies the sidecar's run command needs (pyproject ``dependencies``).
DEPENDENCIES = ("anyio", "httpx", "jwt", "pydantic_settings", "tenacity", "watchfiles")


def import_floor(python: Path, runs: int) -> list[float]:
    """Wall seconds of ``python -c 'import <dependencies>'`` in a fresh process."""
    code = "import " + ", ".join(DEPENDENCIES)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([str(python), "-c", code], check=True)
        times.append(time.perf_counter() - started)
    return times


def startup_times(python: Path, runs: int) -> list[float]:
    times = []
    with VendorDouble(lifetime=3600.0) as vendor, tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        token = write_token(Path(tmp) / "token")
        for i in range(runs):
            with spawn_sidecar(python, vendor.url, token, Path(tmp) / f"out{i}") as sidecar:
                times.append(sidecar.wait_published())
    return times


def run(python: Path, runs: int = 7) -> dict[str, object]:
    import_floor(python, 1)  # warm the page cache for both measurements alike
    startup_times(python, 1)
    floor: list[float] = []
    startup: list[float] = []
    for _ in range(runs):  # interleaved, so load from elsewhere on the machine hits both alike
        floor += import_floor(python, 1)
        startup += startup_times(python, 1)
    floor_median = statistics.median(floor)
    startup_median = statistics.median(startup)
    return {
        "runs": runs,
        "startup_s": startup,
        "startup_median_s": startup_median,
        "import_floor_s": floor,
        "import_floor_median_s": floor_median,
        "ratio": startup_median / floor_median,
        "dependencies": list(DEPENDENCIES),
    }


def main() -> None:
    print(json.dumps(run(runtime_python()), indent=2))


if __name__ == "__main__":
    main()
