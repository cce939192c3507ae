"""``python -m bench --soak``: a long run of a mixed workload at half its capacity.

The mix is what the city's app and its partners do together (:data:`MIX`): home screens,
transit codes issued, verified once by a gate (each verified code is one the run has just
issued, taken from the issue's answer) and shown as images, refresh-token rotations, partner
tokens and introspections, login codes sent, health probes. One wrk script plays it in a
fixed interleaved order.

1. Capacity: the mix unpaced at the run's connections for ``--duration`` seconds.
2. Soak: the same mix paced at half that rate (or ``--soak-rate``) for ``--soak-duration``
   seconds. wrk has no rate limit of its own (wrk2 has, but is not packaged): the script's
   ``delay()`` holds each request until its slot on a fixed schedule, from a monotonic clock
   read through LuaJIT's FFI. Latency is measured from the moment a request is sent.

Every few seconds of the soak the resident memory (``VmRSS``) of every process of the BFF
(granian's main process and its workers) is read from ``/proc``. The soak passes when no
request failed; the memory verdict compares each process with itself after a warm-up minute
(caches and pools fill first) and allows 10 % growth.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import redis

from bench.context import BenchContext
from bench.cpu import CpuUsage, sample_cpu, usage_between
from bench.fixtures import (
    Citizen,
    basic_auth,
    create_citizens,
    create_sessions,
    ensure_demo_partner,
    gather_bounded,
    issue_codes,
    partner_token,
    phone_number,
    send_otp,
)
from bench.report import Machine
from bench.scenarios import warm_departments
from bench.system import System
from bench.wrk import LuaValue, WrkResult, WrkSettings, build_script, run_wrk

__all__ = [
    "MIX",
    "RSS_TOLERANCE",
    "Capacity",
    "ProcessMemory",
    "SoakReport",
    "measure_capacity",
    "mix_sequence",
    "render_soak",
    "run_soak",
    "soak_script",
]

#: Requests of each kind per round of the mix (20 requests).
MIX: tuple[tuple[str, int], ...] = (
    ("home", 4),
    ("code_issue", 3),
    ("code_verify", 3),
    ("code_image", 2),
    ("refresh", 2),
    ("introspect", 2),
    ("trivial", 2),
    ("client_credentials", 1),
    ("otp_send", 1),
)
#: Allowed growth of a process's resident memory from the end of the warm-up to any later sample.
RSS_TOLERANCE = 0.10
#: Upper bound of the unpaced mix's rate on this kind of machine, to size single-use data.
_CAPACITY_GUESS_RPS = 3000
_CITIZENS = 300
_CITIZEN_POOL = 10
_WARMUP_S = 60.0

_CLOCK = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local clock_buffer = ffi.new("bench_timespec")
local function now_ms()
   ffi.C.clock_gettime(1, clock_buffer)  -- CLOCK_MONOTONIC
   return tonumber(clock_buffer.tv_sec) * 1000 + tonumber(clock_buffer.tv_nsec) / 1e6
end
"""

