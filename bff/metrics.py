"""One Prometheus view of every server worker (prometheus_client multiprocess mode).

``onecity serve`` runs several granian worker processes; each keeps its own counters, so a
scrape that reaches one worker would show that worker's share only. In multiprocess mode each
process writes its samples to memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR`` and
``/metrics`` sums them (:class:`prometheus_client.multiprocess.MultiProcessCollector`, which
Litestar's ``PrometheusController`` uses whenever that variable is set).

The variable has to be set before :mod:`prometheus_client` is imported (it picks its value
class at import), so :func:`prepare_multiprocess_dir` is called by the CLI before anything
else is imported, and it imports nothing but the standard library.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

__all__ = ["MULTIPROC_ENV", "cleanup_dead_workers", "prepare_multiprocess_dir", "remove_multiprocess_dir"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_owned: list[Path] = []  # directories this process made (and removes)
_FILE_PID = re.compile(r"^gauge_live\w*?_(\d+)\.db$")


def prepare_multiprocess_dir() -> Path:
    """Point ``PROMETHEUS_MULTIPROC_DIR`` at an empty directory; return it.

    An operator-given directory is emptied of old ``*.db`` files (a previous run's counters
    would otherwise be added to this run's); without one a fresh temporary directory is made
    and removed again by :func:`remove_multiprocess_dir` when the server stops.
    """
    given = os.environ.get(MULTIPROC_ENV, "").strip()
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        path = Path(tempfile.mkdtemp(prefix="onecity-metrics-"))
        _owned.append(path)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def remove_multiprocess_dir() -> None:
    """Remove the directory :func:`prepare_multiprocess_dir` created (not an operator's)."""
    while _owned:
        shutil.rmtree(_owned.pop(), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_dead_workers() -> list[int]:
    """Drop the live-gauge files of worker processes that no longer run; return their pids.

    Called when a worker starts (granian respawns a crashed worker): a dead worker's
    ``livesum``/``livemax`` gauges (requests in progress, queue depths) would otherwise be
    counted for ever. Its counters stay: they are part of the totals.
    """
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return []
    from prometheus_client import multiprocess

    dead: set[int] = set()
    for file in Path(directory).glob("gauge_live*.db"):
        match = _FILE_PID.fullmatch(file.name)
        if match and not _alive(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in dead:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
    return sorted(dead)
