"""HTTP endpoints of staff administration: the auditor's audit log, the security
administrator's role changes. Role checks are route guards (:mod:`identity.staff.guards`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK

from core.http import BEARER, error_responses
from identity.dependencies import client_ip
from identity.staff.admin import StaffAdmin
from identity.staff.audit_log import AuditReader
from identity.staff.dependencies import provide_audit_reader, provide_staff_admin, provide_staff_principal
from identity.staff.guards import staff_roles
from identity.staff.permissions import Role, StaffPrincipal
from identity.staff.schemas import AuditPage, RecoveryResult, StaffProfile, StaffRolesChange

__all__ = ["StaffAdminController"]


class StaffAdminController(Controller):
    """Separation of duties: auditors read the log, security administrators manage staff."""

    path = "/v1/admin"
    tags = ["staff-admin"]
    security = BEARER
    dependencies = {
        "staff": Provide(provide_staff_principal),
        "audit_reader": Provide(provide_audit_reader, sync_to_thread=False),
        "staff_admin": Provide(provide_staff_admin, sync_to_thread=False),
    }

    @get("/audit", guards=[staff_roles(Role.AUDITOR)], responses=error_responses(400, 401, 403))
    async def audit(
        self,
        staff: NamedDependency[StaffPrincipal],
        audit_reader: NamedDependency[AuditReader],
        request: Request[Any, Any, Any],
        cursor: Annotated[
            str | None, QueryParameter(max_length=64, description="next_cursor of the page before")
        ] = None,
        action: Annotated[
            str | None, QueryParameter(max_length=65, description="an action, or a prefix ending in *")
        ] = None,
        since: Annotated[datetime | None, QueryParameter(description="RFC 3339; rows at or after")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> AuditPage:
        """The audit log, newest first, scoped to the auditor's region (auditors only; each
        read is itself audited)."""
        return await audit_reader.page(
            staff, cursor=cursor, action=action, since=since, limit=limit, client_ip=client_ip(request)
        )

    @put(
        "/staff/{staff_id:uuid}/roles",
        guards=[staff_roles(Role.SECURITY_ADMIN)],
        responses=error_responses(401, 403, 404, 422),
    )
    async def set_roles(
        self,
        staff_id: UUID,
        data: JSONBody[StaffRolesChange],
        staff: NamedDependency[StaffPrincipal],
        staff_admin: NamedDependency[StaffAdmin],
    ) -> StaffProfile:
        """Replace a staff member's roles (security administrators; never their own; audited).
        Roles that break separation of duties are refused with 422 ``separation-of-duties``."""
        return await staff_admin.set_roles(str(staff_id), data.roles, actor_type="staff", actor_id=staff.staff_id)

    @post(
        "/staff/{staff_id:uuid}/recovery",
        status_code=HTTP_200_OK,
        guards=[staff_roles(Role.SECURITY_ADMIN)],
        responses=error_responses(401, 403, 404),
    )
    async def recover(
        self,
        staff_id: UUID,
        staff: NamedDependency[StaffPrincipal],
        staff_admin: NamedDependency[StaffAdmin],
        request: Request[Any, Any, Any],
    ) -> RecoveryResult:
        """Security-key recovery (security administrators; never their own; audited): revoke
        every security key of the member, whose next sign-in (password + SMS code) may then
        only enrol a new key."""
        return await staff_admin.recover(
            str(staff_id), actor_type="staff", actor_id=staff.staff_id, client_ip=client_ip(request)
        )
