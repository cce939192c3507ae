"""Prometheus metrics of citizen identity (default registry, served at ``/metrics``).

Module-level for the same reason as :mod:`services.resilience.metrics`: a registry refuses a
second metric of one name. Labels come from fixed sets: never a phone, an ID number or an
account.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter

__all__ = ["LOGIN_DELAYS", "REGISTRY_CALLS", "STEP_UPS"]

REGISTRY_CALLS: Final = Counter(
    "onecity_identity_registry_calls",
    "Population registry checks by purpose (real_name, correction) and outcome (match, no_match, error)",
    ["purpose", "outcome"],
)
LOGIN_DELAYS: Final = Counter(
    "onecity_identity_login_delays",
    "Delays imposed on a phone and client address after failed OTP checks (the successor of lockouts)",
)
STEP_UPS: Final = Counter(
    "onecity_identity_step_ups",
    "Identity level changes and re-verifications by kind (real_name, real_person, reverified, correction)",
    ["kind", "outcome"],
)
