"""Request and response bodies of the identity endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from core.levels import Level
from core.structs import FrozenStruct, IdNumber, Phone, Request, ShortStr, text, whole

__all__ = [
    "Account",
    "Device",
    "IdentityCorrectionRequest",
    "Level",
    "LoginRequest",
    "MiniProgramLinkRequired",
    "MiniProgramLoginRequest",
    "OtpRequest",
    "OtpSent",
    "RealNameRequest",
    "RealPersonRequest",
    "RefreshRequest",
    "SessionInfo",
    "SessionList",
    "TokenPair",
]

OtpCode = Annotated[str, msgspec.Meta(pattern=whole(r"[0-9]{6}"), description="The 6-digit code from the SMS")]
ChineseName = Annotated[str, text(32, min_length=2, description="Name as in the registry")]
OpaqueToken = Annotated[str, text(256, min_length=16, nfc=False)]


class OtpRequest(Request):
    """Ask for a one-time code by SMS.

    ``device_id`` (optional, the ``device.id`` the app logs in with): a device that logged in
    to this phone before draws on the owner's daily budget, which strangers cannot spend.
    """

    phone: Phone
    device_id: ShortStr | None = None


class OtpSent(FrozenStruct, frozen=True):
    """The code is on its way."""

    expires_in: int
    resend_after: int


class Device(Request):
    """The device a session is bound to."""

    id: ShortStr
    name: Annotated[str, text(128)]
    platform: Annotated[str, msgspec.Meta(pattern=whole(r"[a-z0-9_-]{1,32}"), examples=["ios", "android", "harmony"])]


class LoginRequest(Request):
    """Log in (or sign up) with the phone and its one-time code.

    ``link_token`` completes a first mini-program login: the platform identity is linked to
    this account only now that the OTP proved the phone is the caller's.
    """

    phone: Phone
    otp: OtpCode
    device: Device
    link_token: OpaqueToken | None = None


class RefreshRequest(Request):
    """Exchange a refresh token for a new pair."""

    refresh_token: OpaqueToken


class MiniProgramLoginRequest(Request):
    """Log in from a mini-program with the platform's one-time login code."""

    platform: Annotated[str, msgspec.Meta(pattern=whole(r"[a-z0-9_-]{1,32}"))]
    code: Annotated[str, text(128, nfc=False)]
    device: Device | None = None


class RealNameRequest(Request):
    """Real-name verification (L3)."""

    name: ChineseName
    id_number: IdNumber


class RealPersonRequest(Request):
    """Real-person verification (L4) with the liveness SDK's session token."""

    liveness_token: OpaqueToken


class IdentityCorrectionRequest(Request):
    """Move an account to another identity (a correction): the new identity must pass the
    registry and a liveness check for the new ID number in the same request."""

    name: ChineseName
    id_number: IdNumber
    liveness_token: OpaqueToken


class Account(FrozenStruct, frozen=True):
    """The signed-in citizen, masked: the app never receives a full phone or ID number."""

    id: str
    level: Level
    phone: str
    name: str | None
    id_number: str | None
    created_at: datetime
    #: This sign-in must prove the identity again (real-name with the bound identity, or
    #: real-person) before name, ID number, codes and department data are shown.
    reverification_required: bool = False


class TokenPair(FrozenStruct, frozen=True):
    """What a login or refresh returns."""

    access_token: str
    refresh_token: str
    expires_in: int
    account: Account
    token_type: str = "Bearer"  # noqa: S105 - the scheme name, not a secret


class MiniProgramLinkRequired(FrozenStruct, frozen=True):
    """First login from this mini-program identity: prove the phone with an OTP, then log in
    with ``link_token`` to link it."""

    link_required: bool
    link_token: str
    expires_in: int


class SessionInfo(FrozenStruct, frozen=True):
    """One signed-in device."""

    id: str
    device_name: str
    platform: str
    created_at: datetime
    last_seen_at: datetime
    current: bool


class SessionList(FrozenStruct, frozen=True):
    """Every active session of the account."""

    sessions: list[SessionInfo]
