"""Running wrk, the load generator, and reading what it measured.

wrk runs as its own process, outside the server, so the server's numbers are not shared
with the client's work (on a 2-core machine they still share the CPUs; see RESULTS.md).
Every run loads ``lua/prelude.lua`` (per-thread data slices, status counting, one JSON line
from ``done()``) followed by the scenario's own Lua.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "RESULT_MARKER",
    "LuaValue",
    "WrkError",
    "WrkResult",
    "WrkSettings",
    "build_script",
    "parse_output",
    "run_wrk",
]

RESULT_MARKER = "BENCH_RESULT "
"""Prefix of the JSON line the prelude's ``done()`` prints."""

_PRELUDE = Path(__file__).with_name("lua") / "prelude.lua"


class WrkError(RuntimeError):
    """wrk is missing, failed, timed out, or printed no result line."""


@dataclass(frozen=True, slots=True)
class WrkSettings:
    """How hard and how long to load.

    Attributes:
        threads: wrk threads (each one event loop on one core).
        connections: Concurrent keep-alive connections, spread over the threads.
        duration_s: Seconds of load.
        timeout_s: A response slower than this counts as a timeout error.
    """

    threads: int = 1
    connections: int = 64
    duration_s: int = 20
    timeout_s: int = 5


@dataclass(frozen=True, slots=True)
class WrkResult:
    """What one wrk run measured (latencies in milliseconds)."""

    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    status_errors: int
    socket_errors: int
    exhausted: int
    statuses: dict[int, int] = field(default_factory=dict)
    first_error: str = ""  # status and start of the body of one failed response
    check_errors: int = 0  # of status_errors: 2xx/3xx responses whose body was wrong
    counts: dict[str, int] = field(default_factory=dict)  # the script's count(name) counters

    @property
    def errors(self) -> int:
        """Failed requests: a status outside 2xx/3xx, a wrong body (when the scenario checks
        bodies), or a connect/read/write error or timeout."""
        return self.status_errors + self.socket_errors

    @property
    def acknowledged(self) -> int:
        """Responses with a 2xx status."""
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)


LuaValue = str | Sequence[str]
"""A global a script gets from its scenario's preparation: a string or a list of strings."""


def build_script(
    method: str,
    path: str,
    lua: str,
    *,
    content_type: str | None = None,
    expect: str | None = None,
    lua_globals: Mapping[str, LuaValue] | None = None,
) -> str:
    """The full wrk script of a scenario: request defaults, globals, the prelude, the scenario's Lua.

    Args:
        method: HTTP method of every request.
        path: Request path (with query, if any).
        lua: The scenario's own Lua (usually a ``request()`` built on ``next_item()``).
        content_type: ``Content-Type`` header, for requests with a body.
        expect: Text every 2xx/3xx body must contain (else the response counts as an error).
        lua_globals: Global strings or lists of strings (say, a token) the Lua can use.
    """
    header = [f"wrk.method = {_lua_string(method)}", f"wrk.path = {_lua_string(path)}"]
    if content_type:
        header.append(f'wrk.headers["Content-Type"] = {_lua_string(content_type)}')
    if expect:
        header.append(f"expect_body = {_lua_string(expect)}")
    for name, value in (lua_globals or {}).items():
        if not name.isidentifier():
            raise ValueError(f"not a Lua name: {name!r}")
        if isinstance(value, str):
            header.append(f"{name} = {_lua_string(value)}")
        else:
            header.append(f"{name} = {{" + ",\n".join(_lua_string(v) for v in value) + "}")
    return "\n".join(header) + "\n\n" + _PRELUDE.read_text() + "\n" + lua.strip() + "\n"


def _lua_string(text: str) -> str:
    # JSON string escapes are valid Lua string escapes for the characters json.dumps emits.
    return json.dumps(text)


def parse_output(stdout: str) -> WrkResult:
    """Read the prelude's result line from wrk's standard output.

    Raises:
        WrkError: When there is no result line (wrk failed before ``done()``).
    """
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            data: dict[str, Any] = json.loads(line[len(RESULT_MARKER) :])
            break
    else:
        raise WrkError("wrk printed no result line:\n" + stdout[-2000:])
    return WrkResult(
        requests=int(data["requests"]),
        duration_s=float(data["duration_s"]),
        rps=float(data["rps"]),
        p50_ms=data["p50_us"] / 1000,
        p95_ms=data["p95_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        mean_ms=data["mean_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        status_errors=int(data["status_errors"]),
        socket_errors=sum(int(data[k]) for k in ("connect_errors", "read_errors", "write_errors", "timeouts")),
        exhausted=int(data["exhausted"]),
        statuses={int(k): int(v) for k, v in data["statuses"].items()},
        first_error=str(data.get("first_error", "")),
        check_errors=int(data.get("check_errors", 0)),
        counts={str(k): int(v) for k, v in data.get("counts", {}).items()},
    )


def run_wrk(
    url: str,
    script: Path,
    settings: WrkSettings,
    *,
    data_file: Path | None = None,
    log: Path | None = None,
    monitor: Callable[[], None] | None = None,
    monitor_interval_s: float = 5.0,
) -> WrkResult:
    """Load ``url`` with ``script`` and return what was measured.

    Args:
        url: Base URL of the server (the script sets the path).
        script: A script made by :func:`build_script`.
        settings: Threads, connections, duration, timeout.
        data_file: Prepared items, one per line, for ``next_item()``.
        log: Where to keep wrk's full output.
        monitor: Called every ``monitor_interval_s`` seconds while wrk runs (and once at the
            start), e.g. to sample the server's memory during a soak.
        monitor_interval_s: Seconds between ``monitor`` calls.

    Raises:
        WrkError: When wrk is not installed, exits non-zero, overruns, or prints no result.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise WrkError("wrk is not installed (apt-get install wrk)")
    command = [
        wrk,
        f"--threads={settings.threads}",
        f"--connections={settings.connections}",
        f"--duration={settings.duration_s}s",
        f"--timeout={settings.timeout_s}s",
        f"--script={script}",
        url,
        "--",
        str(data_file) if data_file else "-",
        str(settings.threads),
    ]
    # Bounded: the run itself, plus time for wrk to load data and for slow last responses.
    limit_s = settings.duration_s + settings.timeout_s + 60
    deadline = time.monotonic() + limit_s
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
        errors="replace",  # a response body cut mid-character must not lose the result
    )
    with process:
        while True:
            if monitor is not None:
                monitor()
            wait = max(0.0, deadline - time.monotonic())
            if monitor is not None:
                wait = min(wait, monitor_interval_s)
            try:
                # communicate() may be called again after a timeout without losing output.
                stdout, stderr = process.communicate(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    process.kill()
                    process.communicate()
                    raise WrkError(f"wrk did not finish within {limit_s} s") from None
    if log is not None:
        log.write_text(" ".join(command) + "\n\n" + stdout + "\n" + stderr)
    if process.returncode != 0:
        raise WrkError(f"wrk exited with {process.returncode}: {stderr.strip()[-2000:]}")
    return parse_output(stdout)
