"""HTTP endpoints of the service hall: thin, each decodes a Struct and calls the service."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED

from core.http import BEARER, error_responses
from core.structs import TEXT_PATTERN, whole
from hall.dependencies import DEPARTMENT_DEPENDENCIES, STAFF_DEPENDENCIES
from hall.schemas import (
    Application,
    ApplicationList,
    Bundle,
    BundleRequest,
    BundleTemplate,
    DepartmentEvent,
    DepartmentEventBatch,
    EventAccepted,
    EventBatchResult,
    Matter,
    MatterList,
    Prefill,
    Rating,
    RatingRequest,
    RatingSummary,
    ResubmitRequest,
    StaffApplicationList,
    SubmitRequest,
)
from hall.service import HallService
from identity.partners import PartnerPrincipal
from identity.principal import Principal
from identity.staff.permissions import StaffPrincipal

__all__ = [
    "BundlesController",
    "DepartmentEventsController",
    "HallAdminController",
    "MattersController",
    "MyApplicationsController",
]

CodePath = Annotated[str, PathParameter(pattern=whole(r"[a-z0-9][a-z0-9-]{1,62}"))]
IdPath = Annotated[str, PathParameter(max_length=64)]
Cursor = Annotated[str | None, QueryParameter(max_length=200, pattern=TEXT_PATTERN)]
StatusQuery = Annotated[str | None, QueryParameter(max_length=32, pattern=TEXT_PATTERN)]
IdempotencyKey = Annotated[str | None, HeaderParameter(name="Idempotency-Key", required=False)]


def _created(body: Any, created: bool) -> Response[Any]:
    return Response(body, status_code=HTTP_201_CREATED if created else HTTP_200_OK)


class MattersController(Controller):
    """The catalogue of matters (事项); public."""

    path = "/v1/matters"
    tags = ["hall"]

    @get("/", responses=error_responses(422))
    async def list_matters(
        self,
        hall: NamedDependency[HallService],
        q: Annotated[str | None, QueryParameter(max_length=64, pattern=TEXT_PATTERN)] = None,
        department: Annotated[str | None, QueryParameter(max_length=32, pattern=TEXT_PATTERN)] = None,
        cursor: Cursor = None,
    ) -> MatterList:
        """Search the catalogue (name or code contains ``q``), a page at a time."""
        return await hall.matters(q=q, department=department, cursor=cursor)

    @get("/{code:str}", responses=error_responses(404))
    async def get_matter(self, code: CodePath, hall: NamedDependency[HallService]) -> Matter:
        """One matter, newest version."""
        return await hall.matter(code)


class MyApplicationsController(Controller):
    """The signed-in citizen's prefill, applications and bundles."""

    path = "/v1/me"
    tags = ["hall"]
    security = BEARER

    @get("/matters/{code:str}/prefill", responses=error_responses(401, 404))
    async def prefill(
        self, code: CodePath, principal: NamedDependency[Principal], hall: NamedDependency[HallService]
    ) -> Prefill:
        """What OneCity already knows for this matter's form, and where each value comes from."""
        return await hall.prefill(principal, code)

    @post(
        "/applications",
        status_code=HTTP_201_CREATED,
        responses=error_responses(401, 409, 422),
    )
    async def submit(
        self,
        data: JSONBody[SubmitRequest],
        principal: NamedDependency[Principal],
        hall: NamedDependency[HallService],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Application]:
        """Submit an application (201); the same ``Idempotency-Key`` and body again answer the
        same application (200), with another body 409."""
        application, created = await hall.submit(principal, idempotency_key, data)
        return _created(application, created)

    @get("/applications", responses=error_responses(401, 422))
    async def list_applications(
        self,
        principal: NamedDependency[Principal],
        hall: NamedDependency[HallService],
        status: StatusQuery = None,
        cursor: Cursor = None,
    ) -> ApplicationList:
        """The citizen's applications, newest first."""
        return await hall.my_applications(principal, status=status, cursor=cursor)

    @get("/applications/{application_id:str}", responses=error_responses(401, 404))
    async def get_application(
        self, application_id: IdPath, principal: NamedDependency[Principal], hall: NamedDependency[HallService]
    ) -> Application:
        """One application with its timeline (sorted by ``at``)."""
        return await hall.my_application(principal, application_id)

    @post(
        "/applications/{application_id:str}/withdraw", status_code=HTTP_200_OK, responses=error_responses(401, 404, 409)
    )
    async def withdraw(
        self, application_id: IdPath, principal: NamedDependency[Principal], hall: NamedDependency[HallService]
    ) -> Application:
        """Withdraw an application that is not under review yet (else 409)."""
        return await hall.withdraw(principal, application_id)

    @post(
        "/applications/{application_id:str}/resubmit",
        status_code=HTTP_200_OK,
        responses=error_responses(401, 404, 409, 422),
    )
    async def resubmit(
        self,
        application_id: IdPath,
        data: JSONBody[ResubmitRequest],
        principal: NamedDependency[Principal],
        hall: NamedDependency[HallService],
    ) -> Application:
        """Send the corrected form the department asked for (only in ``correction_requested``)."""
        return await hall.resubmit(principal, application_id, data)

    @post(
        "/applications/{application_id:str}/rating",
        status_code=HTTP_201_CREATED,
        responses=error_responses(401, 404, 409, 422),
    )
    async def rate(
        self,
        application_id: IdPath,
        data: JSONBody[RatingRequest],
        principal: NamedDependency[Principal],
        hall: NamedDependency[HallService],
    ) -> Rating:
        """Rate a concluded application once (好差评); a score ≤ 2 opens a follow-up."""
        return await hall.rate(principal, application_id, data)

    @post("/bundles/{code:str}", status_code=HTTP_201_CREATED, responses=error_responses(401, 404, 409, 422))
    async def start_bundle(
        self,
        code: CodePath,
        data: JSONBody[BundleRequest],
        principal: NamedDependency[Principal],
        hall: NamedDependency[HallService],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Bundle]:
        """Start a bundle (一件事): one form feeds every step; steps follow on their own."""
        bundle, created = await hall.start_bundle(principal, code, idempotency_key, data)
        return _created(bundle, created)

    @get("/bundles/{bundle_id:str}", responses=error_responses(401, 404))
    async def get_bundle(
        self, bundle_id: IdPath, principal: NamedDependency[Principal], hall: NamedDependency[HallService]
    ) -> Bundle:
        """A bundle's progress: its status and every step's."""
        return await hall.my_bundle(principal, bundle_id)


