"""``python -m bench --peak``: the peak drill — ten times the steady mixed load.

The mix is what the city's app and its partners do at a peak (a stadium's gates opening, the
morning rush): citizens show codes (``POST /v1/me/codes/transit``, tier 0), gates verify them
(``POST /v1/codes/verify``, tier 0), the app fetches the code list and the keys (tier 0),
opens the home screen (tier 1) and loads code images and the profile (tier 2).

The drill paces that mix open-loop (requests leave on a fixed schedule whether or not earlier
ones are answered, as a crowd does) at ``--peak-rate`` requests/s times ``--peak-factor``
(default 10) for ``--peak-duration`` seconds, in this process with httpx (wrk is not needed),
and reports per tier the share of 2xx, p50/p99 latency and the requests shed (503
``overloaded``), then the same per window of a few seconds: whether tier 0 suffers at the
start of the burst or all along, and how late the load generator itself sent (a late
generator measures its own queue, not the server's). Nothing may be lost: after the load,
the scan-log rows of the run must equal the verifications the gates got a 200 for.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx

from bench.context import BenchContext
from bench.fixtures import Citizen, create_citizens, issue_codes, partner_token
from bff.peak import PEAK_POLL_S, set_peak

__all__ = [
    "GOAL_TIER0_OK_PCT",
    "GOAL_TIER0_P99_MS",
    "MIX",
    "PeakReport",
    "TierResult",
    "render_peak",
    "run_peak_drill",
    "window_length",
]

OVERLOADED = "https://onecity.example/problems/overloaded"
#: Issue 13's goal for the burst: tier 0 keeps this share of 2xx answers ...
GOAL_TIER0_OK_PCT = 99.9
#: ... with at most this p99 (ms), and nothing acknowledged is lost.
GOAL_TIER0_P99_MS = 1000.0

#: (name, tier, weight): the mix per 20 requests.
MIX: tuple[tuple[str, int, int], ...] = (
    ("verify", 0, 6),
    ("issue", 0, 3),
    ("codes", 0, 2),
    ("keys", 0, 1),
    ("home", 1, 3),
    ("image", 2, 3),
    ("profile", 2, 2),
)
_MAX_OUTSTANDING = 4000  # the client's own ceiling: beyond it a request counts as "client-dropped"
_CLIENTS = 32  # httpx clients the load is spread over, round robin
_CONNECTIONS_PER_CLIENT = 16  # 512 connections in all


@dataclass
class TierResult:
    """What one tier got."""

    sent: int = 0
    ok: int = 0
    shed: int = 0
    other: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def ok_pct(self) -> float:
        """Share of 2xx answers, in percent of the requests sent."""
        return 100.0 * self.ok / self.sent if self.sent else 0.0

    def percentile(self, q: float) -> float:
        """Latency percentile of the 2xx answers (ms)."""
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class PeakReport:
    """The drill's outcome."""

    rate: float
    duration_s: int
    tiers: dict[int, TierResult]
    verified_ok: int
    scan_rows: int
    client_dropped: int
    #: What the BFF ran against (``bench.system.System.topology``).
    topology: str = "single Redis"
    #: The unmeasured steady load before the burst (0 s: the burst hit a cold system).
    steady_rate: float = 0.0
    steady_s: int = 0
    #: Seconds per window of :attr:`windows`.
    window_s: int = 5
    #: Per window of the schedule (by the time a request was due): what each tier got.
    windows: list[dict[int, TierResult]] = field(default_factory=list)
    #: Per window: the most the generator sent a request after it was due (ms).
    late_ms: list[float] = field(default_factory=list)
    #: Per request of the mix (``verify``, ``issue``, ...): what it got.
    kinds: dict[str, TierResult] = field(default_factory=dict)
    #: Peak mode was switched on (as ``onecity peak on`` does) for the burst.
    peak_switch: bool = False

    @property
    def nothing_lost(self) -> bool:
        """Every acknowledged verification has its scan-log row."""
        return self.scan_rows == self.verified_ok

    @property
    def goal_met(self) -> bool:
        """Tier 0 kept :data:`GOAL_TIER0_OK_PCT` 2xx within :data:`GOAL_TIER0_P99_MS`, nothing lost."""
        tier0 = self.tiers[0]
        return tier0.ok_pct >= GOAL_TIER0_OK_PCT and tier0.percentile(0.99) <= GOAL_TIER0_P99_MS and self.nothing_lost


async def _scan_rows(ctx: BenchContext) -> int:
    conn = await ctx.connect()
    try:
        rows: int = await conn.fetchval("SELECT count(*) FROM scan_log")
        return rows
    finally:
        await conn.close()


