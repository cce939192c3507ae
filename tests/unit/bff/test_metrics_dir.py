import os
from pathlib import Path

import pytest

from bff import metrics


def test_serve_gets_a_fresh_directory_removed_at_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    # setenv (not delenv of an absent name) so the directory set below is undone after the test.
    monkeypatch.setenv(metrics.MULTIPROC_ENV, "")
    path = metrics.prepare_multiprocess_dir()
    assert os.environ[metrics.MULTIPROC_ENV] == str(path) and path.is_dir() and not any(path.iterdir())
    metrics.remove_multiprocess_dir()
    assert not path.exists()


def test_an_operator_directory_is_emptied_not_removed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "counter_123.db").write_bytes(b"old run")
    (tmp_path / "keep.txt").write_text("not ours")
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    assert metrics.prepare_multiprocess_dir() == tmp_path
    metrics.remove_multiprocess_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_dead_workers_live_gauges_are_dropped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    dead = 2**22 + 12345  # above the usual pid_max: no such process
    alive = os.getpid()
    for name in (
        f"gauge_livesum_{dead}.db",
        f"gauge_livemax_{dead}.db",
        f"counter_{dead}.db",
        f"gauge_livesum_{alive}.db",
    ):
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    assert metrics.cleanup_dead_workers() == [dead]
    # Counters stay (they are part of the totals); the live worker's gauges stay.
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"counter_{dead}.db", f"gauge_livesum_{alive}.db"]
