"""Measure vend-sidecar's real footprint, to size the manifests' requests and limits.

Method (docs/deploy.md, "Resources"): start the real ``vend-sidecar`` process
against the loopback vending double (tests/vendor_double.py) with a kubelet-style
token directory, grant short leases so that it refreshes many times, and sample the
process from /proc: ``VmRSS``/``VmHWM``/``RssAnon``/``RssFile`` from
``/proc/PID/status`` and user+system CPU ticks from ``/proc/PID/stat``, once a
second. Reports start-up CPU until the first set is published, peak and steady
RSS, and CPU per refresh. Also measures one ``--once`` run (an init container).

    .venv/bin/python scripts/measure-footprint.py [--seconds 120] [--lease 12] [--exe PATH]

Numbers depend on the machine; rerun it when the dependencies change.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import TokenDir, make_jwt  # noqa: E402
from vendor_double import VendorDouble  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def status(pid: int) -> dict[str, int]:
    """The kB fields of /proc/PID/status that matter for a memory limit."""
    fields = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "Threads"):
                fields[key] = int(value.split()[0])
    return fields


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        parts = handle.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / TICKS  # utime + stime


def ready(addr: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{addr}/readyz", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def wait_for(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the sidecar")
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="how long to sample the daemon")
    parser.add_argument("--lease", type=float, default=12.0, help="granted lifetime; shorter means more refreshes")
    parser.add_argument("--exe", help="the vend-sidecar to measure (default: this venv's), e.g. one made by "
                        "scripts/install-venv.sh, which holds only the image's runtime dependencies")
    parser.add_argument("--health-addr", help="also serve /healthz, /readyz and /metrics on HOST:PORT and GET all "
                        "three every sample (far more often than kubelet and Prometheus do)")
    args = parser.parse_args()
    exe = args.exe or shutil.which("vend-sidecar", path=str(Path(sys.executable).parent)) or "vend-sidecar"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEND_SIDECAR_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"

    with tempfile.TemporaryDirectory() as tmp, VendorDouble(lifetime=args.lease) as vendor:
        tokens = TokenDir(Path(tmp) / "tokens")
        tokens.write(make_jwt(exp=int(time.time()) + 7200))
        out = Path(tmp) / "out"
        common = [
            "--vendor-url", vendor.url, "--token-file", str(tokens.path), "--bucket", "artifacts",
            "--prefix", "tenant-a/", "--actions", "read,write,list", "--ttl", "1800", "--log-format", "json",
        ]

        # 1. --once, as an init container runs it: peak RSS and total CPU.
        once = subprocess.Popen([exe, "run", "--once", "--out", str(Path(tmp) / "once"), *common],
                                env=env, stderr=subprocess.DEVNULL)
        peak = cpu = 0.0
        while once.poll() is None:
            try:  # VmHWM only grows: the last read before exit is the peak
                peak, cpu = status(once.pid)["VmHWM"], cpu_seconds(once.pid)
            except (FileNotFoundError, KeyError, ProcessLookupError, IndexError):
                pass
            time.sleep(0.01)
        print(f"--once: exit {once.returncode}, peak RSS (VmHWM) {peak / 1024:.1f} MiB, CPU >= {cpu:.2f} s")

        # 2. The daemon, refreshing every ~2/3 of the lease.
        started = time.monotonic()
        # Leases here are short: readiness must not demand the default 60 s left.
        health = ["--health-addr", args.health_addr, "--min-remaining", "2"] if args.health_addr else []
        proc = subprocess.Popen([exe, "run", "--out", str(out), *common, *health], env=env, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: (out / "..data").exists(), 30)
            if args.health_addr:
                wait_for(lambda: ready(args.health_addr), 30)
            first = time.monotonic() - started
            cpu_first = cpu_seconds(proc.pid)
            first_status = status(proc.pid)
            issued_first = len(vendor.issued)
            samples = []
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                if args.health_addr:
                    for path in ("/healthz", "/readyz", "/metrics"):
                        with urllib.request.urlopen(f"http://{args.health_addr}{path}", timeout=5) as answer:
                            answer.read()
                samples.append((time.monotonic(), cpu_seconds(proc.pid), status(proc.pid)))
                time.sleep(1.0)
            refreshes = len(vendor.issued) - issued_first
            (t0, c0, _), (t1, c1, last) = samples[0], samples[-1]
            rss = [s["VmRSS"] for _, _, s in samples]
            print(f"daemon: first set after {first:.2f} s wall, {cpu_first:.2f} s CPU; "
                  f"RSS then {first_status['VmRSS'] / 1024:.1f} MiB")
            print(f"daemon: {len(samples)} samples over {t1 - t0:.0f} s, {refreshes} refreshes "
                  f"(lease {args.lease:g} s): RSS min {min(rss) / 1024:.1f} / max {max(rss) / 1024:.1f} MiB, "
                  f"peak (VmHWM) {last['VmHWM'] / 1024:.1f} MiB, "
                  f"anon {last['RssAnon'] / 1024:.1f} MiB, file {last['RssFile'] / 1024:.1f} MiB, "
                  f"threads {last['Threads']}")
            per_refresh = (c1 - c0) / refreshes if refreshes else float("nan")
            print(f"daemon: CPU {c1 - c0:.2f} s over {t1 - t0:.0f} s = {1000 * (c1 - c0) / (t1 - t0):.1f} millicores "
                  f"average, {1000 * per_refresh:.0f} ms CPU per refresh")
        finally:
            proc.terminate()
            proc.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
