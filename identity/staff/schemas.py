"""Request and response bodies of staff sign-in."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from core.structs import Request, Response

__all__ = [
    "AuditEntry",
    "AuditPage",
    "StaffOtpLogin",
    "StaffOtpSent",
    "StaffPasswordLogin",
    "StaffProfile",
    "StaffRolesChange",
    "StaffToken",
]

Username = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9._-]{2,63}$", examples=["officer.furong"])]


class StaffPasswordLogin(Request):
    """Step 1: username and password. On success an SMS code goes to the staff phone."""

    username: Username
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class StaffOtpSent(Response, frozen=True):
    """The password was right; send ``ticket`` back with the SMS code."""

    ticket: str
    expires_in: int


class StaffOtpLogin(Request):
    """Step 2: the ticket from step 1 and the SMS code."""

    ticket: Annotated[str, msgspec.Meta(min_length=16, max_length=128)]
    otp: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$")]


class StaffProfile(Response, frozen=True):
    """A staff member as they see themselves."""

    id: str
    username: str
    name: str
    roles: list[str]
    region: str
    region_level: str


class StaffToken(Response, frozen=True):
    """A staff access token (no refresh: sign in again when it expires)."""

    access_token: str
    expires_in: int
    staff: StaffProfile
    token_type: str = "Bearer"  # noqa: S105 - the scheme name, not a secret


RoleName = Annotated[str, msgspec.Meta(pattern=r"^[a-z_]{1,32}$", examples=["health_officer"])]


class StaffRolesChange(Request):
    """A security administrator replaces a staff member's roles (``PUT .../roles``)."""

    roles: Annotated[list[RoleName], msgspec.Meta(min_length=1, max_length=4)]


class AuditEntry(Response, frozen=True):
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


class AuditPage(Response, frozen=True):
    """Newest first; pass ``next_cursor`` back as ``cursor`` for the next (older) page."""

    events: list[AuditEntry]
    next_cursor: str | None
