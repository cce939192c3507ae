"""ID-number validation and the simulators' deterministic demo data."""

from __future__ import annotations

import datetime as dt
import random

from services import check_digit, valid_id_number
from services.simulators import demo

NOW = dt.datetime(2025, 6, 15, 10, 30, tzinfo=dt.UTC)


def make_ids(count: int) -> list[str]:
    rng = random.Random(7)
    ids: list[str] = []
    while len(ids) < count:
        first17 = f"{rng.choice(['110101', '310104', '430102', '440305'])}{rng.randint(1950, 2004)}"
        first17 += f"{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{rng.randint(0, 999):03d}"
        ids.append(first17 + check_digit(first17))
    return ids


def test_gb11643() -> None:
    assert valid_id_number("110101199003070011")
    assert valid_id_number("11010519491231002X")
    assert not valid_id_number("110101199003070012")  # check digit
    assert not valid_id_number("110101199002300014")  # 30 February
    assert not valid_id_number("11010119900307001")  # length
    assert not valid_id_number("11010119900307001x")  # lower-case x
    assert not valid_id_number("１１0101199003070011")  # full-width digits


def test_demo_citizens_are_fixed() -> None:
    assert [(c.phone, c.name, c.id_number, c.health_code) for c in demo.DEMO_CITIZENS] == [
        ("13800000001", "张三", "110101199003070011", "G"),
        ("13800000002", "李四", "110101198512120019", "R"),
        ("13800000003", "王五", "110101197706150019", "Y"),
    ]
    assert all(valid_id_number(c.id_number) for c in demo.DEMO_CITIZENS)


def test_generated_data_is_deterministic() -> None:
    for id_number in make_ids(20):
        assert demo.health_tests(id_number, NOW) == demo.health_tests(id_number, NOW)
        assert demo.transport_card(id_number) == demo.transport_card(id_number)
        assert demo.socsec_card(id_number) == demo.socsec_card(id_number)
        assert demo.registry_name(id_number) == demo.registry_name(id_number)
        since = NOW - dt.timedelta(days=10)
        assert demo.trips(id_number, since, NOW) == demo.trips(id_number, since, NOW)


def test_generated_population_is_plausible() -> None:
    ids = make_ids(600)
    latest = [demo.health_tests(i, NOW).tests[0].result for i in ids]
    assert latest.count("negative") / len(ids) > 0.85
    assert "positive" in latest
    blocked = sum(demo.transport_card(i).status == "blocked" for i in ids)
    suspended = sum(demo.socsec_card(i).status == "suspended" for i in ids)
    assert 0 < blocked < len(ids) * 0.2
    assert 0 < suspended < len(ids) * 0.15
    visits = sum(bool(demo.health_risk(i, NOW).risk_area_visits) for i in ids)
    assert 0 < visits < len(ids) * 0.15
    for i in ids:
        risk = demo.health_risk(i, NOW)
        if any(t.result == "positive" for t in demo.health_tests(i, NOW).tests):
            assert risk.quarantine_until is not None
            assert risk.quarantine_until > NOW


def test_trips_are_stable_per_day_and_bounded() -> None:
    id_number = "110101199003070011"
    early = demo.trips(id_number, NOW - dt.timedelta(days=5), NOW)
    later = demo.trips(id_number, NOW - dt.timedelta(days=5), NOW + dt.timedelta(days=1))
    assert set(early.trips) <= set(later.trips), "yesterday's rides do not change as time passes"
    far = demo.trips(id_number, NOW - dt.timedelta(days=3650), NOW)
    assert all(trip.at >= NOW - dt.timedelta(days=93) for trip in far.trips)
