from datetime import UTC, datetime
from pathlib import Path

from bench.report import LATEST_END, LATEST_START, Machine, RunReport, ScenarioResult, render_run, update_results
from bench.scenarios import Reference
from bench.wrk import WrkResult, WrkSettings


def _result(rps: float, errors: int = 0) -> WrkResult:
    return WrkResult(
        requests=int(rps * 10),
        duration_s=10.0,
        rps=rps,
        p50_ms=1.0,
        p95_ms=2.0,
        p99_ms=3.0,
        mean_ms=1.2,
        max_ms=9.0,
        status_errors=errors,
        socket_errors=0,
        exhausted=0,
    )


def _report() -> RunReport:
    machine = Machine("AMD EPYC", 2, 23.4, "Linux 6", "3.11.2", "2.8.7", "wrk 4.1.0", "abc1234")
    report = RunReport(
        datetime(2026, 11, 21, 12, 0, tzinfo=UTC), machine, 2, WrkSettings(1, 64, 10), "15.2", "7.0", False
    )
    report.results.append(ScenarioResult("trivial", "GET /health/live", _result(8000.0), 0))
    report.results.append(
        ScenarioResult("refresh", "POST /v1/auth/refresh", _result(1000.0, errors=5), 100, Reference(120, "Keycloak"))
    )
    return report


def test_render_run_has_ratio_to_trivial_per_worker_rate_and_reference() -> None:
    text = render_run(_report())
    row = next(line for line in text.splitlines() if line.startswith("| refresh |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "1,000"  # req/s
    assert cells[5] == "5 (0.1%)"  # errors
    assert cells[6] == "0.125"  # 1000 / 8000
    assert cells[7] == "500"  # per worker, 2 workers
    assert cells[8].startswith("120/s")
    assert "AMD EPYC, 2 cores" in text
    assert "`wrk -t1 -c64 -d10s" in text


def test_update_results_keeps_earlier_runs_in_history_newest_first(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    update_results(path, "### run one\n")
    text = path.read_text()
    assert text.index(LATEST_START) < text.index("### run one") < text.index(LATEST_END)

    path.write_text(path.read_text() + "\nHand-written note.\n")
    update_results(path, "### run two\n")
    update_results(path, "### run three\n")
    text = path.read_text()
    latest = text[text.index(LATEST_START) : text.index(LATEST_END)]
    assert "### run three" in latest
    assert "### run two" not in latest
    history = text[text.index("## History") :]
    assert history.index("### run two") < history.index("### run one")
    assert text.count("### run one") == 1
    assert "Hand-written note." in text
    assert "## ASGI server choice" in text
