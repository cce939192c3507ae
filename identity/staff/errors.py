"""Errors of the staff domain, each with its stable problem ``type`` slug."""

from __future__ import annotations

from core.errors import Forbidden, NotFound, Unauthorized, UnprocessableEntity

__all__ = [
    "AuditorReadOnly",
    "AuthenticatorAlreadyRegistered",
    "AuthenticatorCloned",
    "RegistrationFailed",
    "SecondFactorFailed",
    "SeparationOfDuties",
    "StaffAdminError",
    "UnknownStaff",
    "UsernameTaken",
    "WebAuthnRequired",
]


class StaffAdminError(UnprocessableEntity, ValueError):
    """The requested change is invalid; the message says why (422 over HTTP)."""


class AuditorReadOnly(Forbidden):
    """An auditor tried to change something: auditors only read (三员分立)."""

    type_slug = "auditor-read-only"
    title = "Auditors change nothing"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or "The auditor role reads the audit log and changes nothing")


class SeparationOfDuties(StaffAdminError):
    """The roles asked for may not be held by one account (system administrator, security
    administrator and auditor are three people)."""

    type_slug = "separation-of-duties"
    title = "These roles cannot be held by one account"


class UnknownStaff(NotFound, StaffAdminError):
    """No such staff member."""

    type_slug = "not-found"
    title = "No such staff member"


class WebAuthnRequired(Unauthorized):
    """This account has a WebAuthn authenticator: an SMS code cannot complete its sign-in."""

    type_slug = "webauthn-required"
    title = "Sign in with your security key"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(
            detail or "This account signs in with its security key; SMS is only for enrolment after recovery",
            error="invalid_grant",
        )


class SecondFactorFailed(Unauthorized):
    """The WebAuthn assertion did not verify (wrong signature, unknown credential, wrong or
    used challenge): sign in again from the password."""

    type_slug = "second-factor-failed"
    title = "Second factor refused"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or "The security key's answer was not accepted: sign in again", error="invalid_grant")


class AuthenticatorCloned(Unauthorized):
    """The authenticator's signature counter went backwards: a copy of the key is in use.
    The credential is revoked; a security administrator must start recovery."""

    type_slug = "authenticator-cloned"
    title = "Security key refused"

    def __init__(self) -> None:
        super().__init__(
            "This security key may have been copied and is now blocked; ask a security administrator",
            error="invalid_grant",
        )


class RegistrationFailed(UnprocessableEntity):
    """The authenticator's registration (attestation) did not verify, or its challenge is gone."""

    type_slug = "webauthn-registration-failed"
    title = "Security key not registered"


class AuthenticatorAlreadyRegistered(RegistrationFailed):
    """The security key's credential is registered already (to this member or another)."""

    def __init__(self) -> None:
        super().__init__("This security key is registered already")


class UsernameTaken(StaffAdminError):
    """Another staff member has this username."""

    def __init__(self, username: str) -> None:
        super().__init__(f"username {username!r} is taken")
