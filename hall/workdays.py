"""Working days on the Chinese official calendar, for an application's ``due_at``.

The holidays and the adjusted working weekends (调休) come from the ``chinese-calendar``
package, which follows the State Council's yearly notice. It knows the years published so
far; for a later year it raises, and we fall back to Monday-Friday so a due date is still
given (it may be off by the holidays of a year not yet announced). Keeping it current is a
dependency bump each December when the notice for the next year is out (docs/service-hall.md).
"""

from __future__ import annotations

import datetime as dt
from typing import Final
from zoneinfo import ZoneInfo

import chinese_calendar

__all__ = ["CITY_TZ", "add_working_days", "is_working_day"]

CITY_TZ: Final = ZoneInfo("Asia/Shanghai")
_END_OF_DAY: Final = dt.time(23, 59, 59)


def is_working_day(day: dt.date) -> bool:
    """Whether ``day`` is a working day (official calendar, Mon-Fri beyond its range)."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return day.weekday() < 5


def add_working_days(start: dt.datetime, days: int) -> dt.datetime:
    """The end (23:59:59 city time, as UTC) of the ``days``-th working day after ``start``.

    The day of submission does not count, as in the official time limits (承诺时限).
    """
    day = start.astimezone(CITY_TZ).date()
    counted = 0
    while counted < days:
        day += dt.timedelta(days=1)
        if is_working_day(day):
            counted += 1
    return dt.datetime.combine(day, _END_OF_DAY, tzinfo=CITY_TZ).astimezone(dt.UTC)
