from bench.cli import parse_options
from bench.peak import MIX, PeakReport, TierResult, render_peak
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


def test_tiers_of_requests() -> None:
    assert tier_of("POST", "/v1/auth/refresh") == 0
    assert tier_of("POST", "/oauth/token") == 0
    assert tier_of("DELETE", "/v1/me/codes/health") == 2  # revoking is not showing
    assert tier_of("GET", "/v1/me/health/records") == 1
    assert tier_of("GET", "/v1/me/applications/42") == 1
    assert tier_of("POST", "/v1/auth/otp") == 2
    assert tier_of("GET", "/health/ready") is None and tier_of("GET", "/metrics") is None
    assert tier_of("OPTIONS", "/v1/me/home") is None


def test_sustained_event_loop_lag_sheds_tier2_then_tier1_never_tier0() -> None:
    from typing import Any, cast

    from bff.peak import Admission

    admission = Admission(
        max_in_flight=10, channel_max_in_flight=5, loop_lag_ms=500, retry_after_s=2, redis=cast(Any, None)
    )
    reasons = admission._shed_reason
    assert [reasons(t, "app") for t in (0, 1, 2)] == [None, None, None]
    admission.lag_s = 0.6
    assert [reasons(t, "app") for t in (0, 1, 2)] == [None, None, "overload"]
    admission.lag_s = 1.1
    assert [reasons(t, "app") for t in (0, 1, 2)] == [None, "overload", "overload"]
    admission.lag_s, admission.peak = 0.0, True
    assert [reasons(t, "app") for t in (0, 1, 2)] == [None, None, "peak"]
    admission.in_flight = 4  # peak mode: tier 1 gets two fifths of the budget
    assert [reasons(t, "app") for t in (0, 1)] == [None, "budget"]


def test_slow_own_tier0_answers_shed_tier2_then_tier1_and_the_memory_fades() -> None:
    from typing import Any, cast

    from bff.peak import Admission

    admission = Admission(
        max_in_flight=10,
        channel_max_in_flight=5,
        loop_lag_ms=500,
        retry_after_s=2,
        redis=cast(Any, None),
        tier0_latency_ms=100,
    )
    reasons = admission._shed_reason
    for _ in range(100):  # verifications answering in 150 ms: the worker queues its work
        admission.tier0_done(0.150)
    assert [reasons(t, "app") for t in (0, 1, 2)] == [None, None, "overload"]
    for _ in range(100):
        admission.tier0_done(0.250)
    assert [reasons(t, "app") for t in (0, 1, 2)] == [None, "overload", "overload"]
    admission.fade_tier0()  # answers arrived since the last poll: nothing fades yet
    assert reasons(1, "app") == "overload"
    for _ in range(4):  # two seconds without a tier 0 answer
        admission.fade_tier0()
    assert [reasons(t, "app") for t in (0, 1, 2)] == [None, None, None]
