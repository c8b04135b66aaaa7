"""Idle cost: CPU the real sidecar burns between refreshes.

``vend-sidecar`` (default configuration, runtime install) gets a one-hour lease from
the loopback vending double, so its next refresh is ~40 minutes away. After the
first set is published and the process has settled, its CPU time is read twice,
``duration`` seconds apart: psutil's ``cpu_times`` (user + system, all threads;
10 ms clock-tick resolution) and, for a finer reading, the sum of every thread's
``/proc/PID/task/TID/schedstat`` run time (nanoseconds, Linux). The vending double
must see no request and the published generation must not change meanwhile, or the
window was not idle.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from benchmarks.rig import VendorDouble, runtime_python, spawn_sidecar, write_token

__all__ = ["main", "run"]


def _schedstat_seconds(pid: int) -> float:
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as handle:
                total += int(handle.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended between listdir and open
    return total / 1e9


def _wakeups(pid: int) -> int:
    """Context switches summed over every thread (psutil reports the main thread's only)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as handle:
                for line in handle:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


#: The configuration the Kubernetes manifests deploy: health/readiness/metrics on.
WITH_HEALTH = ("--health-addr", "127.0.0.1:0")


def run(python: Path, duration: float = 60.0, settle: float = 3.0, extra: tuple[str, ...] = ()) -> dict[str, object]:
    with VendorDouble(lifetime=3600.0) as vendor, tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        token = write_token(Path(tmp) / "token")
        out = Path(tmp) / "out"
        with spawn_sidecar(python, vendor.url, token, out, *extra) as sidecar:
            sidecar.wait_published()
            time.sleep(settle)  # start-up work (logging flush, worker threads parking) is not idle
            process = psutil.Process(sidecar.process.pid)
            generation, requests = os.readlink(out / "..data"), len(vendor.requests)
            cpu0, sched0 = process.cpu_times(), _schedstat_seconds(process.pid)
            switches0 = _wakeups(process.pid)
            time.sleep(duration)
            threads = process.num_threads()
            cpu1, sched1 = process.cpu_times(), _schedstat_seconds(process.pid)
            switches1 = _wakeups(process.pid)
            if os.readlink(out / "..data") != generation or len(vendor.requests) != requests:
                raise RuntimeError("the sidecar refreshed during the idle window; the lease was too short")
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    sched = sched1 - sched0
    return {
        "args": list(extra),
        "duration_s": duration,
        "cpu_s_psutil": cpu,
        "cpu_s_schedstat": sched,
        "cpu_ms_per_min": sched * 1000 * 60 / duration,
        "cpu_ms_per_min_psutil": cpu * 1000 * 60 / duration,
        "context_switches": switches1 - switches0,
        "threads": threads,
    }


def main() -> None:
    duration = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    python = runtime_python()
    results = {"default": run(python, duration=duration), "with_health": run(python, duration=duration, extra=WITH_HEALTH)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
