"""HTTP endpoints of staff sign-in (password, then security key or SMS code, then a staff
token) and of the member's own security keys."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED

from core.http import BEARER, error_responses
from identity.dependencies import client_ip
from identity.staff.dependencies import provide_enrolling_staff, provide_staff_principal, provide_staff_service
from identity.staff.permissions import EnrollingStaff, StaffPrincipal
from identity.staff.schemas import (
    AuthenticatorList,
    AuthenticatorRegistration,
    AuthenticatorView,
    StaffOtpLogin,
    StaffOtpSent,
    StaffPasswordLogin,
    StaffProfile,
    StaffToken,
    StaffWebAuthnLogin,
    WebAuthnOptions,
)
from identity.staff.service import StaffService

__all__ = ["StaffAuthController"]


class StaffAuthController(Controller):
    """Staff sign in separately from citizens: password, then a security key (WebAuthn) or,
    without one, an SMS code that only lets them enrol one."""

    path = "/v1/staff"
    tags = ["staff"]
    dependencies = {
        "staff_service": Provide(provide_staff_service, sync_to_thread=False),
        "staff": Provide(provide_staff_principal),
        "enrolling": Provide(provide_enrolling_staff),
    }

    @post("/login/password", status_code=HTTP_202_ACCEPTED, responses=error_responses(401, 429))
    async def password(
        self,
        data: JSONBody[StaffPasswordLogin],
        staff_service: NamedDependency[StaffService],
        request: Request[Any, Any, Any],
    ) -> StaffOtpSent:
        """Check username and password. With a security key registered: WebAuthn options
        (``second_factor: webauthn``, no SMS); otherwise a 6-digit code by SMS."""
        return await staff_service.password_step(data, client_ip=client_ip(request))

    @post("/login/otp", status_code=HTTP_200_OK, responses=error_responses(401))
    async def otp(
        self,
        data: JSONBody[StaffOtpLogin],
        staff_service: NamedDependency[StaffService],
        request: Request[Any, Any, Any],
    ) -> StaffToken:
        """Exchange the ticket and the SMS code for an enrolment-only token (no security key
        yet). Refused (``webauthn-required``) for an account that has a security key."""
        return await staff_service.otp_step(data, client_ip=client_ip(request))

    @post("/login/webauthn", status_code=HTTP_200_OK, responses=error_responses(401))
    async def webauthn(
        self,
        data: JSONBody[StaffWebAuthnLogin],
        staff_service: NamedDependency[StaffService],
        request: Request[Any, Any, Any],
    ) -> StaffToken:
        """Exchange the ticket and the security key's assertion for a staff access token."""
        return await staff_service.webauthn_step(data, client_ip=client_ip(request))

    @get("/authenticators", security=BEARER, responses=error_responses(401))
    async def authenticators(
        self, enrolling: NamedDependency[EnrollingStaff], staff_service: NamedDependency[StaffService]
    ) -> AuthenticatorList:
        """The member's active security keys (staff or enrolment-only token)."""
        return await staff_service.authenticators(enrolling)

    @post("/authenticators/options", status_code=HTTP_200_OK, security=BEARER, responses=error_responses(401))
    async def registration_options(
        self, enrolling: NamedDependency[EnrollingStaff], staff_service: NamedDependency[StaffService]
    ) -> WebAuthnOptions:
        """Options for ``navigator.credentials.create`` (staff or enrolment-only token)."""
        return await staff_service.registration_options(enrolling)

    @post("/authenticators", status_code=HTTP_201_CREATED, security=BEARER, responses=error_responses(401, 422))
    async def register(
        self,
        data: JSONBody[AuthenticatorRegistration],
        enrolling: NamedDependency[EnrollingStaff],
        staff_service: NamedDependency[StaffService],
        request: Request[Any, Any, Any],
    ) -> AuthenticatorView:
        """Register a security key from its attestation (audited); an enrolment-only token
        registers one key."""
        return await staff_service.register_authenticator(enrolling, data, client_ip=client_ip(request))

    @get("/me", security=BEARER, responses=error_responses(401))
    async def me(
        self, staff: NamedDependency[StaffPrincipal], staff_service: NamedDependency[StaffService]
    ) -> StaffProfile:
        """The signed-in staff member: roles and region."""
        return await staff_service.me(staff)
