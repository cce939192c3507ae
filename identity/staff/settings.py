"""Staff sign-in settings: token lifetime and the limits that protect password and code."""

from __future__ import annotations

import msgspec

__all__ = ["StaffSettings"]


class StaffSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Lifetimes in seconds.

    Attributes:
        token_ttl_s: Staff access tokens are short-lived: there is no refresh, staff sign in
            again (password and SMS code) when it expires.
        otp_ttl_s: The SMS code (and its login ticket) after a correct password.
        otp_max_attempts: Wrong codes before the ticket dies.
        password_failures: Wrong passwords for one username within ``password_window_s``
            that lock it for ``password_lockout_s``. Short on purpose: anyone who knows a
            username can trigger it, so it slows guessing without locking staff out for long.
        logins_per_ip_per_hour: Password attempts from one address per hour.
        min_password_length: For ``onecity staff add``.
        argon2_time_cost: argon2id passes (RFC 9106 low-memory profile: 3).
        argon2_memory_kib: argon2id memory per hash (64 MiB). Tune both to the hardware: a
            check should cost tens to a few hundred milliseconds.
        argon2_parallelism: argon2id lanes.
    """

    token_ttl_s: int = 900
    otp_ttl_s: int = 300
    otp_max_attempts: int = 5
    password_failures: int = 10
    password_window_s: int = 900
    password_lockout_s: int = 900
    logins_per_ip_per_hour: int = 60
    min_password_length: int = 12
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
