"""How commands find the embedded default of a running ``onecity dev`` (bff.embedded)."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

import msgspec

from bff.embedded import (
    MASTER_KEY_FILE,
    RUNNING_FILE,
    RunningDefault,
    clear_running,
    find_running,
    record_running,
    use_running_default,
)
from bff.settings import load_settings

DEAD_PID = 2**22 + 12345  # above the usual pid_max: no such process
DATABASE = "postgresql://postgres@/onecity?host=/dev-folder/postgres"
REDIS = "unix:///tmp/redis-dev/redis.socket?db=0"


def _folder(tmp_path: Path, pid: int) -> tuple[Path, bytes]:
    key = secrets.token_bytes(32)
    (tmp_path / MASTER_KEY_FILE).write_text(base64.urlsafe_b64encode(key).decode())
    record_running(tmp_path, RunningDefault(pid=pid, database_url=DATABASE, redis_url=REDIS))
    return tmp_path, key


def test_unset_values_come_from_the_running_dev(tmp_path: Path) -> None:
    folder, key = _folder(tmp_path, os.getpid())
    settings, used = use_running_default(load_settings({"ONECITY_DATA_DIR": str(folder)}))
    assert used is True
    assert (settings.database.url, settings.redis.url) == (DATABASE, REDIS)
    assert settings.master_key is not None and settings.master_key.reveal() == key
    assert (folder / RUNNING_FILE).stat().st_mode & 0o777 == 0o600


def test_set_variables_win(tmp_path: Path) -> None:
    folder, _ = _folder(tmp_path, os.getpid())
    configured_key = secrets.token_bytes(32)
    environ = {
        "ONECITY_DATA_DIR": str(folder),
        "ONECITY_DATABASE_URL": "postgresql://db.example/onecity",
        "ONECITY_MASTER_KEY": base64.urlsafe_b64encode(configured_key).decode(),
    }
    settings, used = use_running_default(load_settings(environ))
    assert used is True  # Redis alone
    assert (settings.database.url, settings.redis.url) == ("postgresql://db.example/onecity", REDIS)
    assert settings.master_key is not None and settings.master_key.reveal() == configured_key


def test_a_dev_that_is_gone_provides_nothing(tmp_path: Path) -> None:
    folder, _ = _folder(tmp_path, DEAD_PID)
    assert find_running(folder) is None
    settings, used = use_running_default(load_settings({"ONECITY_DATA_DIR": str(folder)}))
    assert used is False
    assert (settings.database.url, settings.redis.url, settings.master_key) == (None, None, None)


def test_no_folder_or_an_unreadable_file_provides_nothing(tmp_path: Path) -> None:
    assert find_running(tmp_path / "absent") is None
    (tmp_path / RUNNING_FILE).write_text("{not json")
    assert find_running(tmp_path) is None


def test_a_dev_removes_only_its_own_record(tmp_path: Path) -> None:
    record_running(tmp_path, RunningDefault(pid=os.getpid(), database_url=DATABASE))
    clear_running(tmp_path, DEAD_PID)  # an earlier dev stopping after a later one started
    assert find_running(tmp_path) == RunningDefault(pid=os.getpid(), database_url=DATABASE)
    clear_running(tmp_path, os.getpid())
    assert not (tmp_path / RUNNING_FILE).exists()


def test_the_record_holds_no_secret(tmp_path: Path) -> None:
    _folder(tmp_path, os.getpid())
    assert set(msgspec.json.decode((tmp_path / RUNNING_FILE).read_bytes())) == {"pid", "database_url", "redis_url"}
