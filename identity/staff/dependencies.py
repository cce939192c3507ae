"""Litestar dependency providers of staff sign-in."""

from __future__ import annotations

from litestar.datastructures import State

from identity.staff.service import StaffService

__all__ = ["provide_staff_service"]


def provide_staff_service(state: State) -> StaffService:
    """The process's staff service (built in the app's lifespan)."""
    service: StaffService = state.staff
    return service
