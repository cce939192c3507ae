"""Where the CPU went during a load run, from ``/proc`` (Linux).

On a small machine the BFF, PostgreSQL, Redis, the simulators and wrk share the same cores,
so requests/s alone cannot say what limits a scenario. Sampling every process's CPU time
before and after the load splits the machine's busy time into those parts, plus "other":
work that is not the system under test (say, a test suite running at the same time), which
makes a run's numbers lower than the machine can do. The BFF's CPU time per request depends
much less on what else shares the machine than requests/s (though contention raises it too).
"""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CATEGORIES", "CpuSample", "CpuUsage", "sample_cpu", "usage_between"]

_TICKS = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")

CATEGORIES = ("bff", "postgres", "redis", "simulators", "wrk", "other")
"""The parts busy time is split into, in report order."""


@dataclass(frozen=True, slots=True)
class CpuSample:
    """CPU seconds consumed so far, per category, and by the whole machine."""

    seconds: Mapping[str, float]
    machine_busy: float
    children: float  # reaped children of this process: wrk, once it has exited


@dataclass(frozen=True, slots=True)
class CpuUsage:
    """Average cores each category kept busy over an interval of ``wall_s`` seconds."""

    cores: Mapping[str, float]
    wall_s: float

    def cpu_ms_per_request(self, category: str, requests: int) -> float:
        """CPU milliseconds ``category`` spent per request."""
        return 1000 * self.cores.get(category, 0.0) * self.wall_s / max(1, requests)


def _machine_busy() -> float:
    try:
        fields = (_PROC / "stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICKS


def _processes() -> list[tuple[int, str, int, float]]:
    """``(pid, comm, process group, cpu seconds)`` of every readable process."""
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue  # exited between listing and reading
        comm = text[text.index("(") + 1 : text.rindex(")")]
        rest = text[text.rindex(")") + 2 :].split()
        # rest[0] is field 3 of proc(5): pgrp is field 5, utime 14, stime 15.
        found.append((int(entry.name), comm, int(rest[2]), (int(rest[11]) + int(rest[12])) / _TICKS))
    return found


def _cmdline(pid: int) -> str:
    try:
        return (_PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def sample_cpu(groups: Mapping[str, set[int]], database: str) -> CpuSample:
    """CPU time so far of the run's processes.

    Args:
        groups: Process-group ids per category (``bff``, ``simulators``): each server was
            started as the leader of its own group, so its forked workers count too.
        database: The run's database: PostgreSQL backends serving it count as ``postgres``,
            as do the server's background processes; backends of other databases do not.
    """
    seconds = dict.fromkeys(CATEGORIES, 0.0)
    by_group = {pgrp: name for name, ids in groups.items() for pgrp in ids}
    for pid, comm, pgrp, cpu in _processes():
        if pgrp in by_group:
            seconds[by_group[pgrp]] += cpu
        elif comm == "postgres":
            command = _cmdline(pid)
            # Client backends show "user database host(port) state"; background ones have no "(".
            if database in command or "(" not in command:
                seconds["postgres"] += cpu
        elif comm == "redis-server":
            seconds["redis"] += cpu  # one server: other users of it are counted here too
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return CpuSample(seconds, _machine_busy(), children.ru_utime + children.ru_stime)


def usage_between(before: CpuSample, after: CpuSample, wall_s: float) -> CpuUsage:
    """Average cores per category between two samples; ``other`` is the rest of the machine."""
    cores = {name: (after.seconds[name] - before.seconds[name]) / wall_s for name in CATEGORIES}
    cores["wrk"] = (after.children - before.children) / wall_s
    ours = sum(value for name, value in cores.items() if name != "other")
    cores["other"] = max(0.0, (after.machine_busy - before.machine_busy) / wall_s - ours)
    return CpuUsage(cores, wall_s)
