"""Identity settings: token lifetimes and the limits that protect login."""

from __future__ import annotations

from typing import Annotated

import msgspec

from core.settings import Count, Days, Seconds

__all__ = ["IdentitySettings"]


class IdentitySettings(msgspec.Struct, frozen=True, kw_only=True):
    """Lifetimes in seconds; limits per phone and per client address.

    Attributes:
        issuer: ``iss`` of access tokens (the BFF's public URL).
        audience: ``aud`` of access tokens for the citizen app.
        otp_sends_per_day: Codes a day for one phone requested by *strangers*: a client
            address and device that never completed a login for that phone. A stranger can
            spend this ceiling, never the owner's own budget below.
        otp_sends_per_day_known: Codes a day for one phone requested from an address or
            device that completed a login for it before (the owner's budget).
        otp_stranger_sends_per_phone_per_ip: Of the stranger ceiling, what one client address
            may spend for one phone in a day.
        known_client_ttl_s: How long an address or device stays "known" for a phone after a
            successful login.
        lockout_threshold: Failed OTP checks from one client address on one phone, within
            ``lockout_window_s``, before each further failure makes *that address* wait
            (1 s, 2 s, 4 s, ... up to ``lockout_s``). Nobody else is slowed: there is no
            phone-wide lock an attacker could set off against the owner.
        real_name_attempts_per_account: Registry checks one account may make a day.
        real_name_attempts_per_id_number: Registry checks of one ID number a day, over all
            accounts.
        recycled_number_after_days: A login from a new device to an L3/L4 account idle this
            long is held back until the citizen proves the bound identity again (carriers
            re-issue a cancelled number after 90 days).
    """

    issuer: str = "http://127.0.0.1:8000"
    audience: str = "onecity-app"
    access_token_ttl_s: Seconds = 600
    refresh_idle_ttl_s: Seconds = 7 * 24 * 3600
    session_absolute_ttl_s: Seconds = 30 * 24 * 3600
    otp_ttl_s: Seconds = 300
    otp_resend_after_s: Annotated[int, msgspec.Meta(ge=0)] = 60
    otp_sends_per_day: Count = 10
    otp_sends_per_day_known: Count = 10
    otp_stranger_sends_per_phone_per_ip: Count = 3
    known_client_ttl_s: Seconds = 180 * 24 * 3600
    otp_sends_per_ip_per_hour: Count = 30
    otp_max_attempts: Count = 5
    lockout_threshold: Count = 3
    lockout_window_s: Seconds = 900
    lockout_s: Seconds = 900
    real_name_attempts_per_account: Count = 5
    real_name_attempts_per_id_number: Count = 5
    recycled_number_after_days: Days = 90
    link_token_ttl_s: Seconds = 600
    clock_skew_s: Annotated[int, msgspec.Meta(ge=0, le=300)] = 30
