"""Staff authorisation: roles and a region in the city → district → street → community tree.

Regions are administrative division codes (GB/T 2260 and its extensions): 4 digits for a
city (``4301`` Changsha), 6 for a district (``430102``), 9 for a street, 12 for a community.
A staff member's region *covers* every region whose code starts with it. A citizen's
registered region is the district encoded in the first six digits of their ID number, so a
district officer covers the citizens registered in that district, and a street or community
officer covers no citizen by registration alone (fail closed: their region is finer than
what the record knows).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from litestar import Request
from litestar.datastructures import State

from core.errors import Forbidden, Unauthorized
from core.structs import Response
from identity.dependencies import bearer_token
from identity.tokens import AccessTokens

__all__ = ["STAFF_AUDIENCE", "Role", "StaffPrincipal", "authenticate_staff", "provide_staff_principal", "region_covers"]

#: ``aud`` and ``client_id`` of staff access tokens: never accepted as citizen or partner tokens.
STAFF_AUDIENCE = "onecity-staff"
_REGION = re.compile(r"^(?:[0-9]{4}|[0-9]{6}|[0-9]{9}|[0-9]{12})$")


class Role(StrEnum):
    """What a staff member does."""

    HEALTH_OFFICER = "health_officer"
    AUDITOR = "auditor"
    ADMIN = "admin"


def region_covers(staff_region: str, target_region: str | None) -> bool:
    """Whether a staff member of ``staff_region`` may act on something in ``target_region``."""
    if not target_region or not _REGION.match(staff_region) or not _REGION.match(target_region):
        return False
    return len(staff_region) <= len(target_region) and target_region.startswith(staff_region)


class StaffPrincipal(Response, frozen=True):
    """The staff member behind a request."""

    staff_id: str
    roles: frozenset[str]
    region: str

    def require_role(self, *roles: Role) -> None:
        """403 unless the staff member holds one of ``roles``."""
        if not self.roles & {r.value for r in roles}:
            raise Forbidden("Your role does not allow this")

    def require_region(self, target_region: str | None) -> None:
        """403 unless the staff member's region covers ``target_region``."""
        if not region_covers(self.region, target_region):
            raise Forbidden("Outside your region")


async def authenticate_staff(tokens: AccessTokens, token: str) -> StaffPrincipal:
    """Verify a staff access token, or 401."""
    claims = await tokens.verify(token, audience=STAFF_AUDIENCE)
    if claims.client_id != STAFF_AUDIENCE or claims.region is None or claims.roles is None:
        raise Unauthorized("A staff access token is required", error="invalid_token")
    return StaffPrincipal(staff_id=claims.sub, roles=frozenset(claims.roles), region=claims.region)


async def provide_staff_principal(request: Request[Any, Any, Any], state: State) -> StaffPrincipal:
    """Dependency provider: the authenticated staff member."""
    return await authenticate_staff(state.access_tokens, bearer_token(request))
