"""``--topology``, ``--bundles`` and the service-hall benchmark pieces that need no servers."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.cli import parse_options
from bench.hall import EVENT_PATH, BundleReport, event_items, render_bundles
from bench.peak import PeakReport, TierResult, render_peak
from bench.report import Machine, RunReport, render_run
from bench.scenarios import SCENARIOS
from bench.system import StartError, System, SystemConfig
from bench.wrk import WrkSettings


def test_topology_is_single_unless_cluster_is_asked_for() -> None:
    assert parse_options([]).topology == "single"
    assert parse_options(["--topology", "cluster", "--quick"]).topology == "cluster"
    peak = parse_options(["--peak", "--topology", "cluster"])
    assert peak.peak and peak.topology == "cluster"


def test_an_unknown_topology_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_options(["--topology", "mesh"])
    assert exited.value.code == 2
    assert "invalid choice: 'mesh'" in capsys.readouterr().err


def test_a_system_of_an_unknown_topology_refuses_to_start_before_creating_anything(tmp_path: Path) -> None:
    # No server is reachable at these URLs: start() must refuse before it tries any.
    config = SystemConfig("postgresql://nobody@127.0.0.1:1/none", "redis://127.0.0.1:1/0", 1, tmp_path, topology="mesh")
    system = System(config)
    with pytest.raises(StartError, match="unknown topology 'mesh'; choose from single, cluster"):
        system.start()
    assert system.database_url == ""
    assert system.environment()["ONECITY_REDIS_URL"] == "redis://127.0.0.1:1/0"
    assert "ONECITY_REDIS_CLUSTER" not in system.environment()
    assert system.topology == "single Redis"


def test_the_report_headers_name_the_topology() -> None:
    machine = Machine("AMD EPYC", 2, 23.4, "Linux 6", "3.11.2", "2.8.7", "wrk 4.1.0", "abc1234")
    run = RunReport(datetime(2026, 12, 1, 7, 0, tzinfo=UTC), machine, 2, WrkSettings(1, 64, 5), "15", "7.0", True)
    assert "- Topology: single Redis" in render_run(run)
    run.topology = "Redis Cluster (3 masters + 3 replicas, ONECITY_REDIS_CLUSTER=true)"
    assert "- Topology: Redis Cluster (3 masters + 3 replicas" in render_run(run)
    peak = PeakReport(300, 10, {0: TierResult(), 1: TierResult(), 2: TierResult()}, 0, 0, 0, topology="X")
    assert "Topology: X." in render_peak(peak)


def test_bundle_options() -> None:
    options = parse_options(["--bundles", "50", "--bundle-rate", "4", "--bundle-load", "none"])
    assert (options.bundles, options.bundle_rate, options.bundle_load) == (50, 4.0, "none")
    defaults = parse_options([])
    assert defaults.bundles is None
    assert (defaults.bundle_rate, defaults.bundle_load, defaults.bundle_load_connections) == (2.0, "hall_submit", 8)
    assert parse_options(["--bundles", "5", "--bundle-load", "hall_events"]).bundle_load == "hall_events"
    for bad in (["--bundles", "0"], ["--bundle-rate", "0"], ["--bundle-load", "nothing"]):
        with pytest.raises(SystemExit):
            parse_options(bad)


def test_hall_events_is_registered_after_hall_submit() -> None:
    names = list(SCENARIOS)
    assert names.index("hall_submit") < names.index("hall_events") < names.index("home_hanging")
    scenario = SCENARIOS["hall_events"]
    assert (scenario.method, scenario.path) == ("POST", "/v1/departments/events")
    assert scenario.acknowledged_counter == "event rows"


def test_event_items_send_each_status_of_an_application_once_and_in_order() -> None:
    numbers = [f"BE2026120100000{i:03d}" for i in range(5)]
    items = event_items(numbers, 18)
    assert len(items) == 18
    fields = [item.split(" ") for item in items]
    assert all(len(f) == 4 for f in fields)
    # Every application's accepted comes before any application's under_review, and so on.
    assert [f[1] for f in fields] == ["accepted"] * 5 + ["under_review"] * 5 + ["approved"] * 5 + ["delivered"] * 3
    assert [f[0] for f in fields[:5]] == numbers
    assert len({f[2] for f in fields}) == 18  # a new event_id per request
    assert all(f[2].startswith("bench-") for f in fields)
    assert fields[0][3].endswith("Z") and fields[0][3] < fields[5][3]  # the next status happened later
    with pytest.raises(ValueError, match="5 applications cannot take 21 events"):
        event_items(numbers, len(numbers) * len(EVENT_PATH) + 1)


def test_bundle_report_percentiles_pass_and_rendering() -> None:
    report = BundleReport(4, 2.0, started=4, completed_s=[14.0, 12.5, 20.0, 13.0])
    report.step_cases = {f"N{i}": 1 for i in range(16)}
    assert report.percentile(0.5) == 13.0
    assert report.percentile(0.95) == 20.0
    assert report.passed
    text = render_bundles(report)
    assert "| 4 | 4 | 0 | 0 | 13.0 | 20.0 | 20.0 |" in text
    assert "steps with more than one case: 0" in text
    report.step_cases["N0"] = 2
    assert report.duplicate_cases == 1 and not report.passed
    late = BundleReport(4, 2.0, started=4, completed_s=[14.0, 12.5, 20.0], unfinished=1, refused={503: 1})
    late.step_cases = {f"N{i}": 1 for i in range(16)}
    assert not late.passed
    assert "submissions refused: 503: 1" in render_bundles(late)


def test_pgbouncer_is_off_unless_asked_for() -> None:
    assert not parse_options([]).pgbouncer
    options = parse_options(["--topology", "cluster", "--pgbouncer", "--peak"])
    assert options.pgbouncer and options.topology == "cluster" and options.peak
