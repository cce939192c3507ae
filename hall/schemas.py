"""Request and response Structs of the service hall (DESIGN, "Service hall")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from core.levels import Level
from core.structs import FrozenStruct, Request, text, whole

__all__ = [
    "Application",
    "ApplicationList",
    "Bundle",
    "BundleRequest",
    "BundleStep",
    "BundleStepStatus",
    "BundleTemplate",
    "DepartmentEvent",
    "DepartmentEventBatch",
    "DepartmentRatings",
    "EventAccepted",
    "EventBatchResult",
    "EventResult",
    "FormField",
    "FormSchema",
    "Matter",
    "MatterList",
    "Prefill",
    "Rating",
    "RatingRequest",
    "RatingSummary",
    "ResubmitRequest",
    "StaffApplication",
    "StaffApplicationList",
    "SubmitRequest",
    "TimelineEntry",
]

FieldType = Literal["text", "date", "id_number", "phone", "choice", "licence"]
MatterCode = Annotated[str, msgspec.Meta(pattern=whole(r"[a-z0-9][a-z0-9-]{1,62}"))]
#: Form values: strings (dates as YYYY-MM-DD); the matter's schema says which fields exist.
FormValues = Annotated[dict[str, Any], msgspec.Meta(max_length=64)]


class FormField(FrozenStruct, frozen=True):
    """One field of a matter's form; ``prefill`` names where OneCity may already know it."""

    name: str
    label: str
    type: FieldType
    required: bool
    choices: list[str] | None = None
    prefill: str | None = None


class FormSchema(FrozenStruct, frozen=True):
    """A matter's (or a bundle's) form."""

    fields: list[FormField]


class Matter(FrozenStruct, frozen=True):
    """A service a department offers (事项)."""

    code: str
    version: int
    name: str
    department: str
    applicant_type: Literal["person"]
    required_level: Level
    time_limit_working_days: int
    fee_cents: int
    form: FormSchema


class MatterList(FrozenStruct, frozen=True):
    """``GET /v1/matters``."""

    matters: list[Matter]
    next_cursor: str | None


class Prefill(FrozenStruct, frozen=True):
    """``GET /v1/me/matters/{code}/prefill``: known values and who they come from."""

    form: dict[str, str]
    sources: dict[str, str]


class SubmitRequest(Request):
    """``POST /v1/me/applications``."""

    matter: MatterCode
    form: FormValues = msgspec.field(default_factory=dict)


class ResubmitRequest(Request):
    """``POST /v1/me/applications/{id}/resubmit``."""

    form: FormValues = msgspec.field(default_factory=dict)


class TimelineEntry(FrozenStruct, frozen=True):
    """One status an application went through."""

    at: datetime
    status: str
    note: str | None = None


class Application(FrozenStruct, frozen=True):
    """An application (办件) as its citizen sees it."""

    id: str
    number: str
    matter: str
    department: str
    status: str
    submitted_at: datetime
    due_at: datetime
    timeline: list[TimelineEntry]
    bundle_id: str | None = None


class ApplicationList(FrozenStruct, frozen=True):
    """``GET /v1/me/applications``."""

    applications: list[Application]
    next_cursor: str | None


class StaffApplication(FrozenStruct, frozen=True):
    """One row of a staff queue; the citizen appears by account id only."""

    id: str
    number: str
    matter: str
    department: str
    status: str
    account_id: str
    region_code: str | None
    submitted_at: datetime
    due_at: datetime
    overdue: bool


class StaffApplicationList(FrozenStruct, frozen=True):
    """``GET /v1/admin/applications``."""

    applications: list[StaffApplication]
    next_cursor: str | None


class RatingRequest(Request):
    """``POST /v1/me/applications/{id}/rating`` (好差评)."""

    score: Annotated[int, msgspec.Meta(ge=1, le=5)]
    comment: Annotated[str, text(500)] | None = None


class Rating(FrozenStruct, frozen=True):
    """A rating as stored."""

    application_id: str
    score: int
    comment: str | None
    created_at: datetime
    follow_up: bool


class DepartmentRatings(FrozenStruct, frozen=True):
    """One department's ratings."""

    department: str
    count: int
    average: float
    low: int  # scores ≤ 2
    open_follow_ups: int


class RatingSummary(FrozenStruct, frozen=True):
    """``GET /v1/admin/ratings/summary``."""

    departments: list[DepartmentRatings]


class DepartmentEvent(Request):
    """``POST /v1/departments/events``."""

    event_id: Annotated[str, text(128, nfc=False)]
    application_number: Annotated[str, text(64, nfc=False)]
    status: Annotated[str, text(32, nfc=False)]
    at: datetime
    note: Annotated[str, text(500)] | None = None


class EventAccepted(FrozenStruct, frozen=True):
    """202 answer: ``applied``, ``held`` (waits for its predecessor) or ``duplicate``."""

    event_id: str
    outcome: Literal["applied", "held", "duplicate"]


class DepartmentEventBatch(Request):
    """``POST /v1/departments/events/batch``: up to 500 events, each handled on its own."""

    events: Annotated[list[DepartmentEvent], msgspec.Meta(min_length=1, max_length=500)]


class EventResult(FrozenStruct, frozen=True):
    """One event's answer in a batch: the status it would have had alone."""

    event_id: str
    status: int
    outcome: str | None = None
    type: str | None = None


class EventBatchResult(FrozenStruct, frozen=True):
    """202 answer of a batch, in the order of the events."""

    results: list[EventResult]


class BundleStep(FrozenStruct, frozen=True):
    """A step of a bundle template."""

    matter: str
    after: list[str]


class BundleTemplate(FrozenStruct, frozen=True):
    """``GET /v1/bundles`` item (一件事)."""

    code: str
    version: int
    name: str
    steps: list[BundleStep]
    form: FormSchema


class BundleRequest(Request):
    """``POST /v1/me/bundles/{code}``."""

    form: FormValues = msgspec.field(default_factory=dict)


class BundleStepStatus(FrozenStruct, frozen=True):
    """A step of a running bundle: ``waiting`` until submitted, then its application's status."""

    matter: str
    status: str
    application_id: str | None = None


class Bundle(FrozenStruct, frozen=True):
    """A citizen's bundle and its progress in one view."""

    id: str
    code: str
    status: Literal["running", "completed", "needs_attention"]
    created_at: datetime
    steps: list[BundleStepStatus]
