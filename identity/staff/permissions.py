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
from collections.abc import Iterable
from enum import StrEnum
from typing import Any, Literal

from litestar import Request
from litestar.connection import ASGIConnection

from core.errors import Forbidden, Unauthorized
from core.structs import FrozenStruct
from identity.revocation import ACCESS_TOKENS, STAFF, RevocationSet, revocations_of
from identity.tokens import AccessTokens

__all__ = [
    "DUTIES",
    "LEGACY_ROLES",
    "STAFF_AUDIENCE",
    "STAFF_ENROL_AUDIENCE",
    "EnrollingStaff",
    "RegionLevel",
    "Role",
    "StaffPrincipal",
    "authenticate_staff",
    "can_act_on_citizen",
    "provide_enrolling_staff",
    "provide_staff_principal",
    "region_covers",
    "region_level",
    "separation_of_duties_violation",
    "staff_principal_of",
]

#: ``aud`` and ``client_id`` of staff access tokens: never accepted as citizen or partner tokens.
STAFF_AUDIENCE = "onecity-staff"
#: ``aud`` of the enrolment-only token (password + SMS, no security key yet): it registers a
#: security key and nothing else; every staff endpoint refuses it for its audience.
STAFF_ENROL_AUDIENCE = "onecity-staff-enrol"
_REGION = re.compile(r"^(?:[0-9]{4}|[0-9]{6}|[0-9]{9}|[0-9]{12})$")

RegionLevel = Literal["city", "district", "street", "community"]
_LEVELS: dict[int, RegionLevel] = {4: "city", 6: "district", 9: "street", 12: "community"}


class Role(StrEnum):
    """What a staff member does.

    The three duties of 等保 2.0 level 3 (三员分立) are :attr:`SYSTEM_ADMIN`,
    :attr:`SECURITY_ADMIN` and :attr:`AUDITOR`; no account holds two of them (see
    :func:`separation_of_duties_violation`). :attr:`HEALTH_OFFICER` is a business role.
    """

    HEALTH_OFFICER = "health_officer"
    #: 系统管理员: runs the city's configuration (health rules, venues); was ``admin``.
    SYSTEM_ADMIN = "system_admin"
    #: 安全管理员: staff accounts, their roles and authenticator recovery.
    SECURITY_ADMIN = "security_admin"
    #: 安全审计员: reads the audit log and changes nothing.
    AUDITOR = "auditor"
    #: The name code written before the split keeps working: the system administrator.
    ADMIN = "system_admin"


#: The three duties that one account may not combine.
DUTIES: frozenset[str] = frozenset({Role.SYSTEM_ADMIN.value, Role.SECURITY_ADMIN.value, Role.AUDITOR.value})
#: Role names from before migration 0015 renamed them: in tokens issued before it (they live
#: 15 minutes) and in callers of ``StaffAdmin`` written before it.
LEGACY_ROLES = {"admin": Role.SYSTEM_ADMIN.value}


def separation_of_duties_violation(roles: Iterable[str]) -> str | None:
    """Why ``roles`` may not be held by one account, or ``None`` when they may.

    No account combines two of system administrator, security administrator and auditor;
    an auditor holds no other role at all, so the account that reviews the log has no
    power to change what the log records. (Migration 0015 enforces the same in PostgreSQL.)
    """
    held = set(roles)
    duties = sorted(held & DUTIES)
    if len(duties) > 1:
        return f"one account cannot be {' and '.join(duties)} (separation of duties)"
    if Role.AUDITOR.value in held and len(held) > 1:
        return "an auditor holds no other role (separation of duties)"
    return None


def region_level(region: str) -> RegionLevel | None:
    """``city``, ``district``, ``street`` or ``community`` for a well-formed code, else ``None``."""
    return _LEVELS.get(len(region)) if _REGION.fullmatch(region) else None


def region_covers(staff_region: str, target_region: str | None) -> bool:
    """Whether a staff member of ``staff_region`` may act on something in ``target_region``."""
    if not target_region or not _REGION.fullmatch(staff_region) or not _REGION.fullmatch(target_region):
        return False
    return len(staff_region) <= len(target_region) and target_region.startswith(staff_region)


