"""The service hall (办事大厅): matters, applications, department events, ratings and 一件事.

Applications reach the departments through a durable job queue in PostgreSQL (pgqueuer),
enqueued in the same transaction as the application; departments report back through
``POST /v1/departments/events``.
"""

from hall.controllers import (
    BundlesController,
    DepartmentEventsController,
    HallAdminController,
    MattersController,
    MyApplicationsController,
)
from hall.dependencies import HALL_DEPENDENCIES, provide_hall
from hall.jobs import ENTRY_BUNDLE, ENTRY_RESUBMIT, ENTRY_SUBMIT, HallWorker, Handler, JobPayload
from hall.repository import HallRepository
from hall.seed import seed_department_clients
from hall.service import HallService
from hall.settings import HallSettings
from hall.workdays import add_working_days

HALL_CONTROLLERS = (
    MattersController,
    MyApplicationsController,
    BundlesController,
    DepartmentEventsController,
    HallAdminController,
)

__all__ = [
    "ENTRY_BUNDLE",
    "ENTRY_RESUBMIT",
    "ENTRY_SUBMIT",
    "HALL_CONTROLLERS",
    "HALL_DEPENDENCIES",
    "BundlesController",
    "DepartmentEventsController",
    "HallAdminController",
    "HallRepository",
    "HallService",
    "HallSettings",
    "HallWorker",
    "Handler",
    "JobPayload",
    "MattersController",
    "MyApplicationsController",
    "add_working_days",
    "provide_hall",
    "seed_department_clients",
]
