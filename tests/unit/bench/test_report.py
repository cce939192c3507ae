from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report import (
    LATEST_END,
    LATEST_START,
    SOAK_END,
    SOAK_START,
    Machine,
    RunReport,
    ScenarioResult,
    evaluate_target,
    render_run,
    update_results,
)
from bench.scenarios import Reference, Target
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


def _with(name: str, result: WrkResult, **fields: Any) -> ScenarioResult:
    return ScenarioResult(name, name, result, 0, **fields)


def test_targets_are_evaluated_against_this_run() -> None:
    report = _report()
    fast = WrkResult(100, 10.0, 3000.0, 26.0, 30.0, 40.0, 27.0, 50.0, 0, 0, 0)
    report.results.append(_with("dept", WrkResult(100, 10.0, 150.0, 22.5, 25.0, 30.0, 23.0, 40.0, 0, 0, 0)))
    report.results.append(_with("home", fast))
    per_worker = Target("≥ 1200 per worker", "per_worker_rps", 1200)
    ratio = Target("≥ 1/3 of trivial", "x_trivial", 1 / 3)
    overhead = Target("< 5 ms", "p50_over_ms", 5, at_least=False, over="dept", over_fallback_ms=20)
    missing = Target("< 5 ms", "p50_over_ms", 5, at_least=False, over="nope", over_fallback_ms=20)
    p99 = Target("p99 ≤ 800", "p99_ms", 800, at_least=False)
    item = report.result_of("home")
    assert item is not None
    assert evaluate_target(report, item, per_worker) == ("1,500/s per worker", True)
    assert evaluate_target(report, item, ratio) == ("0.375 × trivial", True)
    text, met = evaluate_target(report, item, overhead)
    assert (text, met) == ("26.00 − 22.50 (dept p50) = 3.50 ms", True)
    assert evaluate_target(report, item, missing)[1] is False  # 26 - 20 (injected latency) = 6 ms
    assert evaluate_target(report, item, p99)[1] is True


def test_render_run_lists_targets_and_checks_acknowledged_rows() -> None:
    report = _report()
    result = WrkResult(1000, 10.0, 100.0, 1.0, 2.0, 3.0, 1.2, 9.0, 3, 0, 0, statuses={200: 997, 503: 3})
    report.results.append(
        _with(
            "code_verify",
            result,
            targets=(Target("≥ 1/3 of trivial", "x_trivial", 1 / 3),),
            counters={"scan_log rows": 1005},
            acknowledged_counter="scan_log rows",
            connections=64,
        )
    )
    text = render_run(report)
    assert "| code_verify | ≥ 1/3 of trivial | 0.013 × trivial | **not met** |" in text
    assert "997 answers acknowledged (2xx): every acknowledged request has its row, the 8 more" in text
    # Fewer rows than acknowledged answers would be lost scans: flagged.
    report.results[-1].counters["scan_log rows"] = 990
    assert "mismatch of -7" in render_run(report)


def test_update_results_keeps_the_latest_soak_apart_from_the_latest_run(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    update_results(path, "### run one\n")
    update_results(path, "### soak one\n", block="soak")
    update_results(path, "### soak two\n", block="soak")
    update_results(path, "### run two\n")
    text = path.read_text()
    latest = text[text.index(LATEST_START) : text.index(LATEST_END)]
    soak = text[text.index(SOAK_START) : text.index(SOAK_END)]
    history = text[text.index("## History") :]
    assert "### run two" in latest
    assert "### soak two" in soak
    assert history.index("### run one") < history.index("### soak one")
    assert text.count("### soak one") == 1


def test_update_results_adds_the_soak_block_to_an_older_file(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    old = f"# Benchmark results\n\n{LATEST_START}\n### old run\n{LATEST_END}\n\n## History\n\n<!-- bench:history -->\n"
    path.write_text(old)
    update_results(path, "### soak\n", block="soak")
    text = path.read_text()
    assert text.index("### old run") < text.index(SOAK_START) < text.index("### soak") < text.index("## History")
