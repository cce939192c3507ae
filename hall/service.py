"""The service hall's rules: catalogue, prefill, applications, department events, ratings,
staff queues and bundles (一件事).

Every change that must reach a department (a new case, a corrected form, the next step of a
bundle) is a job enqueued in the same transaction as the change itself, so a crash between
"saved" and "sent" loses nothing; the job queue (:mod:`hall.jobs`) retries with backoff until
the department takes it, and the department's ``Idempotency-Key`` makes every retry safe.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import msgspec

from core.audit import AuditEvent, write_audit
from core.crypto import Vault
from core.db import Connection
from core.errors import Forbidden, InsufficientLevel, NotFound, OneCityError, UnprocessableEntity
from hall.errors import AlreadyRated, IdempotencyKeyRequired, IdempotencyKeyReused, IllegalTransition
from hall.forms import validate_form
from hall.jobs import ENTRY_BUNDLE, ENTRY_RESUBMIT, ENTRY_SUBMIT, JobPayload, RetryLater, enqueue
from hall.metrics import APPLICATIONS, CASE_DELIVERIES, DEPARTMENT_EVENTS
from hall.repository import ApplicationRow, BundleRow, HallRepository, MatterRow, TemplateStep
from hall.schemas import (
    Application,
    ApplicationList,
    Bundle,
    BundleRequest,
    BundleStep,
    BundleStepStatus,
    BundleTemplate,
    DepartmentEvent,
    DepartmentEventBatch,
    DepartmentRatings,
    EventAccepted,
    EventBatchResult,
    EventResult,
    FormSchema,
    Matter,
    MatterList,
    Prefill,
    Rating,
    RatingRequest,
    RatingSummary,
    ResubmitRequest,
    StaffApplication,
    StaffApplicationList,
    SubmitRequest,
    TimelineEntry,
)
from hall.settings import HallSettings
from hall.states import CONCLUDED, DEPARTMENT_STATUSES, RATEABLE, STATUSES, can_become_legal, is_legal
from hall.workdays import add_working_days
from identity import Applicant, IdentityService, Principal
from identity.staff.permissions import StaffPrincipal
from services.departments import CaseDepartment, SocsecDepartment
from services.errors import DepartmentError

if TYPE_CHECKING:
    from messages import MessageCentre

__all__ = [
    "DEPARTMENT_CLIENT_PREFIX",
    "AlreadyRated",
    "HallService",
    "IdempotencyKeyRequired",
    "IdempotencyKeyReused",
    "IllegalTransition",
]

log = logging.getLogger("onecity.hall")

#: A department's own OAuth client is ``dept-<department>`` (DESIGN, "Department contracts").
DEPARTMENT_CLIENT_PREFIX: Final = "dept-"
_NUMBER_PREFIX: Final = {"health": "WJ", "socsec": "RS", "hukou": "HJ", "education": "JY"}
_MAX_KEY_CHARS: Final = 200
#: A bundle's later steps start once their predecessors reached one of these.
_PROGRESSED: Final = frozenset({"accepted", "correction_requested", "under_review", "approved", "delivered"})
_FAILED: Final = frozenset({"denied", "not_accepted", "withdrawn"})
#: How the inbox names a status (generic text: messages may show on a lock screen).
_STATUS_TEXT: Final = {
    "submitted": "已提交",
    "accepted": "已受理",
    "not_accepted": "不予受理",
    "correction_requested": "需补正材料",
    "under_review": "审核中",
    "approved": "已办结（通过）",
    "denied": "未通过",
    "delivered": "已送达",
    "withdrawn": "已撤回",
}
_BUNDLE_TEXT: Final = {"completed": "已全部办结", "needs_attention": "需要您处理"}


def _encode_cursor(at: dt.datetime, ident: str) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{ident}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> tuple[dt.datetime, str] | None:
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, ident = text.split("|", 1)
        uuid.UUID(ident)
        return dt.datetime.fromisoformat(at), ident
    except (ValueError, UnicodeDecodeError):
        raise UnprocessableEntity("cursor: not a cursor this API gave out", extensions={"field": "cursor"}) from None


def check_idempotency_key(key: str | None) -> str:
    """The ``Idempotency-Key`` header, or 400 ``idempotency-key-required``."""
    key = (key or "").strip()
    if not key or len(key) > _MAX_KEY_CHARS or not key.isprintable():
        raise IdempotencyKeyRequired(f"Send an Idempotency-Key header (1-{_MAX_KEY_CHARS} printable characters)")
    return key


class HallService:
    """The service hall.

    Args:
        repository: SQL.
        vault: Encrypts forms; hashes request bodies.
        identity: Who the citizen is (name, ID number, phone), through identity's service.
        cases: The case desks of the matter-owning departments, by name.
        socsec: The social-security department, for prefilling its data.
        settings: Retry budget, backoff, page size.
        allow_simulate: Whether forms may carry the dev ``simulate`` field.
        messages: The message centre: every status change of an application or a bundle is
            a message in the citizen's inbox, added in the transaction of the change.
    """

    def __init__(
        self,
        *,
        repository: HallRepository,
        vault: Vault,
        identity: IdentityService,
        cases: Mapping[str, CaseDepartment],
        socsec: SocsecDepartment,
        settings: HallSettings,
        allow_simulate: bool,
        messages: MessageCentre | None = None,
    ) -> None:
        self._repository = repository
        self.vault = vault
        self.identity = identity
        self.cases = cases
        self.socsec = socsec
        self.settings = settings
        self.allow_simulate = allow_simulate
        self.messages = messages

    # messages -----------------------------------------------------------------------------

    async def _tell(self, conn: Connection, row: ApplicationRow, status: str, event: str) -> None:
        """Put an application's status change in its citizen's inbox (same transaction);
        ``event`` names the producing event, so a repeated one adds nothing."""
        if self.messages is None:
            return
        await self.messages.produce(
            conn,
            account_id=row.account_id,
            category="application",
            title="办件进度更新",
            body=f"您的办件 {row.number} {_STATUS_TEXT.get(status, status)}",
            dedupe_key=f"application:{row.id}:{event}",
            link=("application", row.id),
            data={"status": status},
        )

    async def _announce(self, account_id: str) -> None:
        if self.messages is not None:
            await self.messages.announce(account_id)

    # views --------------------------------------------------------------------------------

    @staticmethod
    def _matter(row: MatterRow) -> Matter:
        return Matter(
            code=row.code,
            version=row.version,
            name=row.name,
            department=row.department,
            applicant_type=row.applicant_type,
            required_level=row.required_level,
            time_limit_working_days=row.time_limit_working_days,
            fee_cents=row.fee_cents,
            form=msgspec.convert(row.form, FormSchema),
        )

    async def _applications(self, rows: list[ApplicationRow]) -> list[Application]:
        history: dict[str, list[TimelineEntry]] = {}
        for entry in await self._repository.timelines([r.id for r in rows]):
            history.setdefault(entry.application_id, []).append(
                TimelineEntry(at=entry.at, status=entry.status, note=entry.note)
            )
        return [
            Application(
                id=r.id,
                number=r.number,
                matter=r.matter_code,
                department=r.department,
                status=r.status,
                submitted_at=r.submitted_at,
                due_at=r.due_at,
                timeline=history.get(r.id, []),
                bundle_id=r.bundle_id,
            )
            for r in rows
        ]

    def _form(self, row: ApplicationRow | BundleRow) -> dict[str, Any]:
        form: dict[str, Any] = msgspec.json.decode(self.vault.decrypt(row.form_enc, context="hall-form"))
        return form

    def _seal(self, form: Mapping[str, Any]) -> bytes:
        return self.vault.encrypt(msgspec.json.encode(form), context="hall-form")

    def _request_hash(self, *parts: Any) -> bytes:
        return self.vault.keyed_hash(msgspec.json.encode(parts, order="sorted"), domain="hall-request")

    # catalogue ----------------------------------------------------------------------------

    async def matters(self, *, q: str | None, department: str | None, cursor: str | None) -> MatterList:
        """A page of the catalogue, by code."""
        size = self.settings.page_size
        rows = await self._repository.list_matters(q=q or None, department=department, after=cursor, limit=size + 1)
        page = rows[:size]
        return MatterList(
            matters=[self._matter(r) for r in page], next_cursor=page[-1].code if len(rows) > size else None
        )

    async def matter(self, code: str) -> Matter:
        """One matter, newest version."""
        row = await self._repository.get_matter(code)
        if row is None:
            raise NotFound("No such matter")
        return self._matter(row)

    async def _applicant(self, principal: Principal) -> Applicant:
        applicant = await self.identity.applicant(principal.account_id)
        if applicant is None:
            raise NotFound("The account no longer exists")
        return applicant

    async def prefill(self, principal: Principal, code: str) -> Prefill:
        """What OneCity already knows for this matter's form, each value with its source."""
        matter = await self.matter(code)
        applicant = await self._applicant(principal)
        form: dict[str, str] = {}
        sources: dict[str, str] = {}
        socsec_card: str | None = None
        for field in matter.form.fields:
            value: str | None = None
            source = field.prefill
            if source == "registry.name":
                value = applicant.name
            elif source == "registry.id_number":
                value = applicant.id_number
            elif source == "account.phone":
                value = applicant.phone
            elif source == "socsec.card_no" and applicant.id_number:
                if socsec_card is None:
                    try:
                        socsec_card = (await self.socsec.card(applicant.id_number, purpose="prefill")).card_no
                    except DepartmentError:
                        socsec_card = ""  # the citizen types it; the rest of the form still fills
                value = socsec_card or None
            if value and source:
                form[field.name] = value
                sources[field.name] = source.split(".", 1)[0].replace("account", "onecity")
        return Prefill(form=form, sources=sources)

    # applications -------------------------------------------------------------------------

    def _require_level(self, principal: Principal, applicant: Applicant, required: str) -> str:
        principal.require_level(required)
        if applicant.id_number is None:  # the department learns the applicant from the ID number
            raise InsufficientLevel("L3")
        return applicant.id_number

    async def _create(
        self,
        conn: Connection,
        *,
        applicant: Applicant,
        matter: MatterRow,
        form: Mapping[str, Any],
        now: dt.datetime,
        idempotency_key: str | None = None,
        request_hash: bytes | None = None,
        bundle_id: str | None = None,
    ) -> str | None:
        """Insert an application, its first timeline entry and its submission job; the new id,
        or ``None`` when the idempotency key (or bundle step) already has one."""
        serial = await self._repository.next_number(conn)
        number = f"{_NUMBER_PREFIX.get(matter.department, 'OC')}{now.astimezone(dt.UTC):%Y%m%d}{serial:08d}"
        application_id = str(uuid.uuid4())
        inserted = await self._repository.insert_application(
            conn,
            id=uuid.UUID(application_id),
            number=number,
            account_id=uuid.UUID(applicant.account_id),
            region_code=applicant.region_code,
            matter_code=matter.code,
            matter_version=matter.version,
            department=matter.department,
            status="submitted",
            form_enc=self._seal(form),
            request_hash=request_hash,
            idempotency_key=idempotency_key,
            bundle_id=uuid.UUID(bundle_id) if bundle_id else None,
            submitted_at=now,
            due_at=add_working_days(now, matter.time_limit_working_days),
            updated_at=now,
        )
        if not inserted:
            return None
        APPLICATIONS.labels(matter.department).inc()
        await self._repository.add_history(conn, application_id, status="submitted", at=now, source="citizen")
        await enqueue(conn, ENTRY_SUBMIT, JobPayload(application_id=application_id, first_at=now.timestamp()))
        return application_id

    async def submit(self, principal: Principal, key: str | None, request: SubmitRequest) -> tuple[Application, bool]:
        """Submit an application once per idempotency key.

        Returns:
            The application, and whether it was created now (201) or replayed (200).

        Raises:
            IdempotencyKeyRequired: 400 without a usable key.
            IdempotencyKeyReused: 409 for the same key with another body.
            UnprocessableEntity: 422 naming the bad form field (or ``matter``).
        """
        key = check_idempotency_key(key)
        request_hash = self._request_hash(request.matter, request.form)
        existing = await self._repository.by_idempotency_key(principal.account_id, key)
        if existing is None:
            matter = await self._repository.get_matter(request.matter)
            if matter is None:
                raise UnprocessableEntity("matter: no such matter", extensions={"field": "matter"})
            applicant = await self._applicant(principal)
            self._require_level(principal, applicant, matter.required_level)
            form = validate_form(
                msgspec.convert(matter.form, FormSchema), request.form, allow_simulate=self.allow_simulate
            )
            now = dt.datetime.now(dt.UTC)
            async with self._repository.transaction() as tx:
                created = await self._create(
                    tx,
                    applicant=applicant,
                    matter=matter,
                    form=form,
                    now=now,
                    idempotency_key=key,
                    request_hash=request_hash,
                )
            if created is not None:
                row = await self._repository.get_application(created)
                assert row is not None
                return (await self._applications([row]))[0], True
            existing = await self._repository.by_idempotency_key(principal.account_id, key)
            assert existing is not None  # a concurrent request with the same key won the race
        if existing.request_hash != request_hash:
            raise IdempotencyKeyReused("This Idempotency-Key was used with another request body")
        return (await self._applications([existing]))[0], False

    async def my_applications(self, principal: Principal, *, status: str | None, cursor: str | None) -> ApplicationList:
        """The citizen's applications, newest first."""
        if status is not None and status not in STATUSES:
            raise UnprocessableEntity("status: not an application status", extensions={"field": "status"})
        size = self.settings.page_size
        rows = await self._repository.list_applications(
            principal.account_id, status=status, after=_decode_cursor(cursor), limit=size + 1
        )
        page = rows[:size]
        last = page[-1] if page else None
        return ApplicationList(
            applications=await self._applications(page),
            next_cursor=_encode_cursor(last.submitted_at, last.id) if last and len(rows) > size else None,
        )

    async def _own(self, principal: Principal, application_id: str) -> ApplicationRow:
        try:
            uuid.UUID(application_id)
        except ValueError:
            raise NotFound("No such application") from None
        # Another citizen's application does not exist for this one (404, not 403).
        row = await self._repository.get_application(application_id, account_id=principal.account_id)
        if row is None:
            raise NotFound("No such application")
        return row

    async def my_application(self, principal: Principal, application_id: str) -> Application:
        """One of the citizen's applications."""
        return (await self._applications([await self._own(principal, application_id)]))[0]

    async def withdraw(self, principal: Principal, application_id: str) -> Application:
        """Withdraw an application that is not under review yet."""
        await self._own(principal, application_id)
        now = dt.datetime.now(dt.UTC)
        async with self._repository.transaction() as tx:
            row = await self._repository.lock_application(tx, application_id=application_id)
            assert row is not None
            if not is_legal(row.status, "withdrawn"):
                raise IllegalTransition(f"An application that is {row.status} cannot be withdrawn")
            await self._repository.set_status(tx, application_id, "withdrawn", now)
            await self._repository.add_history(tx, application_id, status="withdrawn", at=now, source="citizen")
            await self._tell(tx, row, "withdrawn", "withdrawn")
            if row.bundle_id:
                await enqueue(tx, ENTRY_BUNDLE, JobPayload(bundle_id=row.bundle_id, first_at=now.timestamp()))
        await self._announce(principal.account_id)
        return await self.my_application(principal, application_id)

    async def resubmit(self, principal: Principal, application_id: str, request: ResubmitRequest) -> Application:
        """Send a corrected form after the department asked for one."""
        current = await self._own(principal, application_id)
        matter = await self._repository.get_matter(current.matter_code, current.matter_version)
        assert matter is not None
        form = validate_form(msgspec.convert(matter.form, FormSchema), request.form, allow_simulate=self.allow_simulate)
        now = dt.datetime.now(dt.UTC)
        async with self._repository.transaction() as tx:
            row = await self._repository.lock_application(tx, application_id=application_id)
            assert row is not None
            if row.status != "correction_requested":
                raise IllegalTransition(f"An application that is {row.status} cannot be resubmitted")
            n = row.resubmissions + 1
            await self._repository.set_status(
                tx, application_id, "submitted", now, form_enc=self._seal(form), resubmissions=n
            )
            await self._repository.add_history(
                tx, application_id, status="submitted", at=now, source="citizen", note="resubmitted"
            )
            await self._tell(tx, row, "submitted", f"resubmitted:{n}")
            await enqueue(tx, ENTRY_RESUBMIT, JobPayload(application_id=application_id, first_at=now.timestamp(), n=n))
        await self._announce(principal.account_id)
        return await self.my_application(principal, application_id)

    async def rate(self, principal: Principal, application_id: str, request: RatingRequest) -> Rating:
        """Rate a concluded application once (好差评); a score ≤ 2 opens a follow-up."""
        row = await self._own(principal, application_id)
        if row.status not in RATEABLE:
            raise IllegalTransition("Only a concluded application can be rated")
        follow_up = request.score <= 2
        async with self._repository.transaction() as tx:
            rating = await self._repository.insert_rating(
                tx,
                application_id=application_id,
                account_id=principal.account_id,
                department=row.department,
                matter=row.matter_code,
                score=request.score,
                comment=request.comment,
            )
            if follow_up:
                await self._repository.open_follow_up(
                    tx, follow_up_id=str(uuid.uuid4()), application_id=application_id, department=row.department
                )
        return Rating(
            application_id=application_id,
            score=rating.score,
            comment=rating.comment,
            created_at=rating.created_at,
            follow_up=follow_up,
        )

    # departments --------------------------------------------------------------------------

    async def department_event(self, client_id: str, event: DepartmentEvent) -> EventAccepted:
        """Apply (or hold, or ignore as a repeat) one department event.

        Raises:
            Forbidden: 403 when the application is not one of this department's matters.
            NotFound: 404 for an unknown application number.
            IllegalTransition: 409 for a transition that can never be legal; nothing changes.
        """
        if not client_id.startswith(DEPARTMENT_CLIENT_PREFIX):
            raise Forbidden("Only a department's own client reports events")
        department = client_id.removeprefix(DEPARTMENT_CLIENT_PREFIX)
        if event.status not in STATUSES:
            raise UnprocessableEntity("status: not an application status", extensions={"field": "status"})
        at = event.at if event.at.tzinfo else event.at.replace(tzinfo=dt.UTC)
        async with self._repository.transaction() as tx:
            row = await self._repository.lock_application(tx, number=event.application_number)
            if row is None:
                raise NotFound("No such application")
            if row.department != department:
                raise Forbidden("This application is not one of your department's matters")
            if await self._repository.seen_event(tx, event.event_id):
                DEPARTMENT_EVENTS.labels(department, "duplicate").inc()
                return EventAccepted(event_id=event.event_id, outcome="duplicate")
            current = row.status
            if event.status in DEPARTMENT_STATUSES and is_legal(current, event.status):
                outcome = "applied"
                await self._apply(tx, row, event.event_id, event.status, at, event.note)
                current = event.status
                current = await self._release_held(tx, row, current)
            elif event.status in DEPARTMENT_STATUSES and can_become_legal(current, event.status):
                outcome = "held"
                await self._repository.hold_event(
                    tx, row.id, event_id=event.event_id, status=event.status, at=at, note=event.note
                )
            else:
                DEPARTMENT_EVENTS.labels(department, "refused").inc()
                raise IllegalTransition(f"{current} → {event.status} is not a legal transition")
            await write_audit(
                tx,
                [
                    AuditEvent(
                        action="hall.application.event",
                        outcome="success",
                        actor_type="partner",
                        actor_id=client_id,
                        subject_id=row.account_id,
                        details={"application": row.number, "status": event.status, "outcome": outcome},
                    )
                ],
            )
            if row.bundle_id and outcome == "applied":
                await enqueue(tx, ENTRY_BUNDLE, JobPayload(bundle_id=row.bundle_id, first_at=at.timestamp()))
        DEPARTMENT_EVENTS.labels(department, outcome).inc()
        if outcome == "applied":
            await self._announce(row.account_id)
        return EventAccepted(event_id=event.event_id, outcome=outcome)  # type: ignore[arg-type]

    async def department_events(self, client_id: str, batch: DepartmentEventBatch) -> EventBatchResult:
        """Several events, each in its own transaction: one refused event changes nothing and
        does not stop the others."""
        results = []
        for event in batch.events:
            try:
                accepted = await self.department_event(client_id, event)
            except OneCityError as exc:
                results.append(EventResult(event_id=event.event_id, status=exc.status, type=exc.type_slug))
            else:
                results.append(EventResult(event_id=event.event_id, status=202, outcome=accepted.outcome))
        return EventBatchResult(results=results)

    async def _apply(
        self, conn: Connection, row: ApplicationRow, event_id: str, status: str, at: dt.datetime, note: str | None
    ) -> None:
        application_id = row.id
        await self._repository.add_history(
            conn, application_id, status=status, at=at, note=note, source="department", event_id=event_id
        )
        await self._repository.set_status(conn, application_id, status, dt.datetime.now(dt.UTC))
        await self._tell(conn, row, status, f"event:{event_id}")

    async def _release_held(self, conn: Connection, row: ApplicationRow, current: str) -> str:
        """Apply the held events that the new state made legal, oldest first, until none is."""
        while True:
            held = await self._repository.held_events(conn, row.id)
            ready = next((h for h in held if is_legal(current, h.status)), None)
            if ready is None:
                return current
            await self._repository.release_event(conn, ready.event_id)
            await self._apply(conn, row, ready.event_id, ready.status, ready.at, ready.note)
            current = ready.status

    # staff --------------------------------------------------------------------------------

    async def staff_queue(
        self, staff: StaffPrincipal, *, status: str | None, overdue: bool | None, cursor: str | None
    ) -> StaffApplicationList:
        """Applications of citizens in the staff member's region; each read is audited."""
        if status is not None and status not in STATUSES:
            raise UnprocessableEntity("status: not an application status", extensions={"field": "status"})
        size = self.settings.page_size
        now = dt.datetime.now(dt.UTC)
        rows = await self._repository.staff_queue(
            staff.region,
            status=status,
            overdue=overdue,
            now=now,
            concluded=sorted(CONCLUDED),
            after=_decode_cursor(cursor),
            limit=size + 1,
        )
        page = rows[:size]
        await self._repository.audit(
            [
                AuditEvent(
                    action="hall.application.read",
                    outcome="success",
                    actor_type="staff",
                    actor_id=staff.staff_id,
                    subject_id=r.account_id,
                    details={"application": r.number, "via": "staff-queue"},
                )
                for r in page
            ]
        )
        last = page[-1] if page else None
        return StaffApplicationList(
            applications=[
                StaffApplication(
                    id=r.id,
                    number=r.number,
                    matter=r.matter_code,
                    department=r.department,
                    status=r.status,
                    account_id=r.account_id,
                    region_code=r.region_code,
                    submitted_at=r.submitted_at,
                    due_at=r.due_at,
                    overdue=r.overdue,
                )
                for r in page
            ],
            next_cursor=_encode_cursor(last.submitted_at, last.id) if last and len(rows) > size else None,
        )

    async def rating_summary(self, staff: StaffPrincipal, department: str | None) -> RatingSummary:
        """Ratings per department, over the citizens of the staff member's region."""
        rows = await self._repository.rating_summary(department, staff.region)
        return RatingSummary(
            departments=[
                DepartmentRatings(
                    department=r.department,
                    count=r.count,
                    average=round(r.average, 2),
                    low=r.low,
                    open_follow_ups=r.open_follow_ups,
                )
                for r in rows
            ]
        )

    # jobs ---------------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        return float(min(self.settings.retry_max_s, self.settings.retry_base_s * 2**attempt))

    async def deliver(self, payload: JobPayload, attempts: int, *, resubmission: bool) -> None:
        """Job: hand a case (or a corrected form) to its department.

        Raises:
            RetryLater: The department did not take it; try again after the backoff.
        """
        assert payload.application_id is not None
        row = await self._repository.get_application(payload.application_id)
        if row is None or (not resubmission and row.case_id is not None):
            return  # gone, or delivered by an earlier try whose completion was lost
        if row.status == "withdrawn":
            return
        applicant = await self.identity.applicant(row.account_id)
        if applicant is None or applicant.id_number is None:
            await self._give_up(row)
            return
        desk = self.cases[row.department]
        form = self._form(row)
        try:
            if resubmission:
                await desk.resubmit(
                    applicant.id_number,
                    # Unset only when the submission's receipt was lost: the department then
                    # refuses the unknown case ("None"), and the retry rules below decide.
                    case_id=str(row.case_id),
                    form=form,
                    idempotency_key=f"{row.number}:resubmit:{payload.n}",
                )
            else:
                receipt = await desk.submit_case(
                    applicant.id_number,
                    application_number=row.number,
                    matter=row.matter_code,
                    form=form,
                    idempotency_key=f"{row.number}:submit",
                )
                await self._repository.set_case(row.id, receipt.case_id)
            CASE_DELIVERIES.labels(row.department, "delivered").inc()
            # The department now holds the citizen's form: a disclosure the ledger must show.
            await self._repository.audit(
                [
                    AuditEvent(
                        action="hall.case.resubmitted" if resubmission else "hall.case.submitted",
                        outcome="success",
                        actor_type="partner",
                        actor_id=f"{DEPARTMENT_CLIENT_PREFIX}{row.department}",
                        subject_id=row.account_id,
                        details={"application": row.number, "matter": row.matter_code},
                    )
                ]
            )
        except DepartmentError as exc:
            permanent = exc.kind == "rejected" and exc.upstream_status not in (401, 408, 425)
            spent = dt.datetime.now(dt.UTC).timestamp() - payload.first_at >= self.settings.retry_budget_s
            if permanent or spent:
                log.warning("case delivery gave up", extra={"department": row.department, "kind": exc.kind})
                CASE_DELIVERIES.labels(row.department, "gave_up").inc()
                await self._give_up(row)
                return
            CASE_DELIVERIES.labels(row.department, "retry").inc()
            raise RetryLater(self._backoff(attempts)) from None

    async def _give_up(self, row: ApplicationRow) -> None:
        async with self._repository.transaction() as tx:
            await self._repository.mark_submit_failed(tx, row.id)
            if row.bundle_id:
                now = dt.datetime.now(dt.UTC).timestamp()
                await enqueue(tx, ENTRY_BUNDLE, JobPayload(bundle_id=row.bundle_id, first_at=now))

    # bundles ------------------------------------------------------------------------------

    async def bundle_templates(self) -> list[BundleTemplate]:
        """The bundles on offer."""
        return [
            BundleTemplate(
                code=t.code,
                version=t.version,
                name=t.name,
                steps=[BundleStep(matter=s.matter, after=list(s.after)) for s in t.steps],
                form=msgspec.convert(t.form, FormSchema),
            )
            for t in await self._repository.bundle_templates()
        ]

    async def _bundle_view(self, row: BundleRow) -> Bundle:
        template = await self._repository.bundle_template(row.template_code, row.template_version)
        assert template is not None
        apps = {a.matter_code: a for a in await self._repository.bundle_applications(row.id)}
        steps = []
        for step in template.steps:
            app = apps.get(step.matter)
            if app is None:
                steps.append(BundleStepStatus(matter=step.matter, status="waiting"))
            else:
                status = "submission_failed" if app.submit_failed else app.status
                steps.append(BundleStepStatus(matter=step.matter, status=status, application_id=app.id))
        return Bundle(id=row.id, code=row.template_code, status=row.status, created_at=row.created_at, steps=steps)

    async def start_bundle(
        self, principal: Principal, code: str, key: str | None, request: BundleRequest
    ) -> tuple[Bundle, bool]:
        """Start a bundle once per idempotency key; its steps follow on the job queue."""
        key = check_idempotency_key(key)
        request_hash = self._request_hash(code, request.form)
        existing = await self._repository.bundle_by_key(principal.account_id, key)
        if existing is None:
            template = await self._repository.bundle_template(code)
            if template is None:
                raise NotFound("No such bundle")
            applicant = await self._applicant(principal)
            self._require_level(principal, applicant, "L3")
            form = validate_form(
                msgspec.convert(template.form, FormSchema), request.form, allow_simulate=self.allow_simulate
            )
            now = dt.datetime.now(dt.UTC)
            bundle_id = str(uuid.uuid4())
            async with self._repository.transaction() as tx:
                inserted = await self._repository.insert_bundle(
                    tx,
                    id=uuid.UUID(bundle_id),
                    account_id=uuid.UUID(principal.account_id),
                    region_code=applicant.region_code,
                    template_code=template.code,
                    template_version=template.version,
                    status="running",
                    form_enc=self._seal(form),
                    request_hash=request_hash,
                    idempotency_key=key,
                    created_at=now,
                    updated_at=now,
                )
                if inserted:
                    await enqueue(tx, ENTRY_BUNDLE, JobPayload(bundle_id=bundle_id, first_at=now.timestamp()))
            if inserted:
                row = await self._repository.get_bundle(bundle_id)
                assert row is not None
                return await self._bundle_view(row), True
            existing = await self._repository.bundle_by_key(principal.account_id, key)
            assert existing is not None
        if existing.template_code != code or existing.request_hash != request_hash:
            raise IdempotencyKeyReused("This Idempotency-Key was used with another request body")
        return await self._bundle_view(existing), False

    async def my_bundle(self, principal: Principal, bundle_id: str) -> Bundle:
        """One of the citizen's bundles, with every step's progress."""
        try:
            uuid.UUID(bundle_id)
        except ValueError:
            raise NotFound("No such bundle") from None
        row = await self._repository.get_bundle(bundle_id, account_id=principal.account_id)
        if row is None:
            raise NotFound("No such bundle")
        return await self._bundle_view(row)

    async def advance_bundle(self, payload: JobPayload, attempts: int = 0) -> None:
        """Job: submit every step whose predecessors are accepted; settle the bundle's status.

        A settled bundle (``completed`` or ``needs_attention``) is a message in the citizen's
        inbox, added in the same transaction; its streams are woken after the commit.
        """
        settled = await self._advance_bundle(payload)
        if settled is not None:
            await self._announce(settled)

    async def _settle_bundle(self, conn: Connection, bundle: BundleRow, status: str, now: dt.datetime) -> str:
        await self._repository.set_bundle_status(conn, bundle.id, status, now)
        if self.messages is not None:
            await self.messages.produce(
                conn,
                account_id=bundle.account_id,
                category="bundle",
                title="一件事进度更新",
                body=f"您办理的一件事{_BUNDLE_TEXT.get(status, status)}",
                dedupe_key=f"bundle:{bundle.id}:{status}",
                link=("bundle", bundle.id),
                data={"status": status},
            )
        return bundle.account_id

    async def _advance_bundle(self, payload: JobPayload) -> str | None:
        """The work of :meth:`advance_bundle`; the account to wake when the bundle settled.

        Everything read from elsewhere (the template, the matters, the applicant) is read
        before the bundle's row lock is taken: a job holds one pooled connection at a time, so
        a full pool can never deadlock on jobs waiting for a second one.
        """
        assert payload.bundle_id is not None
        first = await self._repository.get_bundle(payload.bundle_id)
        if first is None or first.status != "running":
            return None
        template = await self._repository.bundle_template(first.template_code, first.template_version)
        assert template is not None
        steps = template.steps
        matters = {s.matter: await self._repository.get_matter(s.matter) for s in steps}
        applicant = await self.identity.applicant(first.account_id)
        now = dt.datetime.now(dt.UTC)
        async with self._repository.transaction() as tx:
            bundle = await self._repository.lock_bundle(tx, payload.bundle_id)
            if bundle is None or bundle.status != "running":
                return None
            apps = {a.matter_code: a for a in await self._repository.bundle_applications(bundle.id, tx)}
            if applicant is None or any(a.status in _FAILED or a.submit_failed for a in apps.values()):
                return await self._settle_bundle(tx, bundle, "needs_attention", now)
            if all(apps.get(s.matter) is not None and apps[s.matter].status == "delivered" for s in steps):
                return await self._settle_bundle(tx, bundle, "completed", now)
            ready = [
                s
                for s in steps
                if s.matter not in apps
                and all(apps.get(p) is not None and apps[p].status in _PROGRESSED for p in s.after)
            ]
            form = self._form(bundle)
            for step in ready:
                matter = matters[step.matter]
                assert matter is not None
                await self._create(
                    tx,
                    applicant=applicant,
                    matter=matter,
                    form=self._step_form(matter, step, form),
                    now=now,
                    bundle_id=bundle.id,
                )
        return None

    @staticmethod
    def _step_form(matter: MatterRow, step: TemplateStep, form: Mapping[str, Any]) -> dict[str, Any]:
        """The bundle's one form, cut (and renamed, per the template's ``map``) to a step's matter."""
        mapping = step.renames
        names = {f["name"] for f in matter.form["fields"]}
        values = {name: form[mapping.get(name, name)] for name in names if mapping.get(name, name) in form}
        values.update(step.fixed)
        if "simulate" in form:
            values["simulate"] = form["simulate"]
        return values
