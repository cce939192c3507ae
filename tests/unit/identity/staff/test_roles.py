"""Separation of duties as a pure rule, and the audit cursor."""

from __future__ import annotations

import pytest

from core.errors import BadRequest
from identity.staff import Role, separation_of_duties_violation
from identity.staff.audit_log import decode_cursor, encode_cursor


@pytest.mark.parametrize(
    ("roles", "allowed"),
    [
        (["health_officer"], True),
        (["system_admin"], True),
        (["security_admin"], True),
        (["auditor"], True),
        (["system_admin", "health_officer"], True),
        (["security_admin", "health_officer"], True),
        (["system_admin", "security_admin"], False),
        (["system_admin", "auditor"], False),
        (["security_admin", "auditor"], False),
        (["auditor", "health_officer"], False),
    ],
)
def test_separation_of_duties(roles: list[str], allowed: bool) -> None:
    assert (separation_of_duties_violation(roles) is None) is allowed


def test_the_old_admin_name_means_the_system_administrator() -> None:
    assert Role.ADMIN is Role.SYSTEM_ADMIN
    assert [r.value for r in Role] == ["health_officer", "system_admin", "security_admin", "auditor"]


def test_cursor_round_trip_and_forgeries() -> None:
    assert decode_cursor(encode_cursor(12345)) == 12345
    for bad in ("", "!!!", encode_cursor(1).upper(), "YjoxMg"):  # "b:12": another prefix
        with pytest.raises(BadRequest):
            decode_cursor(bad)
