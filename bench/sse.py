"""SSE fan-out benchmark: many concurrent ``/v1/me/events`` streams on a multi-worker BFF.

``python -m bench.sse --admin-database-url … --redis-url … [--streams 1000] [--workers 2]``
starts the benchmark system (its own database, the simulators, ``onecity serve --workers N``),
creates one citizen per stream, opens every stream, then produces rounds of one message per
citizen straight through the message centre (PostgreSQL + the Redis wake-up, as any producer
on another host would) and measures:

* fan-out rate: messages received over all streams per second, from the first message
  produced to the last received;
* latency from produce to receive (p50, p99, max);
* memory per stream: the BFF's resident memory (leader and workers) after opening the streams,
  minus before, divided by the streams.

Numbers from a shared or contended machine are not results; record them only from a quiet one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from bench.cli import run_scenario
from bench.context import BenchContext
from bench.fixtures import create_citizens
from bench.scenarios import BASELINE, SCENARIOS
from bench.system import System, SystemConfig
from bench.wrk import WrkSettings
from core.db import create_pool
from messages import MessageCentre, MessagesRepository, MessagesSettings

__all__ = ["main", "measure"]

_POOL = 20  # bench.fixtures citizen pool of this scenario
_PRODUCERS = 50  # messages produced concurrently


def _rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants (Linux /proc), in KiB."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending.extend(int(c) for c in children)
    return total


async def _stream(
    http: httpx.AsyncClient, token: str, received: list[tuple[str, float]], opened: asyncio.Event
) -> None:
    async with http.stream("GET", "/v1/me/events", headers={"Authorization": f"Bearer {token}"}) as response:
        if response.status_code != 200:
            raise RuntimeError(f"stream refused: {response.status_code}")
        async for line in response.aiter_lines():
            if line.startswith(":"):
                opened.set()
            elif line.startswith("data: "):
                body = json.loads(line[6:])
                if "title" in body:
                    received.append((body["title"], time.monotonic()))


async def measure(ctx: BenchContext, *, streams: int, rounds: int, bff_pid: int | None) -> dict[str, Any]:
    """Open ``streams`` streams, produce ``rounds`` messages per stream, report the numbers."""
    citizens = await create_citizens(ctx, streams, pool=_POOL)
    pool = await create_pool(ctx.database_url, min_size=2, max_size=_PRODUCERS)
    redis = Redis.from_url(ctx.redis_url)
    centre = MessageCentre(
        repository=MessagesRepository(pool), redis=redis, vault=ctx.vault, settings=MessagesSettings()
    )
    before = _rss_kib(bff_pid) if bff_pid else 0
    received: list[tuple[str, float]] = []
    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=streams + 10)
    async with httpx.AsyncClient(base_url=ctx.base_url, timeout=httpx.Timeout(10.0, read=None), limits=limits) as http:
        opened = [asyncio.Event() for _ in citizens]
        tasks = [
            asyncio.create_task(_stream(http, c.access_token, received, e))
            for c, e in zip(citizens, opened, strict=True)
        ]
        try:
            try:
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in opened)), timeout=120)
            except TimeoutError:
                failed = [t.exception() for t in tasks if t.done() and not t.cancelled() and t.exception()]
                open_count = sum(e.is_set() for e in opened)
                raise RuntimeError(
                    f"{open_count} of {streams} streams opened in 120 s; {len(failed)} failed, first: {failed[:1]!r}"
                ) from None
            await asyncio.sleep(1.0)
            after = _rss_kib(bff_pid) if bff_pid else 0
            sent: dict[str, float] = {}
            started = time.monotonic()

            # Produced 50 at a time (as several producers on other hosts would), so the rate
            # measures delivery rather than one producer's round trips.
            async def post(n: int, account_id: str) -> None:
                title = f"bench {n} {account_id[:8]}"
                sent[title] = time.monotonic()
                await centre.post(
                    account_id=account_id, category="notice", title=title, body="b", dedupe_key=f"bench:{n}"
                )

            for n in range(rounds):
                for first in range(0, len(citizens), _PRODUCERS):
                    batch = citizens[first : first + _PRODUCERS]
                    await asyncio.gather(*(post(n, c.account_id) for c in batch))
            for _ in range(600):  # at most 60 s for the last deliveries
                if len(received) >= len(sent):
                    break
                await asyncio.sleep(0.1)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    await pool.close()
    await redis.aclose()
    latencies = sorted(at - sent[title] for title, at in received if title in sent)
    last = max((at for _, at in received), default=started)
    return {
        "streams": streams,
        "messages_produced": len(sent),
        "messages_received": len(latencies),
        "fanout_per_s": round(len(latencies) / max(last - started, 1e-9), 1),
        "latency_ms": {
            "p50": round(1000 * statistics.median(latencies), 1) if latencies else None,
            "p99": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1) if latencies else None,
            "max": round(1000 * latencies[-1], 1) if latencies else None,
        },
        "memory_per_stream_kib": round((after - before) / streams, 1) if bff_pid else None,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the SSE benchmark and print its numbers as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.sse", description=__doc__.splitlines()[0])
    parser.add_argument("--admin-database-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path(".onecity/bench-sse"))
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    config = SystemConfig(
        admin_database_url=args.admin_database_url,
        redis_url=args.redis_url,
        workers=args.workers,
        workdir=args.workdir,
        # One citizen per stream; the limit is per citizen, so it does not bind here.
        extra_env={"ONECITY_MESSAGES_MAX_STREAMS": "5"},
    )
    with System(config) as system:
        system.start()
        ctx = system.context(duration_s=60, connections=args.streams)
        bff = getattr(system, "_bff", None)
        pid = bff.process.pid if bff is not None else None
        # The baseline of the same run: the trivial endpoint under wrk (-c64, 10 s), so the
        # fan-out rate can be read as a ratio like every other benchmark's numbers.
        trivial = run_scenario(system, SCENARIOS[BASELINE], WrkSettings(connections=64, duration_s=10))
        result = asyncio.run(measure(ctx, streams=args.streams, rounds=args.rounds, bff_pid=pid))
        result["trivial_req_per_s"] = round(trivial.result.rps, 1)
        result["fanout_x_trivial"] = round(result["fanout_per_s"] / max(trivial.result.rps, 1e-9), 3)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
