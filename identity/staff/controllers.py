"""HTTP endpoints of staff sign-in: password, then SMS code, then a staff token."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from core.http import BEARER, error_responses
from identity.dependencies import client_ip
from identity.staff.dependencies import provide_staff_service
from identity.staff.permissions import StaffPrincipal, provide_staff_principal
from identity.staff.schemas import StaffOtpLogin, StaffOtpSent, StaffPasswordLogin, StaffProfile, StaffToken
from identity.staff.service import StaffService

__all__ = ["StaffAuthController"]


class StaffAuthController(Controller):
    """Staff sign in separately from citizens: password and SMS code."""

    path = "/v1/staff"
    tags = ["staff"]
    dependencies = {
        "staff_service": Provide(provide_staff_service, sync_to_thread=False),
        "staff": Provide(provide_staff_principal),
    }

    @post("/login/password", status_code=HTTP_202_ACCEPTED, responses=error_responses(401, 429))
    async def password(
        self,
        data: JSONBody[StaffPasswordLogin],
        staff_service: NamedDependency[StaffService],
        request: Request[Any, Any, Any],
    ) -> StaffOtpSent:
        """Check username and password; a 6-digit code goes by SMS to the staff phone."""
        return await staff_service.password_step(data, client_ip=client_ip(request))

    @post("/login/otp", status_code=HTTP_200_OK, responses=error_responses(401))
    async def otp(
        self,
        data: JSONBody[StaffOtpLogin],
        staff_service: NamedDependency[StaffService],
        request: Request[Any, Any, Any],
    ) -> StaffToken:
        """Exchange the ticket and the SMS code for a staff access token."""
        return await staff_service.otp_step(data, client_ip=client_ip(request))

    @get("/me", security=BEARER, responses=error_responses(401))
    async def me(
        self, staff: NamedDependency[StaffPrincipal], staff_service: NamedDependency[StaffService]
    ) -> StaffProfile:
        """The signed-in staff member: roles and region."""
        return await staff_service.me(staff)
