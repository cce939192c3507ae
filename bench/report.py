"""Results: the machine description, the printed table and ``bench/RESULTS.md``.

``RESULTS.md`` keeps the latest run between two markers at the top; a new run moves the
previous one, unchanged, to the top of the History section below, so nothing measured
earlier is ever lost.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path

from bench.cpu import CATEGORIES, CpuUsage
from bench.peers import PeerResult
from bench.scenarios import BASELINE, NODE_OIDC, Reference, Target
from bench.wrk import WrkResult, WrkSettings

__all__ = [
    "LATEST_END",
    "LATEST_START",
    "SOAK_END",
    "SOAK_START",
    "Machine",
    "RunReport",
    "ScenarioResult",
    "ServerResult",
    "describe_machine",
    "evaluate_target",
    "render_run",
    "render_text",
    "update_results",
]

LATEST_START = "<!-- bench:latest:start -->"
LATEST_END = "<!-- bench:latest:end -->"
SOAK_START = "<!-- bench:soak:start -->"
SOAK_END = "<!-- bench:soak:end -->"
_HISTORY = "<!-- bench:history -->"
_BLOCKS = {"latest": (LATEST_START, LATEST_END), "soak": (SOAK_START, SOAK_END)}


@dataclass(frozen=True, slots=True)
class Machine:
    """Where the numbers were measured."""

    cpu_model: str
    cores: int
    memory_gib: float
    system: str
    python: str
    granian: str
    wrk: str
    commit: str


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """One scenario's measurement."""

    name: str
    description: str
    result: WrkResult
    prepared: int
    reference: Reference | None = None
    cpu: CpuUsage | None = None
    targets: tuple[Target, ...] = ()
    counters: dict[str, int] = field(default_factory=dict)  # what the load added, per counter
    acknowledged_counter: str | None = None
    connections: int | None = None  # wrk connections it ran with
    server: str | None = None  # a department simulator loaded instead of the BFF


@dataclass(frozen=True, slots=True)
class ServerResult:
    """One ASGI server configuration on the trivial endpoint."""

    label: str
    result: WrkResult
    cpu: CpuUsage | None = None


@dataclass(slots=True)
class RunReport:
    """Everything one ``python -m bench`` run measured."""

    started: datetime
    machine: Machine
    workers: int
    wrk: WrkSettings
    postgres: str
    redis: str
    quick: bool
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)
    results: list[ScenarioResult] = field(default_factory=list)
    #: What the BFF ran against (``bench.system.System.topology``).
    topology: str = "single Redis"
    servers: list[ServerResult] = field(default_factory=list)
    server_wrk: WrkSettings | None = None
    notes: list[str] = field(default_factory=list)
    peers: list[PeerResult] = field(default_factory=list)  # --peers: measured right before
    peers_command: str = ""

    def peer_result(self, server: str, scenario: str) -> PeerResult | None:
        """What peer ``server`` measured for ``scenario`` in this run (``--peers``), if anything."""
        return next((p for p in self.peers if p.server == server and p.scenario == scenario), None)

    def baseline_rps(self) -> float | None:
        """Requests/s of the trivial endpoint in this run."""
        item = self.result_of(BASELINE)
        return item.result.rps if item is not None else None

    def result_of(self, name: str) -> ScenarioResult | None:
        """The scenario ``name`` measured in this run, if it ran."""
        return next((item for item in self.results if item.name == name), None)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _command_output(*command: str) -> str:
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout or done.stderr).strip()


