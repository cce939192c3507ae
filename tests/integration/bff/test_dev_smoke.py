"""`onecity dev` on the embedded default: comes up, serves a real flow, the operator commands
work beside it with no variables, it stops cleanly, and a second start on the same data folder
reuses it without seeding duplicates."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx

from bff.embedded import RUNNING_FILE
from tests.support.cli import onecity_without_variables

DEPARTMENTS = (
    "health",
    "transport",
    "socsec",
    "registry",
    "liveness",
    "sms",
    "miniprogram",
    "hukou",
    "education",
    "push",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(data_dir: Path, port: int, department_ports: dict[str, int]) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONECITY_")}
    env["ONECITY_DATA_DIR"] = str(data_dir)
    env["ONECITY_LOG_LEVEL"] = "WARNING"
    for name, dept_port in department_ports.items():
        env[f"ONECITY_{name.upper()}_URL"] = f"http://127.0.0.1:{dept_port}"
    return subprocess.Popen(
        [sys.executable, "-m", "bff.cli", "dev", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _wait_ready(port: int, process: subprocess.Popen[bytes], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, (process.stdout.read() if process.stdout else b"").decode()[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("onecity dev did not become ready")


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


async def _demo_accounts(data_dir: Path) -> int:
    conn = await asyncpg.connect(f"postgresql://postgres@/onecity?host={data_dir / 'postgres'}")
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM accounts")
        return count
    finally:
        await conn.close()


def test_dev_comes_up_on_the_embedded_default(tmp_path: Path) -> None:
    data_dir = tmp_path / ".onecity"  # the default data folder of commands run in tmp_path
    port = _free_port()
    department_ports = {name: _free_port() for name in DEPARTMENTS}
    process = _start(data_dir, port, department_ports)
    try:
        _wait_ready(port, process)
        # A real flow across processes: the SMS simulator checks the BFF's service token
        # against the BFF's published JWKS.
        sent = httpx.post(f"http://127.0.0.1:{port}/v1/auth/otp", json={"phone": "13800000001"}, timeout=10)
        assert sent.status_code == 202, sent.text
        assert httpx.get(f"http://127.0.0.1:{port}/.well-known/jwks.json").json()["keys"]
        # The case-owning simulators report events with their own seeded clients.
        for department in ("health", "socsec", "hukou", "education"):
            granted = httpx.post(
                f"http://127.0.0.1:{port}/oauth/token",
                data={"grant_type": "client_credentials", "scope": "applications:events"},
                auth=(f"dept-{department}", f"dept-{department}-secret"),
                timeout=10,
            )
            assert granted.status_code == 200, granted.text
        # In a second terminal, right after `./dev`, with no variables set.
        added = onecity_without_variables(tmp_path, "clients", "add", "smoke", "--redirect-uri", "https://s.example/cb")
        assert added.returncode == 0 and "client_secret: " in added.stdout, added.stderr
        staff = ["staff", "add", "smoke.officer", "--name", "S", "--phone", "13700000006", "--region", "4301"]
        staff += ["--role", "health_officer", "--password-stdin"]
        created = onecity_without_variables(tmp_path, *staff, stdin="correct horse battery staple\n")
        assert created.stdout == "added smoke.officer (health_officer; city 4301)\n", created.stderr
    finally:
        code = _stop(process)
    assert code == 0
    assert not (data_dir / RUNNING_FILE).exists()  # nothing to find once it stopped
    for dept_port in department_ports.values():  # the simulators stopped with it
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", dept_port)) != 0

    second = _start(data_dir, port, department_ports)
    try:
        _wait_ready(port, second)
        assert asyncio.run(_demo_accounts(data_dir)) == 3
    finally:
        assert _stop(second) == 0
