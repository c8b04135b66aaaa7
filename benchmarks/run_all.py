"""Run every benchmark and write ``docs/performance.md`` and ``docs/herd.png``.

``make bench`` runs this. It takes a few minutes: the idle measurement alone waits
60 s, and 10,000 fsynced publishes on a virtual disk take about a minute per
writer. The raw results go to ``build/bench-results.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import footprint, herd, idle, publish_latency, startup  # noqa: E402
from benchmarks.report import machine, render  # noqa: E402
from benchmarks.rig import ROOT, runtime_python  # noqa: E402


def _step(name: str) -> float:
    print(f"bench: {name} ...", file=sys.stderr, flush=True)
    return time.perf_counter()


def _done(started: float) -> None:
    print(f"bench:   done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--startup-runs", type=int, default=7)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--publishes", type=int, default=10_000)
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = parser.parse_args(argv)
    command = "make bench" if argv is None and len(sys.argv) == 1 else "python benchmarks/run_all.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )

    results: dict[str, object] = {}
    t = _step("installing the runtime venv (build/bench-runtime-venv)")
    python = runtime_python()
    _done(t)
    t = _step(f"start-up ({args.startup_runs} runs)")
    results["startup"] = startup.run(python, runs=args.startup_runs)
    _done(t)
    t = _step("footprint")
    results["footprint"] = footprint.run(python)
    _done(t)
    t = _step(f"idle ({args.idle_seconds:.0f} s)")
    results["idle"] = idle.run(python, duration=args.idle_seconds)
    _done(t)
    t = _step(f"idle with the health server ({args.idle_seconds:.0f} s)")
    results["idle_health"] = idle.run(python, duration=args.idle_seconds, extra=idle.WITH_HEALTH)
    _done(t)
    t = _step(f"publish latency ({args.publishes:,} publishes x 4)")
    results["publish"] = publish_latency.run(args.publishes)
    _done(t)
    t = _step(f"herd ({args.pods:,} pods)")
    scenario = herd.Scenario(pods=args.pods)
    results["herd"] = herd.run(scenario)
    args.docs.mkdir(parents=True, exist_ok=True)
    herd.plot(results["herd"]["results"], scenario, args.docs / "herd.png")  # type: ignore[index]
    _done(t)

    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    (args.docs / "performance.md").write_text(render(results, command=command, when=when, host=machine(ROOT)))
    raw = ROOT / "build" / "bench-results.json"
    raw.parent.mkdir(exist_ok=True)
    raw.write_text(
        json.dumps(results, indent=2, default=lambda o: herd.summary(o) if isinstance(o, herd.SimResult) else str(o))
    )
    print(f"bench: wrote {args.docs / 'performance.md'}, {args.docs / 'herd.png'} and {raw}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
