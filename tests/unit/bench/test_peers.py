"""``python -m bench --peers``: the peers' harness run as a real subprocess (a stand-in script that
prints a recorded ``run_all.sh`` output) and the one table of peers and OneCity it leads to."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.cli import parse_options
from bench.cpu import CpuUsage
from bench.peers import DEFAULT_PEERS, PeerError, parse_results, read_peer_results, results_path, run_peers
from bench.report import Machine, RunReport, ScenarioResult, render_run
from bench.scenarios import NODE_OIDC, SCENARIOS
from bench.wrk import WrkResult, WrkSettings

_DATA = Path(__file__).with_name("data")
_RECORDED_OUTPUT = (_DATA / "peers_run_all.out").read_text()
_RECORDED_RESULTS = (_DATA / "peers_results.jsonl").read_text()


def _stand_in(tmp_path: Path, *, exit_code: int = 0, results_line: bool = True) -> Path:
    """A run_all.sh that records its arguments and prints the recorded output."""
    results = tmp_path / "results-20261201T053000.jsonl"
    results.write_text(_RECORDED_RESULTS)
    output = _RECORDED_OUTPUT.replace("RESULTS_FILE", str(results))
    if not results_line:
        output = "\n".join(line for line in output.splitlines() if not line.startswith("# results:"))
    (tmp_path / "recorded.out").write_text(output)
    script = tmp_path / "run_all.sh"
    script.write_text(
        f'#!/bin/sh\necho "$@" > "{tmp_path}/arguments"\ncat "{tmp_path}/recorded.out"\nexit {exit_code}\n'
    )
    script.chmod(0o755)
    return script


def test_run_peers_runs_the_harness_for_both_peers_and_reads_its_results(tmp_path: Path) -> None:
    peers = run_peers(_stand_in(tmp_path))
    assert (tmp_path / "arguments").read_text().split() == list(DEFAULT_PEERS) == ["oidc-redis", "dot"]
    assert [(p.server, p.scenario) for p in peers] == [
        (NODE_OIDC, "trivial"),
        (NODE_OIDC, "client_credentials"),
        (NODE_OIDC, "refresh"),
        ("django-oauth-toolkit", "trivial"),
        ("django-oauth-toolkit", "client_credentials"),
        ("django-oauth-toolkit", "client_credentials_hashed"),
        ("django-oauth-toolkit", "refresh"),
    ]
    assert peers[1].rps == 13901
    assert peers[1].server_cpu_ms_per_request == 0.125
    assert peers[0].server_cpu_ms_per_request is None


def test_a_failing_harness_or_one_without_results_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PeerError, match="exited with 3"):
        run_peers(_stand_in(tmp_path, exit_code=3))
    with pytest.raises(PeerError, match="no '# results: <file>' line"):
        run_peers(_stand_in(tmp_path, results_line=False))
    with pytest.raises(PeerError, match="no peers' harness"):
        run_peers(tmp_path / "missing.sh")


def test_results_path_is_the_last_results_line_and_bad_lines_are_refused() -> None:
    assert results_path("# results: /tmp/a.jsonl\n...\n# results: /tmp/b.jsonl\n") == Path("/tmp/b.jsonl")
    with pytest.raises(PeerError, match="line 2"):
        parse_results(["", '{"label": "x"}'])


def _wrk(rps: float, p50_ms: float = 1.0, exhausted: int = 0) -> WrkResult:
    return WrkResult(int(rps * 20), 20.0, rps, p50_ms, 2 * p50_ms, 3 * p50_ms, p50_ms, 9 * p50_ms, 0, 0, exhausted)


def _onecity(name: str, rps: float, *, bff_cores: float = 1.5) -> ScenarioResult:
    scenario = SCENARIOS[name]
    cpu = CpuUsage({"bff": bff_cores, "postgres": 0, "redis": 0, "simulators": 0, "wrk": 0, "other": 0}, 20.0)
    return ScenarioResult(name, scenario.description, _wrk(rps), 0, cpu=cpu, targets=scenario.targets)


def _table(text: str) -> list[list[str]]:
    start = text.index("| server | scenario |")
    rows = text[start:].split("\n\n", 1)[0].splitlines()[2:]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def test_one_table_with_the_peers_onecity_and_each_goal_met_or_not() -> None:
    machine = Machine("AMD EPYC", 2, 23.5, "Linux 6", "3.11.7", "2.8.7", "wrk 4.1.0", "abc1234")
    report = RunReport(
        datetime(2026, 12, 1, 7, 0, tzinfo=UTC), machine, 2, WrkSettings(1, 64, 20), "15.20", "7.0.15", False
    )
    report.peers = parse_results(_RECORDED_RESULTS.splitlines())
    report.peers_command = "../shared/peers/run_all.sh oidc-redis dot"
    report.results += [
        _onecity("trivial", 20000),
        _onecity("client_credentials", 15000, bff_cores=1.8),  # 1.8 cores x 20 s / 300,000 = 0.12 ms
        _onecity("refresh", 4000),
        _onecity("code_verify", 11000),
        _onecity("code_image_cold", 300, bff_cores=1.8),  # 6 ms each
    ]
    exhausted = dataclasses.replace(_onecity("code_issue", 9000), result=_wrk(9000, exhausted=5))
    report.results.append(exhausted)
    text = render_run(report)
    assert "(run with the peers)" in text
    assert "`../shared/peers/run_all.sh oidc-redis dot`" in text
    rows = _table(text)
    assert rows[:3] == [
        [NODE_OIDC, "trivial", "90,820", "-", "0", "1.000", "-", "", "", ""],
        [NODE_OIDC, "client_credentials", "13,901", "0.125", "0", "0.153", "1.00", "", "", ""],
        [NODE_OIDC, "refresh", "5,844", "0.249", "0", "0.064", "1.00", "", "", ""],
    ]
    assert rows[6] == ["django-oauth-toolkit", "refresh", "221", "5.640", "0", "0.032", "0.04", "", "", ""]
    onecity = [row for row in rows if row[0] in ("OneCity", "")]
    assert onecity[0] == ["OneCity", "trivial", "20,000", "0.075", "0", "1.000", "-", "", "", ""]
    assert onecity[1][:7] == ["OneCity", "client_credentials", "15,000", "0.120", "0", "0.750", "1.08"]
    # Each of the scenario's goals on a row of its own; issue 14's against node-oidc-provider.
    assert onecity[2][7:] == [
        "≥ 1.0 × node-oidc-provider (issue 14)",
        f"15,000 ÷ 13,901 = 1.08 × {NODE_OIDC}",
        "met",
    ]
    assert onecity[4][7:] == [
        "≥ 0.8 × node-oidc-provider (issue 14)",
        f"4,000 ÷ 5,844 = 0.68 × {NODE_OIDC}",
        "**not met**",
    ]
    assert onecity[5][1] == "code_verify"
    assert onecity[5][7:] == ["≥ 0.5 × trivial (issue 14)", "0.550 × trivial", "met"]
    assert onecity[6][7:] == ["≤ 5 ms BFF CPU per image (issue 14)", "6.00 ms BFF CPU per request", "**not met**"]
    # Reused single-use data makes a goal unmeasured, never met.
    assert onecity[7][7:] == [
        "≥ 0.33 × trivial (issue 14)",
        "0.450 × trivial; the prepared data ran out, so not measured",
        "-",
    ]


def test_without_peers_the_peer_goals_are_not_measured() -> None:
    machine = Machine("AMD EPYC", 2, 23.5, "Linux 6", "3.11.7", "2.8.7", "wrk 4.1.0", "abc1234")
    report = RunReport(datetime(2026, 12, 1, tzinfo=UTC), machine, 2, WrkSettings(1, 64, 5), "15", "7", True)
    report.results += [_onecity("trivial", 20000), _onecity("client_credentials", 15000)]
    text = render_run(report)
    assert "| server | scenario |" not in text
    unmeasured = f"no {NODE_OIDC} client_credentials in this run (--peers)"
    assert f"| client_credentials | ≥ 1.0 × node-oidc-provider (issue 14) | {unmeasured} | - |" in text


def test_peers_option() -> None:
    options = parse_options(["--peers", "--scenarios", "client_credentials,refresh"])
    assert options.peers
    assert options.peers_script.name == "run_all.sh"
    assert options.peers_script.parent.name == "peers"
    assert options.output is not None  # a peers run is written to RESULTS.md
    assert not parse_options([]).peers


def test_peers_results_of_an_earlier_run_in_the_window_are_read_and_a_bad_file_is_refused(tmp_path: Path) -> None:
    results = tmp_path / "results-20261201T101828.jsonl"
    results.write_text(_RECORDED_RESULTS)
    options = parse_options(["--peers-results", str(results), "--scenarios", "client_credentials"])
    assert options.peers_results == results
    assert not options.peers
    peers = read_peer_results(results)
    assert [(p.server, p.scenario) for p in peers][:3] == [
        (NODE_OIDC, "trivial"),
        (NODE_OIDC, "client_credentials"),
        (NODE_OIDC, "refresh"),
    ]
    with pytest.raises(PeerError, match="cannot read the peers' results"):
        read_peer_results(tmp_path / "missing.jsonl")
    (tmp_path / "bad.jsonl").write_text("not a result\n")
    with pytest.raises(PeerError, match="line 1 of the peers' results is not a result"):
        read_peer_results(tmp_path / "bad.jsonl")
