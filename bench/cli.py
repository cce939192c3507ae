"""``python -m bench``: start the system, load each scenario, report.

One command does everything: a fresh database on the real PostgreSQL, the seven simulators
and the BFF (granian, ``--workers`` processes) started here, a warm-up, each scenario under
wrk, the results printed and written to ``bench/RESULTS.md``, and the system removed again.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from types import FrameType

from bench.context import BenchContext
from bench.cpu import sample_cpu, usage_between
from bench.peers import DEFAULT_PEERS, DEFAULT_SCRIPT, PeerError, PeerResult, read_peer_results, run_peers
from bench.report import Machine, RunReport, ScenarioResult, describe_machine, render_run, render_text, update_results
from bench.scenarios import BASELINE, SCENARIOS, Prepared, Scenario
from bench.servers import compare_servers
from bench.soak import SoakReport, measure_capacity, render_soak, run_soak
from bench.system import DEFAULT_ADMIN_DATABASE_URL, DEFAULT_REDIS_URL, TOPOLOGIES, StartError, System, SystemConfig
from bench.wrk import WrkError, WrkSettings, build_script, run_wrk

__all__ = ["Options", "main", "parse_options", "run_scenario"]

DEFAULT_OUTPUT = Path(__file__).with_name("RESULTS.md")
QUICK_DURATION_S = 5
#: Cores of "other" CPU use above which a run is flagged as measured on a busy machine.
_BUSY_MACHINE_CORES = 0.25
#: ``--compare-servers`` loads each server as the original choice was measured.
COMPARE_CONNECTIONS = 32
#: Seconds to wait after the load before reading server-side counters (in-flight requests end).
_SETTLE_S = 0.5


class Options(argparse.Namespace):
    """Parsed command line (see :func:`parse_options`)."""

    quick: bool
    duration: int
    connections: int
    threads: int
    workers: int
    warmup: int
    scenarios: list[str]
    compare_servers: bool
    output: Path | None
    keep: bool
    list: bool
    soak: bool
    soak_duration: int
    soak_rate: float | None
    soak_interval: float
    peak: bool
    peak_rate: float
    peak_factor: float
    peak_duration: int | None
    peak_steady: int | None
    peak_switch: bool
    topology: str
    pgbouncer: bool
    bundles: int | None
    bundle_rate: float
    bundle_load: str
    bundle_load_connections: int
    peers: bool
    peers_script: Path
    peers_results: Path | None


def _scenario_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
        )
    return names


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return value


def parse_options(argv: list[str] | None = None) -> Options:
    """Read the command line; ``--quick`` shortens what was not given explicitly."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Start OneCity on the real PostgreSQL and Redis, load it with wrk, write bench/RESULTS.md.",
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_DURATION_S} s per scenario (whole run < 2 min)")
    parser.add_argument("--duration", type=_positive, default=None, help="seconds of load per scenario (default 20)")
    parser.add_argument("--connections", type=_positive, default=64, help="wrk connections (default 64)")
    parser.add_argument(
        "--threads", type=int, choices=range(1, 9), default=1, metavar="1-8", help="wrk threads (default 1)"
    )
    parser.add_argument(
        "--workers", type=_positive, default=os.cpu_count() or 1, help="granian workers (default: one per core)"
    )
    parser.add_argument("--warmup", type=int, default=None, help="seconds of unmeasured load first (default 3)")
    parser.add_argument(
        "--scenarios",
        type=_scenario_list,
        default=list(SCENARIOS),
        help=f"comma-separated, from: {', '.join(SCENARIOS)} (default all; {BASELINE} always runs)",
    )
    parser.add_argument(
        "--compare-servers", action="store_true", help="also measure granian vs uvicorn on the trivial endpoint"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="results file (default bench/RESULTS.md; with --quick, written only when given)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs, scripts and data of the run")
    parser.add_argument(
        "--soak",
        action="store_true",
        help="instead of the scenarios: measure a mixed workload's capacity, then run it at half of it for "
        "--soak-duration seconds, sampling the BFF's memory (not part of CI)",
    )
    parser.add_argument(
        "--soak-duration", type=_positive, default=600, help="seconds of paced load of --soak (default 600)"
    )
    parser.add_argument(
        "--soak-rate", type=float, default=None, help="requests/s of --soak (default: half the measured capacity)"
    )
    parser.add_argument(
        "--soak-interval", type=float, default=5.0, help="seconds between memory samples of --soak (default 5)"
    )
    parser.add_argument(
        "--peak",
        action="store_true",
        help="instead of the scenarios: the peak drill, --peak-factor times the steady mixed load for "
        "--peak-duration seconds; reports tier 0 2xx %% and p99, tier 2 shed, scan rows = acknowledged verifications",
    )
    parser.add_argument("--peak-rate", type=float, default=30.0, help="steady mixed load, req/s (default 30)")
    parser.add_argument("--peak-factor", type=float, default=10.0, help="peak = steady x this (default 10)")
    parser.add_argument(
        "--peak-duration", type=_positive, default=None, help="seconds of peak load (default 60; --quick 10)"
    )
    parser.add_argument(
        "--peak-steady",
        type=int,
        default=None,
        help="seconds of the steady load first, unmeasured, as a city serves it before its peak "
        "(default 20; --quick 5; 0: the burst hits a cold system)",
    )
    parser.add_argument(
        "--peak-switch",
        action="store_true",
        help="turn peak mode on for the burst, as `onecity peak on` does before an announced peak "
        "(tier 2 shed outright, tier 1 held to two fifths of the budget)",
    )
    parser.add_argument(
        "--topology",
        choices=TOPOLOGIES,
        default="single",
        help="single: one Redis (ONECITY_BENCH_REDIS_URL); cluster: a 3-master Redis Cluster started for the run "
        "(redis-server from the PATH) with ONECITY_REDIS_CLUSTER=true (default single)",
    )
    parser.add_argument(
        "--pgbouncer",
        action="store_true",
        help="the BFF reaches PostgreSQL through a transaction-mode PgBouncer started for the run (pgbouncer "
        "from the PATH); the hall's jobs run in a worker process of their own on the direct URL",
    )
    parser.add_argument(
        "--bundles",
        type=_positive,
        default=None,
        metavar="N",
        help="instead of the scenarios: start N newborn bundles at --bundle-rate per second next to the "
        "--bundle-load scenario and report p50/p95 time from submission to completed (printed only)",
    )
    parser.add_argument("--bundle-rate", type=_rate, default=2.0, help="bundles started per second (default 2)")
    parser.add_argument(
        "--bundle-load",
        choices=["none", *SCENARIOS],
        default="hall_submit",
        help="scenario loading the server while the bundles run (default hall_submit; none: the bundles alone)",
    )
    parser.add_argument(
        "--bundle-load-connections", type=_positive, default=8, help="wrk connections of --bundle-load (default 8)"
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help=f"first run the peers' harness ({' '.join(DEFAULT_PEERS)}: node-oidc-provider on Redis, "
        "django-oauth-toolkit; ~15 min of the whole machine), then the scenarios; one table of both",
    )
    parser.add_argument(
        "--peers-script",
        type=Path,
        default=DEFAULT_SCRIPT,
        help="the peers' run_all.sh (default ../shared/peers/run_all.sh from the repository root)",
    )
    parser.add_argument(
        "--peers-results",
        type=Path,
        default=None,
        help="instead of running the peers' harness, take its results file from an earlier run in the same "
        "quiet window (/tmp/peers/results/results-<time>.jsonl); the report names the file",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    options = parser.parse_args(argv, namespace=Options())
    if options.duration is None:
        options.duration = QUICK_DURATION_S if options.quick else 20
    if options.warmup is None:
        options.warmup = 1 if options.quick else 3
    if options.output is None and not options.quick:
        options.output = DEFAULT_OUTPUT
    # The baseline runs first in every run: ratios are only meaningful within one run.
    options.scenarios = [BASELINE, *(name for name in options.scenarios if name != BASELINE)]
    return options


_START = time.monotonic()


def _say(message: str) -> None:
    print(f"[{time.monotonic() - _START:6.1f}s] {message}", file=sys.stderr, flush=True)


def _config(options: Options, workdir: Path, extra_env: Mapping[str, str] | None = None) -> SystemConfig:
    """The system of one run: the servers of the environment, ``--workers``, ``--topology``, ``--pgbouncer``."""
    return SystemConfig(
        os.environ.get("ONECITY_BENCH_DATABASE_URL", DEFAULT_ADMIN_DATABASE_URL),
        os.environ.get("ONECITY_BENCH_REDIS_URL", DEFAULT_REDIS_URL),
        options.workers,
        workdir,
        dict(extra_env or {}),
        topology=options.topology,
        pgbouncer=options.pgbouncer,
    )


@contextlib.contextmanager
def _scratch(options: Options, prefix: str) -> Iterator[Path]:
    """A directory for a run's logs, scripts and data, removed afterwards unless ``--keep``."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield workdir
    finally:
        if options.keep:
            _say(f"logs, scripts and data are kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _guarded(mode: Callable[[], int]) -> int:
    """Run one mode of the command: its exit status, 1 when a system did not start or a load
    run failed (said on stderr), 130 on Ctrl-C. A system that started is already stopped and
    its database dropped by then (:meth:`System.__exit__`)."""
    try:
        return mode()
    except (StartError, WrkError, PeerError, RuntimeError, OSError) as exc:
        print(f"bench: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run_scenario(system: System, scenario: Scenario, settings: WrkSettings) -> ScenarioResult:
    """Prepare ``scenario``'s data, load it with wrk and sample every process's CPU (also the
    baseline other tools report their ratios against, e.g. ``bench.sse``)."""
    workdir = system.config.workdir
    if scenario.connections is not None:
        settings = dataclasses.replace(settings, connections=scenario.connections)
    ctx = system.context(duration_s=settings.duration_s, connections=settings.connections)
    data_file: Path | None = None
    count = 0
    before: dict[str, int] = {}
    try:
        prepared = Prepared()
        if scenario.prepare is not None:
            count = scenario.item_count(settings.duration_s, settings.connections)
            _say(f"{scenario.name}: preparing" + (f" {count:,} items" if count else ""))
            made = asyncio.run(scenario.prepare(ctx, count))
            prepared = made if isinstance(made, Prepared) else Prepared(items=made)
            if prepared.items:
                data_file = workdir / f"{scenario.name}.data"
                data_file.write_text("\n".join(prepared.items) + "\n")
        script = workdir / f"{scenario.name}.lua"
        script.write_text(
            build_script(
                scenario.method,
                scenario.path,
                scenario.lua,
                content_type=scenario.content_type,
                expect=scenario.expect,
                lua_globals=prepared.lua_globals,
            )
        )
        if scenario.counters is not None:
            before = asyncio.run(scenario.counters(ctx))
        url = ctx.departments[scenario.server] if scenario.server else system.base_url
        _say(
            f"{scenario.name}: {settings.duration_s} s of load" + (f" on {scenario.server}" if scenario.server else "")
        )
        groups = system.process_groups()
        cpu_before, started = sample_cpu(groups, system.database_name), time.monotonic()
        result = run_wrk(url, script, settings, data_file=data_file, log=workdir / f"{scenario.name}.wrk")
        # The window includes wrk's start and its data loading: a fraction of a second in 5-20 s.
        cpu = usage_between(cpu_before, sample_cpu(groups, system.database_name), time.monotonic() - started)
        counters: dict[str, int] = {}
        if scenario.counters is not None:
            # Requests still in flight when wrk stopped finish on the server meanwhile.
            time.sleep(_SETTLE_S)
            after = asyncio.run(scenario.counters(ctx))
            counters = {name: after[name] - before.get(name, 0) for name in after}
    finally:
        if scenario.cleanup is not None:
            asyncio.run(scenario.cleanup(ctx))
    statuses = ", ".join(f"{status}: {n:,}" for status, n in sorted(result.statuses.items()))
    _say(f"{scenario.name}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.1f} ms, statuses {statuses or 'none'}")
    if result.first_error:
        _say(f"{scenario.name}: first failure: {result.first_error}")
    busy = ", ".join(f"{name} {cores:.2f}" for name, cores in cpu.cores.items())
    _say(f"{scenario.name}: cores busy: {busy}")
    return ScenarioResult(
        scenario.name,
        scenario.description,
        result,
        count,
        scenario.reference,
        cpu,
        targets=scenario.targets,
        counters=counters,
        acknowledged_counter=scenario.acknowledged_counter,
        connections=settings.connections,
        server=scenario.server,
    )


def run(options: Options) -> RunReport:
    """Start the system, measure every chosen scenario (and the servers), stop the system.

    Raises:
        StartError: When the system does not start.
        WrkError: When a load run fails.
    """
    machine = describe_machine()
    settings = WrkSettings(threads=options.threads, connections=options.connections, duration_s=options.duration)
    with _scratch(options, "onecity-bench-") as workdir:
        return _measure(options, settings, machine, _config(options, workdir))


def _measure(options: Options, settings: WrkSettings, machine: Machine, config: SystemConfig) -> RunReport:
    load = os.getloadavg()
    if load[0] > 0.5:
        # Another busy process shares the cores: the "other" CPU column will show how much.
        _say(f"warning: load average {load[0]:.2f} before the run; the numbers will be lower than this machine can do")
    with System(config) as system:
        _say(f"starting: database {system.database_name}, 7 simulators, BFF with {options.workers} worker(s)")
        system.start()
        _say(f"topology: {system.topology}")
        _say(f"ready at {system.base_url}")
        report = RunReport(
            started=datetime.now().astimezone(),
            machine=machine,
            workers=options.workers,
            wrk=settings,
            postgres=system.postgres_version,
            redis=system.redis_version,
            quick=options.quick,
            load_average=load,
            topology=system.topology,
        )
        _warm_up(system, settings, options.warmup)
        for name in options.scenarios:
            item = run_scenario(system, SCENARIOS[name], settings)
            report.results.append(item)
            if item.result.first_error:
                report.notes.append(f"{name}: first failed response: `{item.result.first_error[:200]}`")
            if item.result.exhausted:
                report.notes.append(
                    f"{name} ran out of prepared data: {item.result.exhausted:,} requests reused items "
                    "(raise its items_per_second); its numbers are not valid."
                )
        other = [item.cpu.cores["other"] for item in report.results if item.cpu is not None]
        if other and max(other) > _BUSY_MACHINE_CORES:
            report.notes.append(
                f"Other processes kept up to {max(other):.2f} of the {machine.cores} cores busy during the load: "
                "these numbers are lower than this machine can do."
            )
        if options.compare_servers:
            report.server_wrk = WrkSettings(1, COMPARE_CONNECTIONS, options.duration)
            _say(f"comparing ASGI servers, {options.duration} s each")
            report.servers = compare_servers(system, report.server_wrk, warmup_s=options.warmup, python=sys.executable)
        _say("stopping the system and dropping the database")
    return report


def _warm_up(system: System, settings: WrkSettings, seconds: int) -> None:
    if seconds > 0:
        # Opens every worker's PostgreSQL and Redis pools before anything is measured.
        _say(f"warming up for {seconds} s")
        workdir = system.config.workdir
        warm = workdir / "warmup.lua"
        warm.write_text(build_script("GET", "/health/ready", ""))
        run_wrk(
            system.base_url,
            warm,
            WrkSettings(settings.threads, settings.connections, seconds),
            log=workdir / "warmup.wrk",
        )


def run_soak_mode(options: Options) -> SoakReport:
    """``--soak``: measure the mix's capacity on one system, then soak a fresh one at half of it.

    Two systems, one after the other: the soak must not start with what the capacity pass
    left behind (an open breaker after the overload, a heap grown by it).

    Raises:
        StartError: When a system does not start.
        WrkError: When a load run fails.
    """
    machine = describe_machine()
    settings = WrkSettings(threads=options.threads, connections=options.connections, duration_s=options.duration)
    # The mix's partner token is fetched once and must outlive the whole pass.
    token_ttl = {"ONECITY_OIDC_CLIENT_TOKEN_TTL_S": str(options.soak_duration + 3600)}
    load = os.getloadavg()
    if load[0] > 0.5:
        _say(f"warning: load average {load[0]:.2f} before the run; the numbers will be lower than this machine can do")
    with _scratch(options, "onecity-bench-") as workdir:
        for part in ("capacity", "soak"):
            (workdir / part).mkdir()
            with System(_config(options, workdir / part, token_ttl)) as system:
                _say(f"{part}: database {system.database_name}, 7 simulators, BFF with {options.workers} worker(s)")
                system.start()
                _say(f"ready at {system.base_url}")
                _warm_up(system, settings, options.warmup)
                if part == "capacity":
                    capacity = measure_capacity(system, settings, say=_say)
                else:
                    report = run_soak(
                        system,
                        capacity=capacity,
                        machine=machine,
                        soak_duration_s=options.soak_duration,
                        rate=options.soak_rate,
                        interval_s=options.soak_interval,
                        say=_say,
                        load_average=load,
                    )
                _say("stopping the system and dropping the database")
        return report


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SIGTERM would end the process without running `finally` blocks; exiting through
    # SystemExit stops the servers and drops the database first.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 on success, 1 when the system or a load run failed."""
    options = parse_options(argv)
    if options.list:
        for scenario in SCENARIOS.values():
            print(f"{scenario.name:12} {scenario.description}")
        return 0
    signal.signal(signal.SIGTERM, _terminate)
    if options.soak:
        mode = _main_soak
    elif options.peak:
        mode = _main_peak
    elif options.bundles:
        mode = _main_bundles
    else:
        mode = _main_scenarios
    return _guarded(lambda: mode(options))


def _main_scenarios(options: Options) -> int:
    """The scenarios (after the peers' harness with ``--peers``): 0 once reported."""
    peers: list[PeerResult] = []
    if options.peers:
        # Right before OneCity, so both are measured in one window of the same machine.
        _say(f"peers: {options.peers_script} {' '.join(DEFAULT_PEERS)} (about 15 minutes)")
        peers = run_peers(options.peers_script, DEFAULT_PEERS)
    elif options.peers_results is not None:
        peers = read_peer_results(options.peers_results)
    report = run(options)
    if options.peers:
        report.peers = peers
        report.peers_command = f"../shared/peers/run_all.sh {' '.join(DEFAULT_PEERS)}"
    elif options.peers_results is not None:
        report.peers = peers
        report.peers_command = (
            f"../shared/peers/run_all.sh {' '.join(DEFAULT_PEERS)}` earlier in the same quiet window, "
            f"results file `{options.peers_results}"
        )
    print()
    print(render_text(report))
    if options.output is not None:
        update_results(options.output, render_run(report))
        print(f"\nwrote {options.output}")
    return 0


def _main_soak(options: Options) -> int:
    """``--soak``: 0 when the soak had no errors, 1 otherwise."""
    report = run_soak_mode(options)
    section = render_soak(report)
    print()
    print(section)
    if options.output is not None:
        update_results(options.output, section, block="soak")
        print(f"wrote {options.output}")
    return 0 if report.passed else 1


def _main_peak(options: Options) -> int:
    """``--peak``: 0 when the goal was met (:attr:`bench.peak.PeakReport.goal_met`), 1 otherwise."""
    from bench.peak import render_peak, run_peak_drill

    duration = options.peak_duration or (10 if options.quick else 60)
    steady = options.peak_steady if options.peak_steady is not None else (5 if options.quick else 20)
    rate = options.peak_rate * options.peak_factor
    with _scratch(options, "onecity-peak-") as workdir, System(_config(options, workdir)) as system:
        _say(f"peak drill: database {system.database_name}, BFF with {options.workers} worker(s)")
        system.start()
        _say(f"ready at {system.base_url}; {options.peak_rate:,.0f} req/s for {steady} s, then {rate:,.0f} req/s")
        ctx = system.context(duration_s=duration, connections=options.connections)
        report = run_peak_drill(
            ctx,
            rate=rate,
            duration_s=duration,
            steady_rate=options.peak_rate,
            steady_s=steady,
            peak_switch=options.peak_switch,
        )
        report.topology = system.topology
        _say("stopping the system and dropping the database")
    # Printed only: a drill's numbers depend on the machine's load; RESULTS.md is edited by hand.
    print()
    print(render_peak(report))
    return 0 if report.goal_met else 1


def _main_bundles(options: Options) -> int:
    """``--bundles N``: 0 when every bundle completed with one case per step, 1 otherwise."""
    from bench.hall import BUNDLE_FLOOR_S, BundleReport, prepare_bundle_drill, render_bundles, run_bundle_drill

    count = options.bundles or 0
    # Submitting takes N / rate seconds; the last bundle needs the floor and some more after it.
    span = math.ceil(count / options.bundle_rate)
    with _scratch(options, "onecity-bundles-") as workdir, System(_config(options, workdir)) as system:
        _say(f"bundles: database {system.database_name}, 7 simulators, BFF with {options.workers} worker(s)")
        system.start()
        _say(f"ready at {system.base_url}; topology: {system.topology}")
        settings = WrkSettings(threads=options.threads, connections=options.connections, duration_s=span)
        _warm_up(system, settings, options.warmup)
        ctx = system.context(duration_s=span, connections=options.connections)
        citizens = asyncio.run(prepare_bundle_drill(ctx, count))
        report = BundleReport(count, options.bundle_rate, topology=system.topology)
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            background = None
            if options.bundle_load != "none":
                background = _start_background(system, options, duration_s=span + int(BUNDLE_FLOOR_S), pool=pool)
            _say(f"starting {count} newborn bundles at {options.bundle_rate:g}/s")
            run_bundle_drill(ctx, citizens, rate=options.bundle_rate, timeout_s=_BUNDLE_WAIT_S, report=report)
            if background is not None:
                item = background.result()
                r = item.result
                report.background = (
                    f"{item.name} at -c{item.connections} for {r.duration_s:.0f} s, {r.rps:,.0f} req/s, "
                    f"p99 {r.p99_ms:.0f} ms, {r.errors:,} errors"
                )
        _say("stopping the system and dropping the database")
    # Printed only, as the peak drill: the lead copies a quiet machine's numbers to RESULTS.md.
    print()
    print(render_bundles(report))
    return 0 if report.passed else 1


#: Longest ``--bundles`` waits, after the last submission, for every bundle to settle.
_BUNDLE_WAIT_S = 300.0


def _start_background(
    system: System, options: Options, *, duration_s: int, pool: concurrent.futures.ThreadPoolExecutor
) -> concurrent.futures.Future[ScenarioResult]:
    """Run ``--bundle-load`` in ``pool``'s thread; return once its data is prepared, so the
    bundles start when the load does."""
    scenario = SCENARIOS[options.bundle_load]
    ready = threading.Event()
    original = scenario.prepare

    async def prepare(ctx: BenchContext, count: int) -> list[str] | Prepared:
        try:
            assert original is not None
            return await original(ctx, count)
        finally:
            ready.set()

    if original is not None:
        scenario = dataclasses.replace(scenario, prepare=prepare)
    else:
        ready.set()
    settings = WrkSettings(options.threads, options.bundle_load_connections, duration_s)
    future = pool.submit(run_scenario, system, scenario, settings)
    while not ready.wait(0.2):
        if future.done():
            future.result()  # raises what the preparation raised
            break
    return future
