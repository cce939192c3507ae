"""Identity settings: token lifetimes and the limits that protect login."""

from __future__ import annotations

import msgspec

__all__ = ["IdentitySettings"]


class IdentitySettings(msgspec.Struct, frozen=True, kw_only=True):
    """Lifetimes in seconds; limits per phone and per client address.

    Attributes:
        issuer: ``iss`` of access tokens (the BFF's public URL).
        audience: ``aud`` of access tokens for the citizen app.
        lockout_threshold: Failed OTP attempts on one phone, across codes, within
            ``lockout_window_s`` that lock the phone for ``lockout_s``. The lockout is short
            on purpose: an attacker who knows a victim's number can trigger it, so it must
            only slow guessing, never keep the citizen out for long.
    """

    issuer: str = "http://127.0.0.1:8000"
    audience: str = "onecity-app"
    access_token_ttl_s: int = 600
    refresh_idle_ttl_s: int = 7 * 24 * 3600
    session_absolute_ttl_s: int = 30 * 24 * 3600
    otp_ttl_s: int = 300
    otp_resend_after_s: int = 60
    otp_sends_per_day: int = 10
    otp_sends_per_ip_per_hour: int = 30
    otp_max_attempts: int = 5
    lockout_threshold: int = 10
    lockout_window_s: int = 900
    lockout_s: int = 900
    link_token_ttl_s: int = 600
    clock_skew_s: int = 30