_MIX_LUA = """
local json, form = "application/json", "application/x-www-form-urlencoded"
local turn = nil
local function citizen()
   turn = (turn or id * 7919) % #tokens + 1
   return "Bearer " .. tokens[turn]
end

-- Transit codes this thread was issued, oldest first: each is verified (consumed) once.
local codes, head, tail = {}, 1, 0
local otp_sent, step = 0, 0

local build = {}
build.trivial = function() return wrk.format("GET", "/health/live", {}) end
build.home = function() return wrk.format("GET", "/v1/me/home", {["Authorization"] = citizen()}) end
build.code_issue = function()
   return wrk.format("POST", "/v1/me/codes/transit", {["Authorization"] = citizen()})
end
build.code_image = function()
   return wrk.format("GET", "/v1/me/codes/transit/image?format=png", {["Authorization"] = citizen()})
end
build.code_verify = function()
   while head <= tail do
      local code = codes[head]
      codes[head] = nil
      head = head + 1
      if now_ms() - code[2] < 40000 then  -- transit codes live 60 s
         return wrk.format("POST", "/v1/codes/verify",
            {["Authorization"] = "Bearer " .. partner_token, ["Content-Type"] = json},
            '{"payload":"' .. code[1] .. '","consume":true}')
      end
      count("code too old to verify")
   end
   return nil
end
build.refresh = function()
   return wrk.format("POST", "/v1/auth/refresh", {["Content-Type"] = json},
      '{"refresh_token":"' .. next_item() .. '"}')
end
build.client_credentials = function()
   return wrk.format("POST", "/oauth/token", {["Authorization"] = partner_basic, ["Content-Type"] = form},
      "grant_type=client_credentials")
end
build.introspect = function()
   return wrk.format("POST", "/oauth/introspect", {["Authorization"] = partner_basic, ["Content-Type"] = form},
      "token=" .. partner_token)
end
build.otp_send = function()
   -- A new phone each time (one phone may ask once a minute), as the otp_send scenario does;
   -- each pass starts at its own otp_first, so the soak never meets the capacity pass's phones.
   otp_sent = otp_sent + 1
   return wrk.format("POST", "/v1/auth/otp", {["Content-Type"] = json},
      '{"phone":"13' .. (id - 1) .. string.format("%08d", tonumber(otp_first) + otp_sent) .. '"}')
end

function request()
   step = step % #sequence + 1
   local kind = sequence[step]
   local req = build[kind]()
   if req == nil then  -- no issued code to verify yet: issue one
      kind = "code_issue"
      req = build.code_issue()
   end
   count(kind)
   return req
end

function on_response(status, headers, body)
   local payload = string.match(body, '"payload":"(OC1:[^"]+)"')
   if payload ~= nil then
      tail = tail + 1
      codes[tail] = {payload, now_ms()}
   end
end

function check(status, headers, body)
   if string.find(body, '"valid":false', 1, true) then return "code not valid" end
   if string.find(body, '"active":false', 1, true) then return "token not active" end
   if string.find(body, '"state":"unavailable"', 1, true) then return "home section unavailable" end
end
"""

_PACING_LUA = """
-- Paced: one request every interval_ms on a fixed schedule (per thread), whichever connection
-- is free. A schedule that fell behind by more than a second restarts from now.
local next_at = nil
function delay()
   local now = now_ms()
   if next_at == nil or next_at < now - 1000 then
      next_at = now
   end
   local wait = next_at - now
   next_at = next_at + tonumber(interval_ms)
   return math.max(0, math.floor(wait))
end
"""


def mix_sequence(mix: Sequence[tuple[str, int]] = MIX) -> list[str]:
    """One round of the mix, interleaved (smooth weighted round-robin): each kind is spread
    over the round instead of coming in a block."""
    total = sum(weight for _, weight in mix)
    current = dict.fromkeys((kind for kind, _ in mix), 0)
    sequence = []
    for _ in range(total):
        for kind, weight in mix:
            current[kind] += weight
        chosen = max(current, key=lambda k: current[k])
        current[chosen] -= total
        sequence.append(chosen)
    return sequence


def soak_script(lua_globals: dict[str, LuaValue], *, interval_ms: float | None, otp_first: int = 0) -> str:
    """The mix's wrk script; paced to one request per ``interval_ms`` (per thread) if given.

    Args:
        lua_globals: The mix's data (``tokens``, ``partner_basic``, ``partner_token``).
        interval_ms: Milliseconds between two requests of one wrk thread; ``None``: unpaced.
        otp_first: Where this pass's login-code phones start (below 10^8 minus its requests).
    """
    values: dict[str, LuaValue] = {**lua_globals, "sequence": mix_sequence(), "otp_first": str(otp_first)}
    lua = _CLOCK + _MIX_LUA
    if interval_ms is not None:
        values["interval_ms"] = f"{interval_ms:.6f}"
        lua += _PACING_LUA
    return build_script("GET", "/health/live", lua, lua_globals=values)


