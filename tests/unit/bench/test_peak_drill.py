from bench.cli import parse_options
from bench.peak import MIX, PeakReport, TierResult, render_peak, window_length
from bff.peak import tier_of


def test_the_mix_covers_every_tier_as_admission_control_sees_it() -> None:
    paths = {
        "verify": ("POST", "/v1/codes/verify"),
        "issue": ("POST", "/v1/me/codes/transit"),
        "codes": ("GET", "/v1/me/codes"),
        "keys": ("GET", "/v1/codes/keys"),
        "home": ("GET", "/v1/me/home"),
        "image": ("GET", "/v1/me/codes/transit/image"),
        "profile": ("GET", "/v1/me"),
    }
    assert {name: tier_of(*paths[name]) for name, _, _ in MIX} == {name: tier for name, tier, _ in MIX}


def test_report_says_whether_anything_was_lost() -> None:
    tier0 = TierResult(sent=4, ok=4, latencies_ms=[1.0, 2.0, 3.0, 40.0])
    report = PeakReport(
        rate=300,
        duration_s=60,
        tiers={0: tier0, 1: TierResult(), 2: TierResult(sent=2, shed=2)},
        verified_ok=3,
        scan_rows=3,
        client_dropped=0,
    )
    text = render_peak(report)
    assert "| 0 | 4 | 100.0 |" in text and "nothing lost" in text and "| 2 | 2 | 0.0 |" in text
    assert tier0.percentile(0.99) == 40.0
    lost = PeakReport(rate=1, duration_s=1, tiers=report.tiers, verified_ok=3, scan_rows=2, client_dropped=0)
    assert not lost.nothing_lost and "MISMATCH" in render_peak(lost)


def test_peak_options() -> None:
    options = parse_options(["--peak", "--quick", "--peak-rate", "5"])
    assert options.peak and options.peak_rate == 5 and options.peak_factor == 10 and options.peak_duration is None
    assert options.peak_steady is None  # 20 s, or 5 s with --quick, chosen when the drill runs
    assert parse_options(["--peak", "--peak-steady", "0"]).peak_steady == 0


def test_report_says_whether_the_burst_met_a_warm_or_a_cold_system() -> None:
    tiers = {0: TierResult(), 1: TierResult(), 2: TierResult()}
    warm = PeakReport(rate=300, duration_s=60, tiers=tiers, verified_ok=0, scan_rows=0, client_dropped=0)
    warm.steady_rate, warm.steady_s = 30, 20
    assert render_peak(warm).splitlines()[0] == (
        "## Peak drill: 300 req/s for 60 s (open loop), after 20 s of the steady 30 req/s (unmeasured)"
    )
    cold = PeakReport(rate=300, duration_s=60, tiers=tiers, verified_ok=0, scan_rows=0, client_dropped=0)
    assert render_peak(cold).splitlines()[0] == "## Peak drill: 300 req/s for 60 s (open loop), on a cold system"


def test_tiers_of_requests() -> None:
    assert tier_of("POST", "/v1/auth/refresh") == 0
    assert tier_of("POST", "/oauth/token") == 0
    assert tier_of("DELETE", "/v1/me/codes/health") == 2  # revoking is not showing
    assert tier_of("GET", "/v1/me/health/records") == 1
    assert tier_of("GET", "/v1/me/applications/42") == 1
    assert tier_of("POST", "/v1/auth/otp") == 2
    assert tier_of("GET", "/health/ready") is None and tier_of("GET", "/metrics") is None
    assert tier_of("OPTIONS", "/v1/me/home") is None


def test_report_shows_each_window_of_the_burst() -> None:
    start = {0: TierResult(sent=10, ok=8, shed=2, latencies_ms=[5.0] * 7 + [1500.0]), 1: TierResult(), 2: TierResult()}
    later = {0: TierResult(sent=10, ok=10, latencies_ms=[5.0] * 10), 1: TierResult(shed=3), 2: TierResult(shed=4)}
    report = PeakReport(
        rate=300,
        duration_s=60,
        tiers={0: TierResult(), 1: TierResult(), 2: TierResult()},
        verified_ok=0,
        scan_rows=0,
        client_dropped=0,
        window_s=window_length(60),
        windows=[start, later],
        late_ms=[12.4, 3.0],
        kinds={"verify": TierResult(sent=3, ok=2, other={409: 1}, latencies_ms=[1.0, 3.0])},
    )
    text = render_peak(report)
    assert "| verify | 0 | 3 | 66.7 | 3.0 | 3.0 | 0 | 409: 1 | 0 |" in text and "| issue |" not in text
    rows = [line for line in text.splitlines() if line.startswith(("| 0–5 ", "| 5–10 "))]
    assert rows == ["| 0–5 | 10 | 2 | 1500.0 | 0 | 0 | 12 |", "| 5–10 | 10 | 0 | 5.0 | 3 | 4 | 3 |"]
    assert window_length(10) == 1 and window_length(5) == 1


def _report(tier0: TierResult, *, verified_ok: int = 0, scan_rows: int = 0) -> PeakReport:
    return PeakReport(
        rate=300,
        duration_s=60,
        tiers={0: tier0, 1: TierResult(), 2: TierResult()},
        verified_ok=verified_ok,
        scan_rows=scan_rows,
        client_dropped=0,
    )


def test_goal_needs_the_share_the_latency_and_nothing_lost() -> None:
    fast = [5.0] * 999
    met = _report(TierResult(sent=1000, ok=999, latencies_ms=fast), verified_ok=10, scan_rows=10)
    assert met.goal_met and "p99 ≤ 1,000 ms, nothing lost): met" in render_peak(met)
    too_few = _report(TierResult(sent=1000, ok=998, latencies_ms=fast[:998]))  # 99.8 %
    too_slow = _report(TierResult(sent=100, ok=100, latencies_ms=[5.0] * 98 + [1001.0] * 2))
    lost = _report(TierResult(sent=1000, ok=1000, latencies_ms=[*fast, 5.0]), verified_ok=10, scan_rows=9)
    for report in (too_few, too_slow, lost):
        assert not report.goal_met and render_peak(report).count("): not met") == 1


def test_the_peak_switch_is_an_option_and_said_in_the_report() -> None:
    assert parse_options(["--peak", "--peak-switch"]).peak_switch
    assert not parse_options(["--peak"]).peak_switch
    report = _report(TierResult())
    assert "Peak mode switched on" not in render_peak(report)
    report.peak_switch = True
    assert "Peak mode switched on for the burst (`onecity peak on`)." in render_peak(report)
