"""Litestar dependency providers of the codes domain: its job services and the callers' principals.

Each handler takes the one service it calls, by the name :data:`CODES_DEPENDENCIES` registers
(``code_issuing: NamedDependency[Issuer]``), never the assembled :class:`~codes.service.CodesService`
to reach through it. ``codes`` itself is provided for what belongs to the domain as a whole (the
code keys' JWKS and their cache lifetime).

One exception, on the hot path of ``POST /v1/codes/verify``: its handler calls
:func:`provide_online_verification` directly with the app state instead of declaring it as a
second dependency. With the partner as its only dependency Litestar resolves it inline; a second
one makes Litestar resolve the batch in an anyio task group, a measurable share of that route's
CPU time.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide

from codes.issuing import Issuer
from codes.online_verification import OnlineVerifier
from codes.overrides import Overrides
from codes.partner_cache import PartnerCache
from codes.ride_devices import Rides
from codes.rule_versions import RuleBook
from codes.service import CodesService
from codes.venues import VENUE_SCOPE, Venues
from identity.dependencies import presented_token
from identity.partners import PartnerPrincipal, check_partner_dpop, require_partner_scope
from identity.staff.permissions import provide_staff_principal

__all__ = [
    "CODES_DEPENDENCIES",
    "VERIFY_SCOPE",
    "provide_code_issuing",
    "provide_codes",
    "provide_health_overrides",
    "provide_online_verification",
    "provide_ride_devices",
    "provide_rule_versions",
    "provide_staff",
    "provide_venue_partner",
    "provide_venues",
    "provide_verify_partner",
]

#: Partner scope for online verification and ride-log uploads.
VERIFY_SCOPE = "codes:verify"


def provide_codes(state: State) -> CodesService:
    """The process's codes domain (built in the app's lifespan)."""
    service: CodesService = state.codes
    return service


def provide_code_issuing(state: State) -> Issuer:
    """Citizens' codes: overview, issuing, images, revocation."""
    service: CodesService = state.codes
    return service.issuing


def provide_online_verification(state: State) -> OnlineVerifier:
    """Partners' online verification."""
    service: CodesService = state.codes
    return service.verification


def provide_venues(state: State) -> Venues:
    """Venues, posters, check-ins and exposure queries."""
    service: CodesService = state.codes
    return service.venues


def provide_ride_devices(state: State) -> Rides:
    """Offline ride-code devices and validator log uploads."""
    service: CodesService = state.codes
    return service.rides


def provide_health_overrides(state: State) -> Overrides:
    """Staff overrides of citizens' health status."""
    service: CodesService = state.codes
    return service.overrides


def provide_rule_versions(state: State) -> RuleBook:
    """The stored, published health rule versions."""
    service: CodesService = state.codes
    return service.rules


#: App-level dependencies of the codes domain (registered with the app's other dependencies);
#: the keys are the parameter names handlers declare.
CODES_DEPENDENCIES = {
    "codes": Provide(provide_codes, sync_to_thread=False),
    "code_issuing": Provide(provide_code_issuing, sync_to_thread=False),
    "online_verification": Provide(provide_online_verification, sync_to_thread=False),
    "venues": Provide(provide_venues, sync_to_thread=False),
    "ride_devices": Provide(provide_ride_devices, sync_to_thread=False),
    "health_overrides": Provide(provide_health_overrides, sync_to_thread=False),
    "rule_versions": Provide(provide_rule_versions, sync_to_thread=False),
}


def _cached_partner(scope: str) -> Callable[..., Coroutine[Any, Any, PartnerPrincipal]]:
    authenticate = require_partner_scope(scope, check_dpop=False)

    async def provide(request: Request[Any, Any, Any], state: State) -> PartnerPrincipal:
        cache: PartnerCache = state.codes.partners
        # 401/403 are raised to every concurrent waiter and never cached.
        _, token = presented_token(request)
        partner = await cache.authenticate(scope, token, lambda: authenticate(request, state))
        # A DPoP proof is per request: checked after the cache, never cached.
        await check_partner_dpop(request, state, partner)
        return partner

    return provide


#: The partner behind a verification or a ride-log upload (scope ``codes:verify``).
provide_verify_partner = Provide(_cached_partner(VERIFY_SCOPE))
#: A partner managing its venues (scope ``venues:write``).
provide_venue_partner = Provide(require_partner_scope(VENUE_SCOPE))
#: The authenticated staff member.
provide_staff = Provide(provide_staff_principal)
