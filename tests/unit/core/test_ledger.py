"""The ledger's shared rules: holds on exposure queries, the release event's content."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.errors import UnprocessableEntity
from core.ledger import ACTIONS_BY_KIND, KINDS, MAX_HOLD, check_hold, id_token_release

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def test_a_hold_is_optional_future_bounded_and_returned_in_utc() -> None:
    assert check_hold(None, NOW) is None
    beijing = timezone(timedelta(hours=8))
    held = check_hold((NOW + timedelta(days=2)).astimezone(beijing), NOW)
    assert held == NOW + timedelta(days=2) and held is not None and held.utcoffset() == timedelta(0)
    assert check_hold(NOW + MAX_HOLD, NOW) == NOW + MAX_HOLD


@pytest.mark.parametrize(
    "hold",
    [
        NOW,
        NOW - timedelta(seconds=1),
        NOW + MAX_HOLD + timedelta(seconds=1),
        (NOW + timedelta(days=1)).replace(tzinfo=None),
    ],
)
def test_bad_holds_are_refused(hold: datetime) -> None:
    with pytest.raises(UnprocessableEntity) as refused:
        check_hold(hold, NOW)
    assert refused.value.extensions == {"field": "hold_until"}


def test_the_release_event_names_claims_never_values() -> None:
    event = id_token_release("hospital", "acc-1", {"phone_number": "+8613800000001", "name": "张三"})
    assert event.subject_id == "acc-1" and event.actor_id == "hospital" and event.actor_type == "partner"
    assert dict(event.details) == {"claims": ["name", "phone_number"]}
    assert event.action in ACTIONS_BY_KIND["claims_release"]
    assert KINDS == (
        "department_read",
        "code_verification",
        "claims_release",
        "staff_action",
        "application_handling",
        "message_delivery",
    )
    assert ACTIONS_BY_KIND["message_delivery"] == ("messages.sms_fallback",)