class StaffPrincipal(FrozenStruct, frozen=True):
    """The staff member behind a request."""

    staff_id: str
    roles: frozenset[str]
    region: str
    issued_at: int = 0

    def require_role(self, *roles: Role) -> None:
        """403 unless the staff member holds one of ``roles``."""
        if not self.roles & {r.value for r in roles}:
            raise Forbidden("Your role does not allow this")

    def require_region(self, target_region: str | None) -> None:
        """403 unless the staff member's region covers ``target_region``."""
        if not region_covers(self.region, target_region):
            raise Forbidden("Outside your region")

    def require_citizen(self, account_region_code: str | None, *roles: Role) -> None:
        """403 unless :func:`can_act_on_citizen` (and, if given, one of ``roles``)."""
        if roles:
            self.require_role(*roles)
        if not can_act_on_citizen(self, account_region_code):
            raise Forbidden("This citizen is registered outside your region")


def can_act_on_citizen(staff: StaffPrincipal, account_region_code: str | None) -> bool:
    """Whether ``staff`` may act on a citizen registered in ``account_region_code``.

    ``account_region_code`` is ``accounts.region_code``: the six-digit district of the ID
    number (``None`` below real-name level, which no staff region covers). A city officer
    covers every district of the city; a district officer that district only, never a
    neighbour; street and community officers no citizen, since registration records
    districts only.
    """
    if account_region_code is None or len(account_region_code) != 6:
        return False
    return region_covers(staff.region, account_region_code)


async def authenticate_staff(tokens: AccessTokens, token: str, revocations: RevocationSet) -> StaffPrincipal:
    """Verify a staff access token and that neither it nor its staff member was revoked since, or 401."""
    claims = await tokens.verify(token, audience=STAFF_AUDIENCE)
    if claims.client_id != STAFF_AUDIENCE or claims.region is None or claims.roles is None:
        raise Unauthorized("A staff access token is required", error="invalid_token")
    if await revocations.is_revoked((ACCESS_TOKENS, claims.jti), (STAFF, claims.sub)):
        raise Unauthorized("This staff account is disabled", error="invalid_token")
    roles = frozenset(LEGACY_ROLES.get(r, r) for r in claims.roles)
    return StaffPrincipal(staff_id=claims.sub, roles=roles, region=claims.region, issued_at=claims.iat)


_PRINCIPAL = "onecity.staff_principal"


async def staff_principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> StaffPrincipal:
    """The staff member behind ``connection``, verified once per request.

    Guards and the ``staff`` dependency both need the principal; the first to ask verifies
    the token (signature, audience, revocation) and keeps the result in the request's scope
    state, so a guarded route does not verify twice.

    Raises:
        Unauthorized: no bearer token, or not a live staff access token.
    """
    scope_state = connection.scope.setdefault("state", {})
    cached = scope_state.get(_PRINCIPAL)
    if isinstance(cached, StaffPrincipal):
        return cached
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("A bearer access token is required", headers={"WWW-Authenticate": 'Bearer realm="onecity"'})
    state = connection.app.state
    principal = await authenticate_staff(state.access_tokens, token.strip(), revocations_of(state))
    staff_service = state.get("staff")
    if staff_service is not None:
        # A role change or a recovery since the token was issued ends it: it may carry
        # roles the member no longer holds, or come from a key that was revoked.
        not_before = await staff_service.tokens_not_before(principal.staff_id)
        if not_before is not None and principal.issued_at < int(not_before):
            raise Unauthorized("Your roles or security keys changed: sign in again", error="invalid_token")
    scope_state[_PRINCIPAL] = principal
    return principal


async def provide_staff_principal(request: Request[Any, Any, Any]) -> StaffPrincipal:
    """Dependency provider: the authenticated staff member."""
    return await staff_principal_of(request)


class EnrollingStaff(FrozenStruct, frozen=True):
    """Who may manage security keys: a signed-in member (``enrolment_jti`` ``None``) or one
    holding an enrolment-only token (its ``jti``, so that it registers one key only)."""

    staff_id: str
    enrolment_jti: str | None = None
    expires_at: int = 0


async def provide_enrolling_staff(request: Request[Any, Any, Any]) -> EnrollingStaff:
    """Dependency provider: the staff member behind an enrolment-only or a staff token."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    state = request.app.state
    if scheme.lower() == "bearer" and token.strip():
        try:
            claims = await state.access_tokens.verify(token.strip(), audience=STAFF_ENROL_AUDIENCE)
        except Unauthorized:
            pass
        else:
            revocations = revocations_of(state)
            if claims.client_id != STAFF_AUDIENCE or await revocations.is_revoked(
                (ACCESS_TOKENS, claims.jti), (STAFF, claims.sub)
            ):
                raise Unauthorized("This enrolment token is not valid", error="invalid_token")
            return EnrollingStaff(staff_id=claims.sub, enrolment_jti=claims.jti, expires_at=claims.exp)
    principal = await staff_principal_of(request)
    return EnrollingStaff(staff_id=principal.staff_id)