class BundlesController(Controller):
    """The bundles on offer; public."""

    path = "/v1/bundles"
    tags = ["hall"]

    @get("/")
    async def list_bundles(self, hall: NamedDependency[HallService]) -> list[BundleTemplate]:
        """Every bundle template with its steps and its one form."""
        return await hall.bundle_templates()


class DepartmentEventsController(Controller):
    """Departments report the progress of their cases."""

    path = "/v1/departments"
    tags = ["hall-departments"]
    security = BEARER

    @post(
        "/events",
        status_code=HTTP_202_ACCEPTED,
        dependencies=DEPARTMENT_DEPENDENCIES,
        responses=error_responses(401, 403, 404, 409, 422),
    )
    async def event(
        self,
        data: JSONBody[DepartmentEvent],
        department: NamedDependency[PartnerPrincipal],
        hall: NamedDependency[HallService],
    ) -> EventAccepted:
        """One event (scope ``applications:events``, the department's own client). A repeated
        ``event_id`` is a no-op; an event that is not legal yet is held until it is."""
        return await hall.department_event(department.client_id, data)

    @post(
        "/events/batch",
        status_code=HTTP_202_ACCEPTED,
        dependencies=DEPARTMENT_DEPENDENCIES,
        responses=error_responses(401, 403, 413),
    )
    async def events(
        self,
        data: JSONBody[DepartmentEventBatch],
        department: NamedDependency[PartnerPrincipal],
        hall: NamedDependency[HallService],
    ) -> EventBatchResult:
        """Up to 500 events in one request (a department catching up after an outage). Each is
        handled exactly as if sent alone; ``results[i].status`` is the status it would have got."""
        return await hall.department_events(department.client_id, data)


class HallAdminController(Controller):
    """Staff: the region's application queue and the ratings summary."""

    path = "/v1/admin"
    tags = ["hall-admin"]
    security = BEARER
    dependencies = STAFF_DEPENDENCIES

    @get("/applications", responses=error_responses(401, 403, 422))
    async def queue(
        self,
        staff: NamedDependency[StaffPrincipal],
        hall: NamedDependency[HallService],
        status: StatusQuery = None,
        overdue: Annotated[bool | None, QueryParameter()] = None,
        cursor: Cursor = None,
    ) -> StaffApplicationList:
        """Applications of citizens registered in the staff member's region (audited reads)."""
        return await hall.staff_queue(staff, status=status, overdue=overdue, cursor=cursor)

    @get("/ratings/summary", responses=error_responses(401, 403))
    async def ratings(
        self,
        staff: NamedDependency[StaffPrincipal],
        hall: NamedDependency[HallService],
        department: Annotated[str | None, QueryParameter(max_length=32, pattern=TEXT_PATTERN)] = None,
    ) -> RatingSummary:
        """Ratings per department over the staff member's region."""
        return await hall.rating_summary(staff, department)
