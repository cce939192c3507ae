"""Litestar dependencies of the service hall: every one its controllers receive.

``HALL_DEPENDENCIES`` is registered once on the app (the service, for every hall route);
the principals are scoped to the routes that need them (``DEPARTMENT_DEPENDENCIES`` on the
department event routes, ``STAFF_DEPENDENCIES`` on the staff controller), so a public route
never authenticates anyone.
"""

from __future__ import annotations

from typing import Final

from litestar.datastructures import State
from litestar.di import Provide

from hall.service import HallService
from identity.partners import require_partner_scope
from identity.staff.permissions import provide_staff_principal

__all__ = [
    "DEPARTMENT_DEPENDENCIES",
    "EVENTS_SCOPE",
    "HALL_DEPENDENCIES",
    "STAFF_DEPENDENCIES",
    "provide_hall",
]

#: The scope of a department's own client for ``POST /v1/departments/events``.
EVENTS_SCOPE: Final = "applications:events"


def provide_hall(state: State) -> HallService:
    """The process's service hall (built in the app's lifespan)."""
    service: HallService = state.hall
    return service


#: ``hall``: the service every hall controller calls (app-level).
HALL_DEPENDENCIES: Final = {"hall": Provide(provide_hall, sync_to_thread=False)}
#: ``department``: the department client behind an event (scope ``applications:events``).
DEPARTMENT_DEPENDENCIES: Final = {"department": Provide(require_partner_scope(EVENTS_SCOPE))}
#: ``staff``: the authenticated staff member (the region check needs the resource: the service).
STAFF_DEPENDENCIES: Final = {"staff": Provide(provide_staff_principal)}
