"""Staff sign-in settings: token lifetime and the limits that protect password and code."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

import msgspec

from core.settings import Count, Seconds
from core.structs import whole

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
        webauthn_required: Staff must sign in with a WebAuthn authenticator. An account
            without one can, after password and SMS code, only enrol one (enrolment token);
            ``False`` lets such accounts sign in by SMS as before (development only; an
            account with an authenticator must use it either way).
        webauthn_rp_id: The WebAuthn relying party id: the registrable domain the staff
            console is served from (browsers refuse IP addresses).
        webauthn_rp_name: Shown by the authenticator while registering.
        webauthn_origins: Origins (scheme://host[:port]) of the staff console; each host must
            be ``webauthn_rp_id`` or a subdomain of it.
        webauthn_challenge_ttl_s: How long a WebAuthn challenge (sign-in or registration)
            waits in Redis; it works once.
        enrolment_token_ttl_s: Lifetime of the enrolment-only token.
    """

    token_ttl_s: Seconds = 900
    otp_ttl_s: Seconds = 300
    otp_max_attempts: Count = 5
    password_failures: Count = 10
    password_window_s: Seconds = 900
    password_lockout_s: Seconds = 900
    logins_per_ip_per_hour: Count = 60
    min_password_length: Count = 12
    argon2_time_cost: Count = 3
    argon2_memory_kib: Count = 65536
    argon2_parallelism: Count = 4
    webauthn_required: bool = True
    webauthn_rp_id: Annotated[str, msgspec.Meta(pattern=whole(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?"))] = "localhost"
    webauthn_rp_name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "OneCity"
    webauthn_origins: tuple[str, ...] = ("http://localhost:8000",)
    webauthn_challenge_ttl_s: Annotated[int, msgspec.Meta(ge=30, le=600)] = 120
    enrolment_token_ttl_s: Annotated[int, msgspec.Meta(ge=60, le=1800)] = 600

    def __post_init__(self) -> None:
        if not self.webauthn_origins:
            raise ValueError("ONECITY_STAFF_WEBAUTHN_ORIGINS: at least one origin")
        for origin in self.webauthn_origins:
            parts = urlsplit(origin)
            host = parts.hostname or ""
            secure = parts.scheme == "https" or (parts.scheme == "http" and host == "localhost")
            if not secure or parts.path not in ("", "/") or parts.query or parts.fragment:
                raise ValueError(
                    f"ONECITY_STAFF_WEBAUTHN_ORIGINS: {origin!r} is not an https origin (http only for localhost)"
                )
            if host != self.webauthn_rp_id and not host.endswith("." + self.webauthn_rp_id):
                raise ValueError(
                    f"ONECITY_STAFF_WEBAUTHN_ORIGINS: {origin!r} is not within ONECITY_STAFF_WEBAUTHN_RP_ID"
                    f" {self.webauthn_rp_id!r}"
                )