def describe_machine() -> Machine:
    """CPU model, cores, memory, versions and the commit the run measured."""
    model = re.search(r"^model name\s*:\s*(.+)$", _read("/proc/cpuinfo"), re.MULTILINE)
    memory = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.MULTILINE)
    wrk_version = _command_output(shutil.which("wrk") or "wrk", "--version").splitlines()
    commit = _command_output("git", "rev-parse", "--short", "HEAD") or "unknown"
    if _command_output("git", "status", "--porcelain"):
        commit += " + uncommitted changes"
    return Machine(
        cpu_model=model.group(1).strip() if model else platform.processor() or "unknown",
        cores=os.cpu_count() or 1,
        memory_gib=int(memory.group(1)) / 1024 / 1024 if memory else 0.0,
        system=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        granian=metadata.version("granian"),
        wrk=wrk_version[0].split(" [")[0] if wrk_version else "unknown",
        commit=commit,
    )


def _per_core(report: RunReport, rps: float) -> float:
    return rps / max(1, report.workers)


def _ratio(report: RunReport, rps: float) -> str:
    baseline = report.baseline_rps()
    return f"{rps / baseline:.3f}" if baseline else "-"


def _errors(result: WrkResult) -> str:
    text = f"{result.errors:,}"
    if result.errors and result.requests:
        text += f" ({100 * result.errors / result.requests:.1f}%"
        text += f"; {result.check_errors:,} wrong bodies)" if result.check_errors else ")"
    return text


def evaluate_target(report: RunReport, item: ScenarioResult, target: Target) -> tuple[str, bool | None]:
    """What ``item`` measured for ``target`` (as text) and whether the target is met
    (``None``: not measurable in this run, e.g. the baseline it needs did not run)."""
    r = item.result
    value: float
    if target.metric == "per_worker_rps":
        value = _per_core(report, r.rps)
        text = f"{value:,.0f}/s per worker"
    elif target.metric == "x_trivial":
        baseline = report.baseline_rps()
        if not baseline:
            return "no trivial in this run", None
        value = r.rps / baseline
        text = f"{value:.3f} × trivial"
    elif target.metric == "x_peer":
        peer = report.peer_result(target.peer or "", item.name)
        if peer is None or not peer.rps:
            return f"no {target.peer} {item.name} in this run (--peers)", None
        value = r.rps / peer.rps
        text = f"{r.rps:,.0f} ÷ {peer.rps:,.0f} = {value:.2f} × {target.peer}"
    elif target.metric == "bff_cpu_ms":
        if item.cpu is None:
            return "CPU not measured", None
        value = item.cpu.cpu_ms_per_request("bff", r.requests)
        text = f"{value:.2f} ms BFF CPU per request"
    elif target.metric == "counter_per_request":
        if target.counter not in item.counters:
            return f"no {target.counter} counted", None
        value = item.counters[target.counter] / max(1, r.requests)
        text = f"{value:.2f} {target.counter} per request"
    elif target.metric == "p50_over_ms":
        other = report.result_of(target.over) if target.over else None
        base = other.result.p50_ms if other is not None else target.over_fallback_ms
        value = r.p50_ms - base
        source = f"{target.over} p50" if other is not None else "injected latency"
        text = f"{r.p50_ms:.2f} − {base:.2f} ({source}) = {value:.2f} ms"
    else:
        value = r.p99_ms
        text = f"p99 {r.p99_ms:,.0f} ms, max {r.max_ms:,.0f} ms"
    if r.exhausted:
        # Reused single-use items fail fast: the numbers say nothing about the goal.
        return f"{text}; the prepared data ran out, so not measured", None
    return text, value >= target.bound if target.at_least else value <= target.bound


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "**not met**", None: "-"}[met]


def _counter_notes(item: ScenarioResult) -> list[str]:
    """One line per server-side counter: what the load added, per request, and whether an
    acknowledged counter matches the acknowledged answers."""
    lines = []
    r = item.result
    for name, delta in item.counters.items():
        text = f"{delta:,} {name} during the load ({delta / max(1, r.requests):.2f} per answered request)"
        if name == item.acknowledged_counter:
            in_flight = delta - r.acknowledged
            limit = item.connections or 0
            if 0 <= in_flight <= limit:
                text += (
                    f"; {r.acknowledged:,} answers acknowledged (2xx): every acknowledged request has its "
                    f"row, the {in_flight:,} more were in flight when wrk stopped (≤ {limit} connections)"
                )
            else:
                text += f"; **{r.acknowledged:,} answers acknowledged (2xx): mismatch of {in_flight:+,}**"
        lines.append(text)
    if r.counts:
        lines.append("responses: " + ", ".join(f"{name} {n:,}" for name, n in sorted(r.counts.items())))
    return lines


