"""The OneCity benchmark harness: ``python -m bench``.

It starts the whole system on the real PostgreSQL and Redis, loads one endpoint at a time
with wrk, and records the numbers in ``bench/RESULTS.md``. Scenarios live in
:mod:`bench.scenarios`; docs/benchmarks.md says how to run it and how to add one.
"""

from __future__ import annotations

from bench.cli import main

__all__ = ["main"]