# --- memory ------------------------------------------------------------------------------------


def _group_members(leader: int) -> list[int]:
    """Processes in the process group ``leader`` leads (granian's main process and workers)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[2]) == leader:
            members.append(int(entry.name))
    return sorted(members)


def _rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


@dataclass(slots=True)
class ProcessMemory:
    """Resident memory samples of one process: ``(seconds into the soak, KiB)``."""

    pid: int
    role: str
    samples: list[tuple[float, int]] = field(default_factory=list)

    def baseline(self, warmup_s: float) -> tuple[float, int] | None:
        """The first sample after the warm-up (or the last one, if the process ended before)."""
        after = [s for s in self.samples if s[0] >= warmup_s]
        return after[0] if after else (self.samples[-1] if self.samples else None)

    def growth(self, warmup_s: float) -> tuple[float, float]:
        """Growth from the baseline to the last sample and to the largest later sample."""
        base = self.baseline(warmup_s)
        if base is None or base[1] == 0:
            return 0.0, 0.0
        later = [kib for t, kib in self.samples if t >= base[0]]
        return later[-1] / base[1] - 1, max(later) / base[1] - 1

    def within(self, warmup_s: float, tolerance: float = RSS_TOLERANCE) -> bool:
        """Whether no sample after the baseline exceeds it by more than ``tolerance``."""
        return self.growth(warmup_s)[1] <= tolerance


class _MemorySampler:
    """Samples the BFF's processes; a worker that appears later (a restart) is noted."""

    def __init__(self, leader: int) -> None:
        self.leader = leader
        self.started = time.monotonic()
        self.processes: dict[int, ProcessMemory] = {}

    def __call__(self) -> None:
        now = time.monotonic() - self.started
        for pid in _group_members(self.leader):
            kib = _rss_kib(pid)
            if kib is None:
                continue
            if pid not in self.processes:
                role = (
                    "granian main"
                    if pid == self.leader
                    else f"worker {sum(p != self.leader for p in self.processes) + 1}"
                )
                if now > 1 and pid != self.leader:
                    role += f" (appeared at {now:.0f} s: a restart?)"
                self.processes[pid] = ProcessMemory(pid, role)
            self.processes[pid].samples.append((now, kib))


# --- the run -----------------------------------------------------------------------------------


@dataclass(slots=True)
class SoakReport:
    """What ``--soak`` measured."""

    started: datetime
    machine: Machine
    workers: int
    postgres: str
    redis: str
    capacity: WrkResult
    capacity_wrk: WrkSettings
    capacity_cpu: CpuUsage
    rate: float
    rate_source: str
    soak: WrkResult
    soak_wrk: WrkSettings
    soak_cpu: CpuUsage
    warmup_s: float
    interval_s: float
    processes: list[ProcessMemory]
    redis_keys: tuple[int, int]
    database_mib: tuple[float, float]
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Zero failed requests in the soak (and no data reused)."""
        return self.soak.errors == 0 and self.soak.exhausted == 0

    @property
    def memory_ok(self) -> bool:
        """Every process stayed within :data:`RSS_TOLERANCE` of itself after the warm-up."""
        return all(p.within(self.warmup_s) for p in self.processes)


async def _prepare_mix(ctx: BenchContext, token_ttl_s: int) -> dict[str, LuaValue]:
    """The mix's reusable data, as globals of its script."""
    await warm_departments(ctx)
    await send_otp(ctx, phone_number("14", 0))  # the SMS simulator fetches the BFF's keys now
    citizens = await create_citizens(ctx, _CITIZENS, pool=_CITIZEN_POOL, token_ttl_s=token_ttl_s)
    await issue_codes(ctx, citizens)  # pseudonyms registered, cards cached, a current code each
    # Each citizen has opened the app before: the departments' answers are cached, and the run
    # measures the steady state, not 300 first visits in its first seconds.
    async with ctx.http() as http:

        async def home(citizen: Citizen) -> None:
            response = await http.get("/v1/me/home", headers={"Authorization": f"Bearer {citizen.access_token}"})
            response.raise_for_status()

        await gather_bounded([functools.partial(home, c) for c in citizens], limit=8)
    client_id, secret = await ensure_demo_partner(ctx)
    return {
        "tokens": [c.access_token for c in citizens],
        "partner_basic": basic_auth(client_id, secret),
        "partner_token": await partner_token(ctx),
    }


