"""Benchmarks for vend-sidecar (run by ``make bench``; never by ``make test``).

Each module measures one thing and exposes ``run(...) -> dict`` plus a ``main()`` that
prints its result as JSON; :mod:`benchmarks.run_all` runs them all and writes
``docs/performance.md`` and ``docs/herd.png`` from the results.
"""
