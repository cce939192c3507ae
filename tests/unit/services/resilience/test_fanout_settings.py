"""The fan-out's default policy is internally consistent."""

from __future__ import annotations

import pytest

from services.fanout import DEFAULT_TTLS, FanoutSettings


def test_every_default_ttl_keeps_stale_data_longer_than_it_serves_it() -> None:
    for department, ttls in DEFAULT_TTLS.items():
        for resource, ttl in ttls.items():
            assert ttl.stale_if_error_s >= ttl.fresh_s + ttl.revalidate_s, (department, resource)


def test_per_call_timeout_leaves_room_for_a_retry_inside_the_deadline() -> None:
    settings = FanoutSettings()
    assert settings.call_timeout_ms < settings.deadline_ms
    assert settings.retry.max_attempts >= 2
    assert settings.cache_timeout_ms < settings.deadline_ms / 4


def test_policy_lookup() -> None:
    settings = FanoutSettings()
    assert settings.policy("health").required_level == "L3"
    assert "trips" in settings.policy("transport").endpoint_breakers
    with pytest.raises(KeyError):
        settings.policy("registry")