def _refresh_tokens(system: System, settings: WrkSettings, rate: float, first: int) -> Path:
    """Single-use refresh tokens for the mix's share of ``rate`` over ``settings.duration_s``."""
    share = dict(MIX)["refresh"] / sum(weight for _, weight in MIX)
    count = math.ceil(share * rate * settings.duration_s * 1.2) + 4 * settings.connections
    ctx = system.context(duration_s=settings.duration_s, connections=settings.connections)
    tokens = asyncio.run(create_sessions(ctx, count, phone_prefix="19", first=first))
    path = system.config.workdir / f"soak-refresh-{first}.data"
    path.write_text("\n".join(tokens) + "\n")
    return path


def _redis_keys(url: str) -> int:
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        return int(client.dbsize())
    finally:
        client.close()


def _database_mib(ctx: BenchContext) -> float:
    async def size() -> float:
        conn = await ctx.connect()
        try:
            value: int = await conn.fetchval("SELECT pg_database_size(current_database())")
        finally:
            await conn.close()
        return value / 1024 / 1024

    return asyncio.run(size())


@dataclass(frozen=True, slots=True)
class Capacity:
    """The unpaced mix: what it reached and where the CPU went."""

    result: WrkResult
    settings: WrkSettings
    cpu: CpuUsage


def _prepare(system: System, duration_s: int) -> dict[str, LuaValue]:
    ctx = system.context(duration_s=duration_s, connections=64)
    return asyncio.run(_prepare_mix(ctx, token_ttl_s=duration_s + 1800))


def measure_capacity(system: System, settings: WrkSettings, *, say: Callable[[str], None]) -> Capacity:
    """Run the mix unpaced for ``settings.duration_s`` seconds on a started system."""
    say(f"soak: preparing {_CITIZENS} citizens, the demo partner and its token")
    mix = _prepare(system, settings.duration_s)
    say(f"soak: capacity of the mix, {settings.duration_s} s unpaced at -c{settings.connections}")
    data = _refresh_tokens(system, settings, _CAPACITY_GUESS_RPS, first=0)
    script = system.config.workdir / "soak-capacity.lua"
    script.write_text(soak_script(mix, interval_ms=None))
    groups = system.process_groups()
    before, t0 = sample_cpu(groups, system.database_name), time.monotonic()
    log = system.config.workdir / "soak-capacity.wrk"
    measured = run_wrk(system.base_url, script, settings, data_file=data, log=log)
    cpu = usage_between(before, sample_cpu(groups, system.database_name), time.monotonic() - t0)
    say(f"soak: capacity {measured.rps:,.0f} req/s, {measured.errors:,} errors")
    return Capacity(measured, settings, cpu)


