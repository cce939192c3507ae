"""Request and response bodies of staff sign-in."""

from __future__ import annotations

from typing import Annotated

import msgspec

from core.structs import Request, Response, text, whole

__all__ = ["StaffOtpLogin", "StaffOtpSent", "StaffPasswordLogin", "StaffProfile", "StaffToken"]

Username = Annotated[str, msgspec.Meta(pattern=whole(r"[a-z0-9][a-z0-9._-]{2,63}"), examples=["officer.furong"])]


class StaffPasswordLogin(Request):
    """Step 1: username and password. On success an SMS code goes to the staff phone."""

    username: Username
    password: Annotated[str, text(256, nfc=False)]


class StaffOtpSent(Response, frozen=True):
    """The password was right; send ``ticket`` back with the SMS code."""

    ticket: str
    expires_in: int


class StaffOtpLogin(Request):
    """Step 2: the ticket from step 1 and the SMS code."""

    ticket: Annotated[str, text(128, min_length=16, nfc=False)]
    otp: Annotated[str, msgspec.Meta(pattern=whole(r"[0-9]{6}"))]


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
