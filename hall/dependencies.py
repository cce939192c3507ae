"""Litestar dependency providers of the service hall."""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import Provide

from hall.service import HallService
from identity.partners import require_partner_scope
from identity.staff.permissions import provide_staff_principal

__all__ = ["EVENTS_SCOPE", "HALL_DEPENDENCIES", "provide_department", "provide_hall", "provide_hall_staff"]

#: The scope of a department's own client for ``POST /v1/departments/events``.
EVENTS_SCOPE = "applications:events"


def provide_hall(state: State) -> HallService:
    """The process's service hall (built in the app's lifespan)."""
    service: HallService = state.hall
    return service


#: App-level dependency of the hall (register with the app's other dependencies).
HALL_DEPENDENCIES = {"hall": Provide(provide_hall, sync_to_thread=False)}
#: The department client behind an event (scope ``applications:events``).
provide_department = Provide(require_partner_scope(EVENTS_SCOPE))
#: The authenticated staff member (identity/staff's principal and region check).
provide_hall_staff = Provide(provide_staff_principal)
