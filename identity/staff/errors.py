"""Errors of the staff domain, each with its stable problem ``type`` slug."""

from __future__ import annotations

from core.errors import Forbidden, NotFound, UnprocessableEntity

__all__ = ["AuditorReadOnly", "SeparationOfDuties", "StaffAdminError", "UnknownStaff"]


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