def window_length(duration_s: int) -> int:
    """Seconds per window of the drill's timeline: about a dozen windows, at least 1 s each."""
    return max(1, duration_s // 12)


async def _drill(
    ctx: BenchContext, *, rate: float, duration_s: int, people: list[Citizen], payloads: list[str], gate: dict[str, str]
) -> PeakReport:
    scans_before = await _scan_rows(ctx)
    tiers = {0: TierResult(), 1: TierResult(), 2: TierResult()}
    window_s = window_length(duration_s)
    count = math.ceil(duration_s / window_s)
    windows = [{0: TierResult(), 1: TierResult(), 2: TierResult()} for _ in range(count)]
    late_ms = [0.0] * count
    kinds = {name: TierResult() for name, _, _ in MIX}
    verified_ok = 0
    dropped = 0
    outstanding = 0
    names = [name for name, _, weight in MIX for _ in range(weight)]
    tier_of = {name: tier for name, tier, _ in MIX}
    rng = random.Random(13)
    fresh = list(payloads)
    loop = asyncio.get_running_loop()

    def request(http: httpx.AsyncClient, name: str) -> Callable[[], object]:
        citizen = rng.choice(people)
        me = {"Authorization": f"Bearer {citizen.access_token}"}
        if name == "verify":
            return lambda: http.post("/v1/codes/verify", json={"payload": rng.choice(fresh)}, headers=gate)
        if name == "issue":
            return lambda: http.post("/v1/me/codes/transit", headers=me)
        if name == "codes":
            return lambda: http.get("/v1/me/codes", headers=me)
        if name == "keys":
            return lambda: http.get("/v1/codes/keys")
        if name == "home":
            return lambda: http.get("/v1/me/home", headers=me)
        if name == "image":
            return lambda: http.get("/v1/me/codes/transit/image", headers=me)
        return lambda: http.get("/v1/me", headers=me)

    async def one(http: httpx.AsyncClient, name: str, index: int, due: float) -> None:
        nonlocal verified_ok, outstanding
        window = min(count - 1, int(index / rate) // window_s)
        late_ms[window] = max(late_ms[window], (loop.time() - due) * 1000)
        results = (tiers[tier_of[name]], windows[window][tier_of[name]], kinds[name])
        for result in results:
            result.sent += 1
        started = time.perf_counter()
        try:
            response = await request(http, name)()  # type: ignore[misc]
        except httpx.HTTPError:
            for result in results:
                result.errors += 1
            return
        finally:
            outstanding -= 1
        status = response.status_code
        if 200 <= status < 300:
            latency_ms = (time.perf_counter() - started) * 1000
            for result in results:
                result.ok += 1
                result.latencies_ms.append(latency_ms)
            if name == "verify":
                verified_ok += 1
            elif name == "issue":
                fresh.append(response.json()["payload"])
                del fresh[: max(0, len(fresh) - 2000)]
            return
        shed = (
            status == 503
            and response.headers.get("content-type", "").startswith("application/problem+json")
            and response.json().get("type") == OVERLOADED
        )
        for result in results:
            if shed:
                result.shed += 1
            else:
                result.other[status] = result.other.get(status, 0) + 1

    # Many small clients, not one large one: httpcore's pool scans its whole queue of waiting
    # requests on every release, so one client with thousands of requests in flight spends the
    # load generator's CPU on its own bookkeeping (a 10 s drill once took 200 s to send).
    limits = httpx.Limits(max_connections=_CONNECTIONS_PER_CLIENT, max_keepalive_connections=_CONNECTIONS_PER_CLIENT)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=ctx.base_url, timeout=30, limits=limits))
            for _ in range(_CLIENTS)
        ]
        tasks: set[asyncio.Task[None]] = set()
        total = int(rate * duration_s)
        start = loop.time()
        for i in range(total):
            due = start + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if outstanding >= _MAX_OUTSTANDING:
                dropped += 1
                continue
            outstanding += 1
            task = asyncio.create_task(one(clients[i % _CLIENTS], names[i % len(names)], i, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    await asyncio.sleep(0.5)  # the scan log's group commit is written before the answer; margin only
    return PeakReport(
        rate=rate,
        duration_s=duration_s,
        tiers=tiers,
        verified_ok=verified_ok,
        scan_rows=await _scan_rows(ctx) - scans_before,
        client_dropped=dropped,
        window_s=window_s,
        windows=windows,
        late_ms=late_ms,
        kinds=kinds,
    )


@contextlib.asynccontextmanager
async def _peak_mode(ctx: BenchContext, *, for_s: int) -> AsyncIterator[None]:
    """Peak mode on (at most ``for_s``), read by every worker, for the block; then off."""
    redis = ctx.redis()
    try:
        await set_peak(redis, True, for_s=for_s)
        await asyncio.sleep(2 * PEAK_POLL_S)  # every worker has read the switch
        yield
    finally:
        await set_peak(redis, False)
        await redis.aclose()


def run_peak_drill(
    ctx: BenchContext,
    *,
    rate: float,
    duration_s: int,
    steady_rate: float = 0.0,
    steady_s: int = 0,
    citizens: int = 200,
    peak_switch: bool = False,
) -> PeakReport:
    """Run the drill against a started system (see :class:`bench.system.System`).

    With ``steady_s``, the same mix runs first at ``steady_rate`` for that long, unmeasured: a
    city meets its peak with warm pools, prepared statements and caches, so the burst measures
    admission control rather than a cold start (``steady_s=0`` measures the cold start).
    With ``peak_switch`` the operator's switch is on for the burst (tier 2 shed outright, tier 1
    held to two fifths of the budget), as ``onecity peak on`` would turn it on before an
    announced peak, and off again afterwards.
    """

    async def steady_then_peak() -> PeakReport:
        people = await create_citizens(ctx, citizens, pool=21)
        payloads = await issue_codes(ctx, people)
        gate = {"Authorization": f"Bearer {await partner_token(ctx)}"}
        if steady_s > 0 and steady_rate > 0:
            await _drill(ctx, rate=steady_rate, duration_s=steady_s, people=people, payloads=payloads, gate=gate)
        async with _peak_mode(ctx, for_s=duration_s + 60) if peak_switch else contextlib.nullcontext():
            report = await _drill(ctx, rate=rate, duration_s=duration_s, people=people, payloads=payloads, gate=gate)
        report.steady_rate, report.steady_s = (steady_rate, steady_s) if steady_s > 0 else (0.0, 0)
        report.peak_switch = peak_switch
        return report

    return asyncio.run(steady_then_peak())


def render_peak(report: PeakReport) -> str:
    """The drill as Markdown (printed; written to RESULTS.md only when asked)."""
    lines = [
        f"## Peak drill: {report.rate:,.0f} req/s for {report.duration_s} s (open loop)"
        + (
            f", after {report.steady_s} s of the steady {report.steady_rate:,.0f} req/s (unmeasured)"
            if report.steady_s
            else ", on a cold system"
        ),
        "",
        f"Topology: {report.topology}."
        + (" Peak mode switched on for the burst (`onecity peak on`)." if report.peak_switch else ""),
        "",
        "| tier | sent | 2xx % | p50 ms | p99 ms | shed (503 overloaded) | other statuses | errors |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for tier, result in sorted(report.tiers.items()):
        other = ", ".join(f"{s}: {n}" for s, n in sorted(result.other.items())) or "-"
        lines.append(
            f"| {tier} | {result.sent:,} | {result.ok_pct:.1f} | {result.percentile(0.5):.1f} | "
            f"{result.percentile(0.99):.1f} | {result.shed:,} | {other} | {result.errors:,} |"
        )
    lines += [
        "",
        f"- acknowledged verifications: {report.verified_ok:,}; scan-log rows written: {report.scan_rows:,} "
        f"→ {'nothing lost' if report.nothing_lost else 'MISMATCH'}",
        f"- requests the client itself could not send (over {_MAX_OUTSTANDING} outstanding): {report.client_dropped:,}",
        f"- goal (tier 0 ≥ {GOAL_TIER0_OK_PCT} % 2xx, p99 ≤ {GOAL_TIER0_P99_MS:,.0f} ms, nothing lost): "
        + ("met" if report.goal_met else "not met"),
    ]
    if report.kinds:
        lines += [
            "",
            "By request:",
            "",
            "| request | tier | sent | 2xx % | p50 ms | p99 ms | shed | other statuses | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---|---:|",
        ]
        for name, tier, _ in MIX:
            kind = report.kinds.get(name)
            if kind is None:
                continue
            other = ", ".join(f"{s}: {n}" for s, n in sorted(kind.other.items())) or "-"
            lines.append(
                f"| {name} | {tier} | {kind.sent:,} | {kind.ok_pct:.1f} | {kind.percentile(0.5):.1f} | "
                f"{kind.percentile(0.99):.1f} | {kind.shed:,} | {other} | {kind.errors:,} |"
            )
    if report.windows:
        lines += [
            "",
            f"By {report.window_s} s window (requests by when they were due):",
            "",
            "| seconds | tier 0 sent | tier 0 not 2xx | tier 0 p99 ms | tier 1 shed | tier 2 shed "
            "| generator late, max ms |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for index, (window, late) in enumerate(zip(report.windows, report.late_ms, strict=True)):
            first = index * report.window_s
            last = min(report.duration_s, first + report.window_s)
            tier0 = window[0]
            lines.append(
                f"| {first}–{last} | {tier0.sent:,} | {tier0.sent - tier0.ok:,} | {tier0.percentile(0.99):.1f} | "
                f"{window[1].shed:,} | {window[2].shed:,} | {late:.0f} |"
            )
    return "\n".join(lines)