def _reference(item: ScenarioResult) -> str:
    if item.reference is None:
        return "-"
    return f"{item.reference.per_core_rps:g}/s ({item.reference.source})"


def _load_note(item: ScenarioResult, report: RunReport) -> str:
    notes = []
    if item.connections is not None and item.connections != report.wrk.connections:
        notes.append(f"`-c{item.connections}`")
    if item.server is not None:
        notes.append(f"load on the {item.server} simulator, not the BFF")
    return f" ({'; '.join(notes)})" if notes else ""


def _peer_ratio(report: RunReport, scenario: str, rps: float) -> str:
    reference = report.peer_result(NODE_OIDC, scenario)
    return f"{rps / reference.rps:.2f}" if reference is not None and reference.rps else "-"


def render_peers(report: RunReport) -> list[str]:
    """``--peers``: the peers and OneCity in one table, each OneCity goal marked met or not."""
    lines = [
        f"Side by side, one window: the peers by `{report.peers_command}` (its README: how each is loaded "
        "and what each stores), then OneCity's scenarios right after. CPU ms/request is the server's "
        "(OneCity: the BFF's) CPU time per request; × node-oidc-provider compares req/s of the same "
        "scenario.",
        "",
        "| server | scenario | req/s | CPU ms/request | errors | × trivial (same server) "
        "| × node-oidc-provider | goal | measured | |",
        "|---|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    trivial = {p.server: p.rps for p in report.peers if p.scenario == BASELINE}
    for p in report.peers:
        ms = "-" if p.server_cpu_ms_per_request is None else f"{p.server_cpu_ms_per_request:.3f}"
        ratio = f"{p.rps / trivial[p.server]:.3f}" if trivial.get(p.server) else "-"
        errors = f"{p.errors:,}" + (f" ({p.reused_items:,} reused items)" if p.reused_items else "")
        lines.append(
            f"| {p.server} | {p.scenario} | {p.rps:,.0f} | {ms} | {errors} | {ratio} "
            f"| {_peer_ratio(report, p.scenario, p.rps) if p.scenario != BASELINE else '-'} | | | |"
        )
    for item in report.results:
        r = item.result
        ms = f"{item.cpu.cpu_ms_per_request('bff', r.requests):.3f}" if item.cpu is not None else "-"
        peer = _peer_ratio(report, item.name, r.rps) if item.name != BASELINE else "-"
        first = f"| OneCity | {item.name} | {r.rps:,.0f} | {ms} | {_errors(r)} | {_ratio(report, r.rps)} | {peer} "
        if not item.targets:
            lines.append(first + "| | | |")
        for i, target in enumerate(item.targets):
            text, met = evaluate_target(report, item, target)
            lead = first if i == 0 else "| | | | | | | "
            lines.append(f"{lead}| {target.label} | {text} | {_verdict(met)} |")
    return lines


def render_run(report: RunReport) -> str:
    """One run as a Markdown section (a ``###`` heading and its tables)."""
    m = report.machine
    w = report.wrk
    kind = "quick run" if report.quick else "run"
    if report.peers:
        kind += " with the peers"
    lines = [
        f"### {report.started:%Y-%m-%d %H:%M %Z} ({kind})",
        "",
        f"- Machine: {m.cpu_model}, {m.cores} cores, {m.memory_gib:.1f} GiB RAM; {m.system}",
        f"- Software: Python {m.python}, granian {m.granian}, PostgreSQL {report.postgres}, Redis {report.redis}, "
        f"{m.wrk}; commit {m.commit}",
        f"- Server: `onecity serve --workers {report.workers}` (granian); PostgreSQL, Redis, the 7 simulators and "
        "wrk on the same machine",
        f"- Topology: {report.topology}",
        f"- Load: `wrk -t{w.threads} -c{w.connections} -d{w.duration_s}s --timeout {w.timeout_s}s` per scenario",
        f"- Load average before the run: {report.load_average[0]:.2f} (1 min), {report.load_average[1]:.2f} (5 min)",
        "",
        *([*render_peers(report), "", "OneCity's run in detail:", ""] if report.peers else []),
        "| scenario | req/s | p50 ms | p95 ms | p99 ms | errors | × trivial | req/s per worker | reference per core |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for item in report.results:
        r = item.result
        lines.append(
            f"| {item.name} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p95_ms:.2f} | {r.p99_ms:.2f} | {_errors(r)} "
            f"| {_ratio(report, r.rps)} | {_per_core(report, r.rps):,.0f} | {_reference(item)} |"
        )
    with_cpu = [item for item in report.results if item.cpu is not None]
    if with_cpu:
        names = {"bff": "BFF", "postgres": "PostgreSQL", "redis": "Redis", "simulators": "simulators", "wrk": "wrk"}
        names["other"] = "other processes"
        lines += [
            "",
            f"Where the CPU went: average cores busy during the load (the machine has {m.cores}); "
            "the BFF's CPU time per request depends much less than req/s on what else shares the machine.",
            "",
            "| scenario | " + " | ".join(names[c] for c in CATEGORIES) + " | BFF CPU ms/request |",
            "|---|" + "---:|" * (len(CATEGORIES) + 1),
        ]
        for item in with_cpu:
            assert item.cpu is not None
            cells = " | ".join(f"{item.cpu.cores[c]:.2f}" for c in CATEGORIES)
            per_request = item.cpu.cpu_ms_per_request("bff", item.result.requests)
            lines.append(f"| {item.name} | {cells} | {per_request:.2f} |")
    targeted = [(item, t) for item in report.results for t in item.targets]
    if targeted:
        lines += ["", "Targets:", "", "| scenario | target | measured | |", "|---|---|---|---|"]
        for item, target in targeted:
            text, met = evaluate_target(report, item, target)
            lines.append(f"| {item.name} | {target.label} | {text} | {_verdict(met)} |")
    counted = [(item, _counter_notes(item)) for item in report.results]
    if any(notes for _, notes in counted):
        lines += ["", "Measured on the server side during the load:", ""]
        for item, notes in counted:
            lines += [f"- `{item.name}`: {note}" for note in notes]
    lines += ["", "What each scenario does:", ""]
    lines += [f"- `{item.name}`: {item.description}{_load_note(item, report)}" for item in report.results]
    if report.servers and report.server_wrk:
        s = report.server_wrk
        lines += [
            "",
            f"ASGI servers on `GET /health/live`, 1 worker each, `wrk -t{s.threads} -c{s.connections} "
            f"-d{s.duration_s}s` (same run, same machine; uvicorn with h11, as httptools is not installed):",
            "",
            "| server | req/s | p50 ms | p99 ms | errors | server cores busy | other processes' cores |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for x in report.servers:
            r = x.result
            cpu = f"{x.cpu.cores['bff']:.2f} | {x.cpu.cores['other']:.2f}" if x.cpu else "- | -"
            lines.append(f"| {x.label} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {_errors(r)} | {cpu} |")
    if report.notes:
        lines += ["", *[f"- {note}" for note in report.notes]]
    return "\n".join(lines) + "\n"


def render_text(report: RunReport) -> str:
    """The results as an aligned plain-text table for the terminal."""
    header = ("scenario", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "x trivial", "per worker", "BFF cpu ms/req")
    rows = [header]
    for item in report.results:
        r = item.result
        rows.append(
            (
                item.name,
                f"{r.rps:,.0f}",
                f"{r.p50_ms:.2f}",
                f"{r.p95_ms:.2f}",
                f"{r.p99_ms:.2f}",
                _errors(r),
                _ratio(report, r.rps),
                f"{_per_core(report, r.rps):,.0f}",
                f"{item.cpu.cpu_ms_per_request('bff', r.requests):.2f}" if item.cpu else "-",
            )
        )
    for x in report.servers:
        r = x.result
        rows.append((x.label, f"{r.rps:,.0f}", f"{r.p50_ms:.2f}", "", f"{r.p99_ms:.2f}", _errors(r), "", "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    text = [
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in rows
    ]
    for item in report.results:
        for target in item.targets:
            measured, met = evaluate_target(report, item, target)
            text.append(f"target: {item.name} {target.label}: {measured}: {_verdict(met).strip('*')}")
        text += [f"{item.name}: {note}".replace("**", "") for note in _counter_notes(item)]
    return "\n".join(text) + "\n" + "\n".join(f"note: {n}" for n in report.notes)


_TEMPLATE = f"""# Benchmark results

Measured by `python -m bench` (how to run it and how to add a scenario:
[docs/benchmarks.md](../docs/benchmarks.md)). The latest run is first; every earlier run is
kept, unchanged, under [History](#history).

## Latest run

{LATEST_START}
{LATEST_END}

## Latest soak

{SOAK_START}
{SOAK_END}

## ASGI server choice (2026-11-21)

Measured by hand before the harness existed, on this machine (AMD EPYC, 2 cores), with
`wrk -t1 -c32 -d8s` on `GET /health/live`, 1 worker each, real PostgreSQL and Redis configured:

| server | event loop | req/s |
|---|---|---:|
| granian 2.8.7 | default (asyncio; uvloop was not installed yet) | 4,478 – 5,495 |
| uvicorn 0.54 (h11) | asyncio | 2,763 – 2,843 |
| granian 2.8.7 | uvloop | 6,028 – 6,381 |
| uvicorn 0.54 + httptools | uvloop | 4,849 – 4,926 |

granian was chosen for `onecity serve`, and uvloop added (granian's `auto` loop picks it).
`python -m bench --compare-servers` re-measures the comparison in a run (uvicorn with h11
only there, since httptools is not a dependency).

## History

{_HISTORY}
"""


def update_results(path: Path, section: str, *, block: str = "latest") -> None:
    """Put ``section`` at the top of ``path`` and move the previous one of its kind to History.

    Args:
        path: The results file.
        section: One run, rendered.
        block: ``latest`` (a run of the scenarios) or ``soak`` (``--soak``): each kind keeps
            its newest run at the top; an older one moves, unchanged, to the top of History.

    A file without the markers (or no file) starts from the template; everything outside the
    marked blocks (e.g. hand-written sections) is kept as it is.
    """
    text = path.read_text() if path.exists() else _TEMPLATE
    if LATEST_START not in text or LATEST_END not in text or _HISTORY not in text:
        text = _TEMPLATE + "\n" + text
    start, end = _BLOCKS[block]
    if start not in text or end not in text:
        # A file from before this kind of block existed: add it after the latest run.
        at = text.index(LATEST_END) + len(LATEST_END)
        text = f"{text[:at]}\n\n## Latest soak\n\n{start}\n{end}{text[at:]}"
    head, rest = text.split(start, 1)
    previous, tail = rest.split(end, 1)
    previous = previous.strip()
    if previous:
        before, after = tail.split(_HISTORY, 1)
        tail = f"{before}{_HISTORY}\n\n{previous}\n" + ("\n" + after.lstrip("\n") if after.strip() else "")
    path.write_text(f"{head}{start}\n{section.strip()}\n{end}{tail}")
