"""Request and response bodies of staff sign-in."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from core.structs import FrozenStruct, Request, text, whole

__all__ = [
    "AuditEntry",
    "AuditPage",
    "AuthenticatorList",
    "AuthenticatorRegistration",
    "AuthenticatorView",
    "RecoveryResult",
    "StaffOtpLogin",
    "StaffOtpSent",
    "StaffPasswordLogin",
    "StaffProfile",
    "StaffRolesChange",
    "StaffToken",
    "StaffWebAuthnLogin",
    "WebAuthnOptions",
]

Username = Annotated[str, msgspec.Meta(pattern=whole(r"[a-z0-9][a-z0-9._-]{2,63}"), examples=["officer.furong"])]


class StaffPasswordLogin(Request):
    """Step 1: username and password. On success an SMS code goes to the staff phone."""

    username: Username
    password: Annotated[str, text(256, nfc=False)]


class StaffOtpSent(FrozenStruct, frozen=True):
    """The password was right; the second step follows.

    ``second_factor`` says which: ``webauthn`` (the account has a security key: pass
    ``webauthn`` to ``navigator.credentials.get`` and send the result with ``ticket`` to
    ``/login/webauthn``; no SMS is sent) or ``sms`` (a code went to the staff phone: send it
    with ``ticket`` to ``/login/otp``).
    """

    ticket: str
    expires_in: int
    second_factor: str = "sms"
    webauthn: dict[str, Any] | None = None


class StaffOtpLogin(Request):
    """Step 2: the ticket from step 1 and the SMS code."""

    ticket: Annotated[str, text(128, min_length=16, nfc=False)]
    otp: Annotated[str, msgspec.Meta(pattern=whole(r"[0-9]{6}"))]


class StaffProfile(FrozenStruct, frozen=True):
    """A staff member as they see themselves."""

    id: str
    username: str
    name: str
    roles: list[str]
    region: str
    region_level: str


class StaffToken(FrozenStruct, frozen=True):
    """A staff access token (no refresh: sign in again when it expires)."""

    access_token: str
    expires_in: int
    staff: StaffProfile
    token_type: str = "Bearer"  # noqa: S105 - the scheme name, not a secret
    #: ``True``: this token only registers a security key (``/v1/staff/authenticators``);
    #: sign in again with the key afterwards.
    enrolment_only: bool = False


Credential = Annotated[dict[str, Any], msgspec.Meta(description="PublicKeyCredential.toJSON() of the browser")]


class StaffWebAuthnLogin(Request):
    """Step 2 with a security key: the ticket from step 1 and the assertion."""

    ticket: Annotated[str, msgspec.Meta(min_length=16, max_length=128)]
    credential: Credential


class WebAuthnOptions(FrozenStruct, frozen=True):
    """Options for ``navigator.credentials.create`` / ``.get`` (WebAuthn JSON encoding)."""

    public_key: dict[str, Any]
    expires_in: int


class AuthenticatorRegistration(Request):
    """The attestation of a new security key, answering the last registration options."""

    credential: Credential
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "Security key"


class AuthenticatorView(FrozenStruct, frozen=True):
    """A registered security key (never its key material)."""

    id: str
    name: str
    transports: list[str]
    created_at: datetime
    last_used_at: datetime | None


class AuthenticatorList(FrozenStruct, frozen=True):
    """The signed-in member's active security keys."""

    authenticators: list[AuthenticatorView]


class RecoveryResult(FrozenStruct, frozen=True):
    """A security administrator reset a member's security keys."""

    staff_id: str
    revoked: int


RoleName = Annotated[str, msgspec.Meta(pattern=whole(r"[a-z_]{1,32}"), examples=["health_officer"])]


class StaffRolesChange(Request):
    """A security administrator replaces a staff member's roles (``PUT .../roles``)."""

    roles: Annotated[list[RoleName], msgspec.Meta(min_length=1, max_length=4)]


class AuditEntry(FrozenStruct, frozen=True):
    """One audit-log row, as the auditor sees it."""

    id: int
    at: datetime
    actor_type: str
    actor_id: str | None
    subject_id: str | None
    action: str
    outcome: str
    client_ip: str | None
    details: dict[str, Any]


class AuditPage(FrozenStruct, frozen=True):
    """Newest first; pass ``next_cursor`` back as ``cursor`` for the next (older) page."""

    events: list[AuditEntry]
    next_cursor: str | None
