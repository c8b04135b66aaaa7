"""Publish latency and torn reads: the project's publisher against a naive writer.

For each medium (``/dev/shm`` tmpfs, and the disk under ``build/``) and each writer,
``n`` credential sets are published back to back while a separate reader process
(:mod:`benchmarks.reader`) reads snapshots as fast as it can:

* ``atomic``: :meth:`sidecar.publish.Publisher.publish`, as the sidecar runs it
  (generation directory, fsync of files and directories, ``..data`` rename);
* ``naive``: each file rewritten in place (``open(path, "wb")``, write, fsync), the
  pattern behind spiffe-helper #422.

Each publish is timed with ``perf_counter_ns``; the sets are rendered beforehand so
only the write is timed. On tmpfs each writer is also timed alone, without the
reader competing for one of the two cores. Every set is self-checking (secret and token derived from
the key), so the reader can tell a torn read from a good one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import SecretStr

from benchmarks.rig import ROOT
from sidecar.credentials import Credentials
from sidecar.publish import Publisher
from sidecar.render import render

sys.path.insert(0, str(ROOT / "tests"))
from vendor_double import derive  # noqa: E402

__all__ = ["main", "run"]


def credential_sets(n: int) -> list[dict[str, bytes]]:
    expiration = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    sets = []
    for i in range(n):
        key = f"ASIA{i:016d}"
        secret, token = derive(key)
        sets.append(render(Credentials(key, SecretStr(secret), SecretStr(token), expiration)))
    return sets


def naive_writer(out: Path) -> Callable[[Mapping[str, bytes]], None]:
    def write(files: Mapping[str, bytes]) -> None:
        for name, content in files.items():
            with open(out / name, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())

    return write


def _percentile(sorted_ns: list[int], q: float) -> float:
    index = min(len(sorted_ns) - 1, max(0, round(q * (len(sorted_ns) - 1))))
    return sorted_ns[index] / 1e6


def make_writer(writer: str, out: Path) -> Callable[[Mapping[str, bytes]], object]:
    """The project's atomic publisher, or the naive in-place writer it is compared with."""
    if writer == "atomic":
        publisher = Publisher(out)
        publisher.prepare()
        return publisher.publish
    return naive_writer(out)


def alone(writer: str, base: Path, sets: list[dict[str, bytes]]) -> dict[str, float]:
    """Latency with no reader competing for the CPU (2 cores: the reader takes one)."""
    with tempfile.TemporaryDirectory(prefix=f"bench-publish-{writer}-", dir=base) as tmp:
        out = Path(tmp)
        publish = make_writer(writer, out)
        latencies = []
        for files in sets:
            t0 = time.perf_counter_ns()
            publish(files)
            latencies.append(time.perf_counter_ns() - t0)
    latencies.sort()
    return {"p50_ms": _percentile(latencies, 0.50), "p99_ms": _percentile(latencies, 0.99), "max_ms": latencies[-1] / 1e6}


def measure(writer: str, base: Path, sets: list[dict[str, bytes]]) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix=f"bench-publish-{writer}-", dir=base) as tmp:
        out = Path(tmp)
        publish = make_writer(writer, out)
        publish(sets[-1])  # something to read before the reader starts
        reader = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("reader.py")), str(out)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert reader.stdin is not None and reader.stdout is not None
        try:
            if reader.stdout.readline().strip() != "ready":
                raise RuntimeError("reader did not start")
            latencies = []
            started = time.perf_counter()
            for files in sets:
                t0 = time.perf_counter_ns()
                publish(files)
                latencies.append(time.perf_counter_ns() - t0)
            elapsed = time.perf_counter() - started
            reader.stdin.close()
            counts = json.loads(reader.stdout.readline())
            reader.wait(30)
        finally:
            if reader.poll() is None:
                reader.kill()
                reader.wait()
    latencies.sort()
    return {
        "publishes": len(sets),
        "p50_ms": _percentile(latencies, 0.50),
        "p99_ms": _percentile(latencies, 0.99),
        "max_ms": latencies[-1] / 1e6,
        "publishes_per_s": len(sets) / elapsed,
        "reader": counts,
    }


def run(n: int = 10_000, media: Mapping[str, Path] | None = None) -> dict[str, object]:
    if media is None:
        disk = ROOT / "build"
        disk.mkdir(exist_ok=True)
        media = {"tmpfs": Path("/dev/shm"), "disk": disk}
    sets = credential_sets(n)
    results: dict[str, object] = {}
    for medium, base in media.items():
        for writer in ("atomic", "naive"):
            result: dict[str, object] = {"medium": str(base), **measure(writer, base, sets)}
            if medium == "tmpfs":  # cheap there; on disk fsync dominates either way
                result["alone"] = alone(writer, base, sets)
            results[f"{writer}_{medium}"] = result
    return results


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    print(json.dumps(run(n), indent=2))


if __name__ == "__main__":
    main()
