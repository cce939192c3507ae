"""``onecity clients add`` and ``onecity staff add`` with no variables at all, as right after
``./dev``: the commands find the embedded default through the data folder a running
``onecity dev`` leaves (``running.json`` and ``master.key`` in ``.onecity``, bff.embedded).

Nothing is started here but the commands themselves: the "running dev" is this test process,
recorded exactly as ``onecity dev`` records itself, with the test database and Redis as its
servers."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

from bff.embedded import MASTER_KEY_FILE, RunningDefault, record_running
from core.crypto import Vault
from core.db import Pool
from tests.conftest import MASTER_KEY
from tests.support.cli import onecity_without_variables

PASSWORD = "correct horse battery staple"
DEAD_PID = 2**22 + 12345  # above the usual pid_max: no such process


def _dev_folder(cwd: Path, *, pid: int, database_url: str, redis_url: str) -> Path:
    folder = cwd / ".onecity"  # the default ONECITY_DATA_DIR, relative to where commands run
    folder.mkdir(mode=0o700)
    (folder / MASTER_KEY_FILE).write_text(base64.urlsafe_b64encode(MASTER_KEY).decode())
    record_running(folder, RunningDefault(pid=pid, database_url=database_url, redis_url=redis_url))
    return folder


async def test_clients_add_and_staff_add_need_no_variables(
    tmp_path: Path, clean: None, database_url: str, redis_url: str, pool: Pool
) -> None:
    _dev_folder(tmp_path, pid=os.getpid(), database_url=database_url, redis_url=redis_url)

    added = await asyncio.to_thread(
        onecity_without_variables,
        tmp_path,
        "clients",
        "add",
        "bookings",
        "--redirect-uri",
        "https://bookings.example/cb",
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.splitlines()[0] == "added bookings (confidential, client_secret_basic)"
    assert added.stdout.splitlines()[1].startswith("client_secret: ")

    staff = ["staff", "add", "officer.li", "--name", "Officer Li", "--phone", "13700000005"]
    staff += ["--role", "health_officer", "--region", "4301", "--password-stdin"]
    created = await asyncio.to_thread(onecity_without_variables, tmp_path, *staff, stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "added officer.li (health_officer; city 4301)"

    listed = await asyncio.to_thread(onecity_without_variables, tmp_path, "clients", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("bookings\tenabled\tconfidential\tclient_secret_basic\t")
    # Written with the data folder's master key: the application (same key) reads them back.
    row = await pool.fetchrow("SELECT phone_enc FROM staff WHERE username = 'officer.li'")
    assert row is not None
    assert Vault(MASTER_KEY).decrypt_text(bytes(row["phone_enc"]), context="staff-phone") == "13700000005"


def test_without_a_running_dev_the_commands_name_the_variable(tmp_path: Path) -> None:
    # The folder of a `dev` that has exited since (killed: it had no chance to remove the file).
    folder = _dev_folder(
        tmp_path,
        pid=DEAD_PID,
        database_url=f"postgresql://postgres@/onecity?host={tmp_path / 'gone'}",
        redis_url=f"unix://{tmp_path / 'gone' / 'redis.socket'}?db=0",
    )

    refused = onecity_without_variables(tmp_path, "clients", "list")
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert refused.stderr == (
        f"onecity: ONECITY_DATABASE_URL is not set, and no `onecity dev` is running in {folder.resolve()} "
        "to take it from (start ./dev, or set the variable)\n"
    )
