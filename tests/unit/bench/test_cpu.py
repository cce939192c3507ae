import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cpu import CATEGORIES, CpuSample, sample_cpu, usage_between


def _sample(machine: float, children: float = 0.0, **seconds: float) -> CpuSample:
    return CpuSample({name: seconds.get(name, 0.0) for name in CATEGORIES}, machine, children)


def test_usage_splits_machine_time_and_other_is_the_rest() -> None:
    before = _sample(100.0, children=1.0, bff=10.0, postgres=5.0)
    after = _sample(120.0, children=2.0, bff=20.0, postgres=7.0)
    usage = usage_between(before, after, wall_s=10.0)
    assert usage.cores["bff"] == pytest.approx(1.0)
    assert usage.cores["postgres"] == pytest.approx(0.2)
    assert usage.cores["wrk"] == pytest.approx(0.1)  # reaped children: wrk
    assert usage.cores["other"] == pytest.approx(2.0 - 1.0 - 0.2 - 0.1)
    assert usage.cpu_ms_per_request("bff", 1000) == pytest.approx(10.0)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_sample_counts_a_process_group_by_its_leader() -> None:
    # A busy child in its own group, like the servers the harness starts.
    busy = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.time() + 30\nwhile time.time() < end: pass"],
        start_new_session=True,
    )
    try:
        seconds = 0.0
        deadline = time.monotonic() + 20
        while seconds == 0.0 and time.monotonic() < deadline:
            time.sleep(0.1)
            seconds = sample_cpu({"bff": {busy.pid}}, "no_such_db").seconds["bff"]
        others = sample_cpu({"bff": set(), "simulators": {busy.pid}}, "no_such_db").seconds
    finally:
        busy.kill()
        busy.wait(timeout=10)
    assert seconds > 0.0
    assert others["bff"] == 0.0
    assert others["simulators"] >= seconds
