"""Litestar dependency providers of the staff domain: every provider its controllers (and
other domains' staff routes) use, in one place."""

from __future__ import annotations

from litestar.datastructures import State

from identity.revocation import revocations_of
from identity.staff.admin import StaffAdmin
from identity.staff.audit_log import AuditReader
from identity.staff.permissions import provide_enrolling_staff, provide_staff_principal
from identity.staff.service import StaffService

__all__ = [
    "provide_audit_reader",
    "provide_enrolling_staff",
    "provide_staff_admin",
    "provide_staff_principal",
    "provide_staff_service",
]


def provide_staff_service(state: State) -> StaffService:
    """The process's staff service (built in the app's lifespan)."""
    service: StaffService = state.staff
    return service


def provide_audit_reader(state: State) -> AuditReader:
    """The auditor's reader of the audit log."""
    service: StaffService = state.staff
    return AuditReader(service.repository)


def provide_staff_admin(state: State) -> StaffAdmin:
    """Staff management over HTTP (security administrators), built once per process over the
    staff service's repository; role changes need no password hashing."""
    admin: StaffAdmin | None = state.get("staff_admin")
    if admin is None:
        service: StaffService = state.staff
        admin = StaffAdmin(service.repository, state.resources.vault, revocations=revocations_of(state))
        state.staff_admin = admin
    return admin