def run_soak(
    system: System,
    *,
    capacity: Capacity,
    machine: Machine,
    soak_duration_s: int,
    rate: float | None,
    interval_s: float,
    say: Callable[[str], None],
    load_average: tuple[float, float, float],
) -> SoakReport:
    """Soak a started system (a fresh one: nothing left from the capacity pass, such as an open
    breaker or a grown heap) at half the capacity, sampling the BFF's memory.

    Args:
        system: The started system.
        capacity: The capacity pass (measured on another system of the same machine).
        machine: Where it runs.
        soak_duration_s: Seconds of paced load.
        rate: Requests/s of the soak; default half the measured capacity.
        interval_s: Seconds between memory samples.
        say: A ``print``-like progress function.
        load_average: The machine's load average before the run.
    """
    started = datetime.now().astimezone()
    workdir = system.config.workdir
    leader = system.bff_pid
    if leader is None:
        raise RuntimeError("the BFF is not running")
    say(f"soak: preparing {_CITIZENS} citizens, the demo partner and its token")
    mix = _prepare(system, soak_duration_s)
    ctx = system.context(duration_s=soak_duration_s, connections=capacity.settings.connections)
    measured = capacity.result
    target = rate if rate is not None else measured.rps / 2
    source = "given (--soak-rate)" if rate is not None else "half the measured capacity"
    soak_wrk = dataclasses.replace(capacity.settings, duration_s=soak_duration_s)
    data = _refresh_tokens(system, soak_wrk, target, first=100_000_000)
    script = workdir / "soak.lua"
    script.write_text(soak_script(mix, interval_ms=1000 * soak_wrk.threads / target, otp_first=50_000_000))
    keys_before, db_before = _redis_keys(ctx.redis_url), _database_mib(ctx)
    sampler = _MemorySampler(leader)
    say(f"soak: {soak_duration_s} s at {target:,.0f} req/s; memory sampled every {interval_s:g} s")
    last_said = [time.monotonic()]

    def monitor() -> None:
        sampler()
        if time.monotonic() - last_said[0] >= 60:
            last_said[0] = time.monotonic()
            rss = ", ".join(
                f"{p.role.split(' (')[0]} {p.samples[-1][1] / 1024:.0f} MiB" for p in sampler.processes.values()
            )
            say(f"soak: {time.monotonic() - sampler.started:.0f} s: {rss}")

    groups = system.process_groups()
    before, t0 = sample_cpu(groups, system.database_name), time.monotonic()
    soaked = run_wrk(
        system.base_url,
        script,
        soak_wrk,
        data_file=data,
        log=workdir / "soak.wrk",
        monitor=monitor,
        monitor_interval_s=interval_s,
    )
    soak_cpu = usage_between(before, sample_cpu(groups, system.database_name), time.monotonic() - t0)
    sampler()
    warmup = min(_WARMUP_S, soak_duration_s / 5)
    result = SoakReport(
        started=started,
        machine=machine,
        workers=system.config.workers,
        postgres=system.postgres_version,
        redis=system.redis_version,
        capacity=measured,
        capacity_wrk=capacity.settings,
        capacity_cpu=capacity.cpu,
        rate=target,
        rate_source=source,
        soak=soaked,
        soak_wrk=soak_wrk,
        soak_cpu=soak_cpu,
        warmup_s=warmup,
        interval_s=interval_s,
        processes=list(sampler.processes.values()),
        redis_keys=(keys_before, _redis_keys(ctx.redis_url)),
        database_mib=(db_before, _database_mib(ctx)),
        load_average=load_average,
    )
    for name, result_of in (("capacity pass", measured), ("soak", soaked)):
        if result_of.first_error:
            result.notes.append(f"{name}: first failed response: `{result_of.first_error[:200]}`")
        if result_of.exhausted:
            result.notes.append(f"{name} ran out of refresh tokens: {result_of.exhausted:,} reused")
    return result


# --- the results -------------------------------------------------------------------------------


def _mib(kib: int) -> str:
    return f"{kib / 1024:,.1f}"


