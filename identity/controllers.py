"""HTTP endpoints of citizen identity: thin, each decodes a Struct and calls the service."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from core.http import BEARER, error_responses
from identity.dependencies import client_ip, provide_principal
from identity.principal import Principal
from identity.schemas import (
    Account,
    IdentityCorrectionRequest,
    LoginRequest,
    MiniProgramLinkRequired,
    MiniProgramLoginRequest,
    OtpRequest,
    OtpSent,
    RealNameRequest,
    RealPersonRequest,
    RefreshRequest,
    SessionList,
    TokenPair,
)
from identity.service import IdentityService

__all__ = ["AuthController", "MeController"]


class AuthController(Controller):
    """Login, refresh and logout for the citizen app."""

    path = "/v1/auth"
    tags = ["identity"]
    # A session held back as a possibly recycled number may still log out.
    dependencies = {"principal": Provide(provide_principal)}

    @post("/otp", status_code=HTTP_202_ACCEPTED, responses=error_responses(429))
    async def send_otp(
        self, data: JSONBody[OtpRequest], identity: NamedDependency[IdentityService], request: Request[Any, Any, Any]
    ) -> OtpSent:
        """Send a 6-digit one-time code to the phone by SMS (valid 5 minutes)."""
        return await identity.send_otp(data.phone, client_ip=client_ip(request), device_id=data.device_id)

    @post("/login", status_code=HTTP_200_OK, responses=error_responses(401, 429))
    async def login(
        self, data: JSONBody[LoginRequest], identity: NamedDependency[IdentityService], request: Request[Any, Any, Any]
    ) -> TokenPair:
        """Log in (the first time: sign up at level L2) with the phone and its code."""
        login = await identity.login_with_otp(
            data.phone,
            data.otp,
            channel="app",
            device=data.device,
            link_token=data.link_token,
            client_ip=client_ip(request),
        )
        assert login.tokens is not None  # the app channel always opens a session
        return login.tokens

    @post("/refresh", status_code=HTTP_200_OK, responses=error_responses(401))
    async def refresh(
        self,
        data: JSONBody[RefreshRequest],
        identity: NamedDependency[IdentityService],
        request: Request[Any, Any, Any],
    ) -> TokenPair:
        """Rotate the refresh token; a reused one revokes its whole family."""
        return await identity.refresh(data.refresh_token, client_ip=client_ip(request))

    @post(
        "/miniprogram",
        status_code=HTTP_200_OK,
        responses={
            202: ResponseSpec(MiniProgramLinkRequired, description="First login: link with an OTP"),
            **error_responses(401, 429),
        },
    )
    async def miniprogram(
        self,
        data: JSONBody[MiniProgramLoginRequest],
        identity: NamedDependency[IdentityService],
        request: Request[Any, Any, Any],
    ) -> Response[TokenPair | MiniProgramLinkRequired]:
        """Log in from a mini-program. The first time, answers 202 with a ``link_token``:
        send an OTP to the phone and log in with it and the ``link_token`` to link."""
        result = await identity.miniprogram_login(data, client_ip=client_ip(request))
        status = HTTP_202_ACCEPTED if isinstance(result, MiniProgramLinkRequired) else HTTP_200_OK
        return Response(result, status_code=status)

    @post("/logout", status_code=HTTP_204_NO_CONTENT, security=BEARER, responses=error_responses(401))
    async def logout(
        self,
        principal: NamedDependency[Principal],
        identity: NamedDependency[IdentityService],
        request: Request[Any, Any, Any],
    ) -> None:
        """End the current session: its access and refresh tokens stop working."""
        await identity.end_session(principal, principal.session_id, reason="logout", client_ip=client_ip(request))


class MeController(Controller):
    """The signed-in citizen's account, sessions and identity levels."""

    path = "/v1/me"
    tags = ["identity"]
    security = BEARER
    # The app default refuses held-back sessions (bff: provide_confirmed_principal); these
    # routes stay open to them: /v1/me without PII, sessions, and the verifications that
    # prove the identity again (the correction refuses them itself).
    dependencies = {"principal": Provide(provide_principal)}

    @get("/", responses=error_responses(401))
    async def me(self, principal: NamedDependency[Principal], identity: NamedDependency[IdentityService]) -> Account:
        """The account with its level and masked name, phone and ID number."""
        return await identity.me(principal)

    @get("/sessions", responses=error_responses(401))
    async def sessions(
        self, principal: NamedDependency[Principal], identity: NamedDependency[IdentityService]
    ) -> SessionList:
        """Every signed-in device; ``id`` is the session's ``sid``."""
        return await identity.sessions(principal)

    @delete("/sessions/{session_id:uuid}", status_code=HTTP_204_NO_CONTENT, responses=error_responses(401, 404))
    async def end_session(
        self,
        session_id: FromPath[UUID],
        principal: NamedDependency[Principal],
        identity: NamedDependency[IdentityService],
        request: Request[Any, Any, Any],
    ) -> None:
        """Sign a device out: its tokens stop working within seconds."""
        await identity.end_session(principal, str(session_id), reason="ended_by_user", client_ip=client_ip(request))

    @post("/verification/real-name", status_code=HTTP_200_OK, responses=error_responses(401, 409, 422, 429))
    async def real_name(
        self,
        data: JSONBody[RealNameRequest],
        principal: NamedDependency[Principal],
        identity: NamedDependency[IdentityService],
        request: Request[Any, Any, Any],
    ) -> Account:
        """Real-name verification against the population registry: level L3.
        Refresh the tokens afterwards to carry the new ``acr``. A bound account re-submitting
        its own identity gets 200 (nothing changes); another identity is 409
        ``identity-already-bound`` (see ``/verification/correction``). "No match" and "bound to
        another account" are one answer: 422 ``real-name-not-verified``."""
        return await identity.verify_real_name(principal, data, client_ip=client_ip(request))

    @post("/verification/real-person", status_code=HTTP_200_OK, responses=error_responses(401, 403))
    async def real_person(
        self,
        data: JSONBody[RealPersonRequest],
        principal: NamedDependency[Principal],
        identity: NamedDependency[IdentityService],
        request: Request[Any, Any, Any],
    ) -> Account:
        """Real-person (liveness) verification: level L4. Needs L3 first."""
        return await identity.verify_real_person(principal, data, client_ip=client_ip(request))

    @post("/verification/correction", status_code=HTTP_200_OK, responses=error_responses(401, 403, 422, 429))
    async def correction(
        self,
        data: JSONBody[IdentityCorrectionRequest],
        principal: NamedDependency[Principal],
        identity: NamedDependency[IdentityService],
        request: Request[Any, Any, Any],
    ) -> Account:
        """Correct the bound identity: the new one must pass the registry and a liveness check
        (L4) here; then the old binding is released, the level is L4, and other sessions,
        partner grants and codes of the old identity end. Refresh the tokens afterwards."""
        return await identity.correct_identity(principal, data, client_ip=client_ip(request))
