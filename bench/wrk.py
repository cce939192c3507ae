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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RESULT_MARKER", "WrkError", "WrkResult", "WrkSettings", "build_script", "parse_output", "run_wrk"]

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

    @property
    def errors(self) -> int:
        """Failed requests: a status outside 2xx/3xx, or a connect/read/write error or timeout."""
        return self.status_errors + self.socket_errors


def build_script(method: str, path: str, lua: str, *, content_type: str | None = None) -> str:
    """The full wrk script of a scenario: request defaults, the prelude, the scenario's Lua.

    Args:
        method: HTTP method of every request.
        path: Request path (with query, if any).
        lua: The scenario's own Lua (usually a ``request()`` built on ``next_item()``).
        content_type: ``Content-Type`` header, for requests with a body.
    """
    header = [f"wrk.method = {_lua_string(method)}", f"wrk.path = {_lua_string(path)}"]
    if content_type:
        header.append(f'wrk.headers["Content-Type"] = {_lua_string(content_type)}')
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
    )


def run_wrk(
    url: str,
    script: Path,
    settings: WrkSettings,
    *,
    data_file: Path | None = None,
    log: Path | None = None,
) -> WrkResult:
    """Load ``url`` with ``script`` and return what was measured.

    Args:
        url: Base URL of the server (the script sets the path).
        script: A script made by :func:`build_script`.
        settings: Threads, connections, duration, timeout.
        data_file: Prepared items, one per line, for ``next_item()``.
        log: Where to keep wrk's full output.

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
    try:
        # Bounded: the run itself, plus time for wrk to load data and for slow last responses.
        done = subprocess.run(
            command,
            capture_output=True,
            encoding="utf-8",
            errors="replace",  # a response body cut mid-character must not lose the result
            timeout=settings.duration_s + settings.timeout_s + 60,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise WrkError(f"wrk did not finish within {exc.timeout:.0f} s") from None
    if log is not None:
        log.write_text(" ".join(command) + "\n\n" + done.stdout + "\n" + done.stderr)
    if done.returncode != 0:
        raise WrkError(f"wrk exited with {done.returncode}: {done.stderr.strip()[-2000:]}")
    return parse_output(done.stdout)
