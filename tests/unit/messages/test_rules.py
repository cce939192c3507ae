"""Quiet hours (crossing midnight, time zones) and the preferences document's rules."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from messages.delivery import in_quiet_hours
from messages.schemas import Preferences, QuietHours
from messages.service import _effective


def at(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, 1, hour, minute, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("start", "end", "now", "quiet"),
    [
        ("22:00", "07:00", at(23), True),
        ("22:00", "07:00", at(3), True),
        ("22:00", "07:00", at(7), False),  # the end is exclusive
        ("22:00", "07:00", at(22), True),  # the start inclusive
        ("22:00", "07:00", at(12), False),
        ("09:00", "17:00", at(12), True),
        ("09:00", "17:00", at(18), False),
        ("08:00", "08:00", at(8), False),  # an empty window
    ],
)
def test_quiet_hours_may_cross_midnight(start: str, end: str, now: dt.datetime, quiet: bool) -> None:
    assert in_quiet_hours(QuietHours(start=start, end=end, timezone="UTC"), now) is quiet


def test_quiet_hours_are_in_the_citizens_time_zone() -> None:
    window = QuietHours(start="22:00", end="07:00", timezone="Asia/Shanghai")
    assert in_quiet_hours(window, at(15)) is True  # 23:00 in Shanghai
    assert in_quiet_hours(window, at(3)) is False  # 11:00 in Shanghai
    assert in_quiet_hours(None, at(3)) is False


def test_bad_times_are_refused_and_security_push_cannot_be_turned_off() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"quiet_hours\.start"):
        msgspec.json.decode(b'{"quiet_hours": {"start": "24:00", "end": "07:00"}}', type=Preferences)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.json.decode(b'{"categories": {}, "extra": 1}', type=Preferences)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"categories": {"marketing": {"push": true}}}', type=Preferences)
    off = msgspec.json.decode(b'{"categories": {"security": {"push": false, "sms": false}}}', type=Preferences)
    effective = _effective(off)
    assert effective.categories["security"].push is True and effective.categories["security"].sms is False
    assert set(effective.categories) == {"application", "bundle", "code", "security", "notice"}
