"""Litestar dependency providers of the codes domain: the service and the callers' principals."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide

from codes.partner_cache import PartnerCache
from codes.service import CodesService
from codes.venues import VENUE_SCOPE
from identity.dependencies import presented_token
from identity.partners import PartnerPrincipal, check_partner_dpop, require_partner_scope
from identity.staff.permissions import provide_staff_principal

__all__ = [
    "VERIFY_SCOPE",
    "provide_codes",
    "provide_staff",
    "provide_venue_partner",
    "provide_verify_partner",
]

#: Partner scope for online verification and ride-log uploads.
VERIFY_SCOPE = "codes:verify"


def provide_codes(state: State) -> CodesService:
    """The process's codes service (built in the app's lifespan)."""
    service: CodesService = state.codes
    return service


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
