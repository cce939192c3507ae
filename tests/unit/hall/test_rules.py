"""The state machine, working days and form validation, without I/O."""

from __future__ import annotations

import datetime as dt

import pytest

from core.errors import UnprocessableEntity
from hall.forms import validate_form
from hall.schemas import FormField, FormSchema
from hall.states import can_become_legal, is_legal
from hall.workdays import add_working_days, is_working_day


def test_transitions_of_the_contract() -> None:
    legal = [
        ("submitted", "accepted"),
        ("submitted", "not_accepted"),
        ("accepted", "correction_requested"),
        ("accepted", "under_review"),
        ("correction_requested", "submitted"),
        ("under_review", "approved"),
        ("under_review", "denied"),
        ("approved", "delivered"),
        ("submitted", "withdrawn"),
        ("accepted", "withdrawn"),
        ("correction_requested", "withdrawn"),
    ]
    for current, new in legal:
        assert is_legal(current, new), (current, new)
    for current, new in [("under_review", "withdrawn"), ("delivered", "accepted"), ("submitted", "approved")]:
        assert not is_legal(current, new)


def test_held_only_when_it_can_still_become_legal() -> None:
    assert can_become_legal("accepted", "approved")  # its under_review may still come
    assert can_become_legal("submitted", "delivered")
    assert not can_become_legal("under_review", "accepted")  # behind the current state
    assert not can_become_legal("delivered", "approved")  # after a concluded state
    assert not can_become_legal("denied", "delivered")
    assert not can_become_legal("accepted", "under_review")  # legal now, not "held"


def test_working_days_skip_holidays_and_count_adjusted_weekends() -> None:
    # National Day 2025: 1-8 October off, Sunday 28 September and Saturday 11 October worked.
    assert not is_working_day(dt.date(2025, 10, 3))
    assert is_working_day(dt.date(2025, 9, 28))
    assert is_working_day(dt.date(2025, 10, 11))
    due = add_working_days(dt.datetime(2025, 9, 30, 2, tzinfo=dt.UTC), 1)
    assert due == dt.datetime(2025, 10, 9, 15, 59, 59, tzinfo=dt.UTC)  # 23:59:59 Beijing time
    # Beyond the calendar's known years: Monday-Friday.
    assert add_working_days(dt.datetime(2099, 1, 2, 4, tzinfo=dt.UTC), 1).date() == dt.date(2099, 1, 5)


SCHEMA = FormSchema(
    fields=[
        FormField(name="name", label="姓名", type="text", required=True),
        FormField(name="id_number", label="身份证号", type="id_number", required=True),
        FormField(name="born", label="出生日期", type="date", required=False),
        FormField(name="kind", label="类型", type="choice", required=False, choices=["a", "b"]),
        FormField(name="phone", label="电话", type="phone", required=False),
    ]
)


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"id_number": "110101199003070011"}, "name"),
        ({"name": "张三", "id_number": "110101199003070012"}, "id_number"),
        ({"name": "张三", "id_number": "110101199003070011", "born": "2026-13-01"}, "born"),
        ({"name": "张三", "id_number": "110101199003070011", "kind": "c"}, "kind"),
        ({"name": "张三", "id_number": "110101199003070011", "phone": "12345"}, "phone"),
        ({"name": "张三", "id_number": "110101199003070011", "extra": "x"}, "extra"),
        ({"name": 5, "id_number": "110101199003070011"}, "name"),
        ({"name": "张三", "id_number": "110101199003070011", "simulate": "deny"}, "simulate"),
    ],
)
def test_a_bad_form_names_its_field(form: dict[str, object], field: str) -> None:
    with pytest.raises(UnprocessableEntity) as caught:
        validate_form(SCHEMA, form, allow_simulate=False)
    assert caught.value.extensions["field"] == field


def test_a_good_form_and_the_dev_steering_field() -> None:
    form = {"name": "张三", "id_number": "110101199003070011", "born": "2020-01-31", "simulate": "deny"}
    assert validate_form(SCHEMA, form, allow_simulate=True) == form
