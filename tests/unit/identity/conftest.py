"""Shared fixtures for identity's unit tests: the real key manager and fixed settings."""

from __future__ import annotations

import pytest

from core.keys import KeyManager, KeyStore
from identity.settings import IdentitySettings

#: Small limits, so every threshold is reached in a few calls (the defaults are production's).
SETTINGS = IdentitySettings(
    issuer="https://city.example",
    audience="onecity-app",
    access_token_ttl_s=600,
    clock_skew_s=30,
    otp_ttl_s=300,
    otp_resend_after_s=60,
    otp_sends_per_day=3,
    otp_sends_per_day_known=2,
    otp_stranger_sends_per_phone_per_ip=2,
    otp_sends_per_ip_per_hour=2,
    otp_max_attempts=5,
    lockout_threshold=3,
    lockout_window_s=900,
    lockout_s=5,
)


@pytest.fixture
def identity_settings() -> IdentitySettings:
    return SETTINGS


@pytest.fixture
async def keys(key_store: KeyStore) -> KeyManager:
    """The process's key manager over the test database's signing keys."""
    return await KeyManager.open(key_store)
