"""``--compare-servers``: granian against uvicorn on the trivial endpoint, in the same run.

Each configuration serves the same app (``bff.asgi:app_factory``, one worker, the run's
database and Redis) on its own port, one at a time, and is loaded exactly like the choice
was made (``wrk -t1 -c32``). uvicorn runs with h11: httptools is not a dependency, so its
fastest HTTP parser is not measured here (the hand measurement in RESULTS.md had it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bench.cpu import sample_cpu, usage_between
from bench.report import ServerResult
from bench.system import HOST, System, free_port, wait_until_ready
from bench.wrk import WrkSettings, build_script, run_wrk

__all__ = ["SERVER_CONFIGS", "ServerConfig", "compare_servers"]

_APP = "bff.asgi:app_factory"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """One server and event loop to measure."""

    label: str
    server: str  # granian | uvicorn
    loop: str  # asyncio | uvloop

    def command(self, python: str, port: int) -> list[str]:
        """The command line that serves the app with one worker on ``port``."""
        if self.server == "granian":
            return [
                *(python, "-m", "granian", "--interface", "asgi", "--factory", "--workers", "1"),
                *("--loop", self.loop, "--host", HOST, "--port", str(port), "--backlog", "2048", _APP),
            ]
        return [
            *(python, "-m", "uvicorn", _APP, "--factory", "--http", "h11", "--loop", self.loop),
            *("--host", HOST, "--port", str(port), "--no-access-log", "--log-level", "warning"),
        ]


SERVER_CONFIGS = (
    ServerConfig("granian, asyncio loop", "granian", "asyncio"),
    ServerConfig("granian, uvloop (= onecity serve)", "granian", "uvloop"),
    ServerConfig("uvicorn h11, asyncio loop", "uvicorn", "asyncio"),
    ServerConfig("uvicorn h11, uvloop", "uvicorn", "uvloop"),
)


def compare_servers(system: System, settings: WrkSettings, *, warmup_s: int, python: str) -> list[ServerResult]:
    """Measure every :data:`SERVER_CONFIGS` entry on ``GET /health/live``.

    Args:
        system: The running system (its database, Redis and environment are reused).
        settings: wrk settings (the caller passes ``-t1 -c32``, as the choice was made).
        warmup_s: Seconds of unmeasured load first.
        python: The interpreter that runs the servers.
    """
    workdir = system.config.workdir
    script = workdir / "compare-servers.lua"
    script.write_text(build_script("GET", "/health/live", ""))
    results = []
    for config in SERVER_CONFIGS:
        port = free_port()
        name = "server " + config.label.split(" (")[0].replace(",", "")
        process = system.spawn(name, config.command(python, port), system.environment(port=port))
        try:
            base_url = f"http://{HOST}:{port}"
            wait_until_ready(process, base_url)
            _warm_up(base_url, script, settings, warmup_s, workdir)
            groups = {"bff": {process.process.pid}}
            before, started = sample_cpu(groups, system.database_name), time.monotonic()
            result = run_wrk(base_url, script, settings, log=workdir / f"wrk-{port}.log")
            cpu = usage_between(before, sample_cpu(groups, system.database_name), time.monotonic() - started)
        finally:
            system.stop_process(process)
        results.append(ServerResult(config.label, result, cpu))
        time.sleep(1)  # let the stopped server's sockets and CPU settle before the next one
    return results


def _warm_up(base_url: str, script: Path, settings: WrkSettings, warmup_s: int, workdir: Path) -> None:
    if warmup_s > 0:
        warm = WrkSettings(settings.threads, settings.connections, warmup_s, settings.timeout_s)
        run_wrk(base_url, script, warm, log=workdir / "wrk-warmup.log")
