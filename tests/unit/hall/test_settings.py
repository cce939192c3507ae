"""The hall's settings come from ONECITY_HALL_* and the department URLs, validated."""

from __future__ import annotations

import pytest

from bff.settings import SettingsError, load_settings


def test_hall_settings_and_department_urls_are_read() -> None:
    settings = load_settings(
        {
            "ONECITY_HALL_WORKER": "false",
            "ONECITY_HALL_RETRY_BUDGET_S": "172800",
            "ONECITY_HALL_HEARTBEAT_S": "10",
            "ONECITY_HUKOU_URL": "https://hukou.example",
            "ONECITY_EDUCATION_URL": "https://edu.example",
        }
    )
    assert settings.hall.worker is False
    assert settings.hall.retry_budget_s == 172800
    assert settings.hall.heartbeat_s == 10
    assert settings.departments.url("hukou") == "https://hukou.example"
    assert settings.departments.url("education") == "https://edu.example"
    assert load_settings({}).hall.retry_budget_s == 86400  # at least 24 h by default


@pytest.mark.parametrize(
    ("name", "value"),
    [("ONECITY_HALL_RETRY_BUDGET_S", "-1"), ("ONECITY_HALL_WORKER_CONCURRENCY", "0"), ("ONECITY_HALL_WORKER", "maybe")],
)
def test_a_bad_hall_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})