def render_soak(report: SoakReport) -> str:
    """The soak as a Markdown section."""
    m = report.machine
    seconds = report.soak_wrk.duration_s
    length = f"{seconds / 60:g} min" if seconds % 60 == 0 else f"{seconds} s"
    mix = ", ".join(f"{kind} {weight}" for kind, weight in MIX)
    cap, soak = report.capacity, report.soak
    lines = [
        f"### {report.started:%Y-%m-%d %H:%M %Z} (soak, {length})",
        "",
        f"- Machine: {m.cpu_model}, {m.cores} cores, {m.memory_gib:.1f} GiB RAM; {m.system}",
        f"- Software: Python {m.python}, granian {m.granian}, PostgreSQL {report.postgres}, Redis {report.redis}, "
        f"{m.wrk}; commit {m.commit}",
        f"- Server: `onecity serve --workers {report.workers}` (granian); PostgreSQL, Redis, the 7 simulators and "
        "wrk on the same machine",
        f"- Load average before the run: {report.load_average[0]:.2f} (1 min), {report.load_average[1]:.2f} (5 min)",
        f"- Mix, per round of {sum(w for _, w in MIX)} requests (interleaved): {mix}. Each `code_verify` "
        "consumes a code the run was issued a moment before; `refresh` tokens are single-use; citizens "
        f"({_CITIZENS}, L3) and the partner are reused.",
        f"- Capacity: the mix unpaced, `wrk -t{report.capacity_wrk.threads} -c{report.capacity_wrk.connections} "
        f"-d{report.capacity_wrk.duration_s}s`. Soak: {report.rate:,.0f} req/s ({report.rate_source}), "
        f"`-c{report.soak_wrk.connections} -d{report.soak_wrk.duration_s}s`, paced by the script's `delay()`.",
        "",
        "| pass | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | BFF cores | other processes' cores "
        "| BFF CPU ms/request |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r, cpu in (("capacity", cap, report.capacity_cpu), ("soak", soak, report.soak_cpu)):
        lines.append(
            f"| {name} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p95_ms:.2f} | {r.p99_ms:.2f} | {r.max_ms:,.0f} "
            f"| {r.errors:,} | {cpu.cores['bff']:.2f} | {cpu.cores['other']:.2f} "
            f"| {cpu.cpu_ms_per_request('bff', r.requests):.2f} |"
        )
    if cap.counts:
        lines += [
            "",
            "Capacity pass, requests by kind: " + ", ".join(f"{k} {n:,}" for k, n in sorted(cap.counts.items())),
        ]
    sent = ", ".join(f"{kind} {n:,}" for kind, n in sorted(soak.counts.items()))
    statuses = ", ".join(f"{status}: {n:,}" for status, n in sorted(soak.statuses.items()))
    verdict = "**pass: zero errors**" if report.passed else f"**FAIL: {soak.errors:,} errors**"
    lines += [
        "",
        f"Soak: {verdict} ({soak.requests:,} answers; statuses {statuses}; {soak.check_errors:,} wrong bodies, "
        f"{soak.socket_errors:,} socket errors/timeouts). Requests sent by kind: {sent}.",
        "",
        f"Resident memory (VmRSS) of the BFF's processes, sampled every {report.interval_s:g} s; the baseline is "
        f"the first sample after {report.warmup_s:.0f} s of warm-up; a process passes when no later sample "
        f"exceeds it by more than {RSS_TOLERANCE:.0%}:",
        "",
        "| process | MiB at start | MiB after warm-up | MiB at the end | MiB max | end vs warm-up | max vs warm-up "
        "| within 10% |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for p in report.processes:
        base = p.baseline(report.warmup_s)
        if base is None:
            continue
        last, peak = p.growth(report.warmup_s)
        lines.append(
            f"| {p.role} (pid {p.pid}) | {_mib(p.samples[0][1])} | {_mib(base[1])} | {_mib(p.samples[-1][1])} "
            f"| {_mib(max(k for _, k in p.samples))} | {last:+.1%} | {peak:+.1%} "
            f"| {'yes' if p.within(report.warmup_s) else '**no**'} |"
        )
    keys, db = report.redis_keys, report.database_mib
    lines += [
        "",
        f"Memory: {'**every process within 10%**' if report.memory_ok else '**growth above 10%**'}. "
        f"Redis keys in the bench database: {keys[0]:,} before the soak, {keys[1]:,} after; "
        f"PostgreSQL database: {db[0]:,.0f} MiB before, {db[1]:,.0f} MiB after.",
    ]
    if report.notes:
        lines += ["", *[f"- {note}" for note in report.notes]]
    return "\n".join(lines) + "\n"
