"""Drive the real refresh loop through many cycles as fast as it will go.

Run as a script by :mod:`benchmarks.footprint` with the runtime interpreter (only
``sidecar`` and the standard library are importable there)::

    python benchmarks/cycles.py VENDOR_URL TOKEN_FILE OUT CHECKPOINT...

It builds the loop exactly as ``vend-sidecar run`` does (:func:`sidecar.vendor.build_http_client`,
:class:`~sidecar.vendor.VendorClient`, :class:`~sidecar.publish.Publisher`,
:class:`~sidecar.loop.RefreshLoop` with the token watch on, logs at ``info``), except
that the injected ``sleep`` returns at once, so every cycle is a real vend over
loopback and a real fsynced publish. After the refresh that completes each
checkpoint cycle it prints ``cycles N`` and waits for a line on stdin, so the parent
can sample this process's RSS and file descriptors with psutil while it stands still.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import anyio

from sidecar.logs import configure
from sidecar.loop import RefreshLoop
from sidecar.publish import Publisher
from sidecar.vendor import VendorClient, build_http_client


async def drive(vendor_url: str, token_file: Path, out: Path, checkpoints: list[int]) -> None:
    cycles = 0
    last = max(checkpoints)

    async with build_http_client(timeout=10.0) as http:
        vendor = VendorClient(
            vendor_url=vendor_url, bucket="artifacts", prefix="bench/", actions=["read"], ttl_seconds=1800, http=http
        )
        rng = random.Random(7)
        with anyio.CancelScope() as scope:

            async def sleep(seconds: float) -> None:
                nonlocal cycles
                cycles += 1
                if cycles in checkpoints:
                    print(f"cycles {cycles}", flush=True)
                    await anyio.to_thread.run_sync(sys.stdin.readline)
                if cycles >= last:
                    scope.cancel()
                await anyio.lowlevel.checkpoint()

            loop = RefreshLoop(
                token_file=token_file, vendor=vendor, publisher=Publisher(out, rng=rng), rng=rng, sleep=sleep
            )
            await loop.run()


def main() -> None:
    vendor_url, token_file, out, *checkpoints = sys.argv[1:]
    with open(os.devnull, "w") as sink:
        configure(fmt="text", level="info", stream=sink)
        anyio.run(drive, vendor_url, Path(token_file), Path(out), sorted(int(c) for c in checkpoints))
    print("done", flush=True)


if __name__ == "__main__":
    main()
