"""Prometheus metrics of staff sign-in (module-level: a registry refuses a name twice).

Labels come from fixed sets (method, result): never a username, an id or an address.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter

__all__ = ["AUTHENTICATOR_REGISTRATIONS", "SECOND_FACTOR", "STEP_UPS"]

STEP_UPS: Final = Counter(
    "onecity_staff_step_ups",
    "Staff passwords accepted and a second factor asked for, by method (webauthn, sms)",
    ["method"],
)
SECOND_FACTOR: Final = Counter(
    "onecity_staff_second_factor",
    "Staff second-factor attempts by method (webauthn, sms) and result (success, enrolment, failure, "
    "unknown_ticket, cloned, blocked, webauthn_required, wrong, dead, none, disabled)",
    ["method", "result"],
)
AUTHENTICATOR_REGISTRATIONS: Final = Counter(
    "onecity_staff_authenticator_registrations",
    "WebAuthn authenticator registrations by result (success, failure)",
    ["result"],
)
