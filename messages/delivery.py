"""Push (and the SMS fallback of ``security``) through the hall's durable job queue, and the
fan-out of staff notices in batches.

Every produced message enqueues a ``messages.deliver`` job in the producer's transaction. The
job reads the citizen's preferences at delivery time:

* a category whose push is off, or any category but ``security`` during quiet hours, is not
  pushed (the inbox keeps the message);
* the push carries the message's title and a generic body only — the text stays in the inbox,
  where reading it needs the citizen's token (lock screens and push providers see no details);
* ``security`` is always pushed; when the citizen has no push token, or the push failed, it
  goes by SMS instead unless they turned its SMS fallback off;
* a failed push of another category is retried with backoff a few times, then dropped.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import TYPE_CHECKING, Final
from zoneinfo import ZoneInfo

import msgspec

from core.audit import AuditEvent
from core.errors import Forbidden
from core.ledger import SMS_FALLBACK_ACTION
from hall.jobs import JobPayload, RetryLater, enqueue
from identity.staff.permissions import StaffPrincipal, region_covers
from messages.metrics import DELIVERIES
from messages.schemas import NoticeAccepted, NoticeRequest, Preferences, QuietHours
from services.errors import DepartmentError

if TYPE_CHECKING:
    from identity import IdentityService
    from messages.repository import MessagesRepository
    from messages.service import MessageCentre
    from services.departments import SmsGateway
    from services.departments.push import PushGateway

__all__ = ["ENTRY_DELIVER", "ENTRY_NOTICE", "Delivery", "in_quiet_hours"]

log = logging.getLogger("onecity.messages.delivery")

ENTRY_DELIVER: Final = "messages.deliver"
ENTRY_NOTICE: Final = "messages.notice"
_PUSH_RETRIES: Final = 5
_GENERIC_BODY: Final = "打开 OneCity 查看详情"


def in_quiet_hours(quiet: QuietHours | None, now: dt.datetime) -> bool:
    """Whether ``now`` falls in the quiet hours (``start`` inclusive, ``end`` exclusive; a
    window whose end is before its start crosses midnight)."""
    if quiet is None:
        return False
    local = now.astimezone(ZoneInfo(quiet.timezone)).time().replace(second=0, microsecond=0)
    start = dt.time.fromisoformat(quiet.start)
    end = dt.time.fromisoformat(quiet.end)
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


class Delivery:
    """The message centre's jobs.

    Args:
        centre: Producing messages, push tokens.
        repository: The message centre's SQL (messages, preferences, deliveries, notices).
        identity: The citizen's phone (SMS fallback) and the accounts of a region (notices).
        push: The push gateway (``None``: nothing is pushed).
        sms: The SMS gateway (the ``security`` fallback).
    """

    def __init__(
        self,
        *,
        centre: MessageCentre,
        repository: MessagesRepository,
        identity: IdentityService,
        push: PushGateway | None,
        sms: SmsGateway,
    ) -> None:
        self.centre = centre
        self._repository = repository
        self.identity = identity
        self.push = push
        self.sms = sms

    async def _record(self, message_id: int, outcome: str, category: str = "") -> None:
        DELIVERIES.labels(category, outcome).inc()
        await self._repository.record_delivery(message_id, outcome)

    async def deliver(self, payload: JobPayload, attempts: int) -> None:
        """Job: push one message (or send the ``security`` SMS fallback)."""
        assert payload.message_id is not None
        row = await self._repository.delivery_target(payload.message_id)
        if row is None:
            return
        document = await self._repository.preferences(row.account_id)
        prefs = Preferences() if document is None else msgspec.convert(document, Preferences)
        category = row.category
        security = category == "security"
        default_sms = security
        choice = prefs.categories.get(category)
        want_push = security or (choice.push if choice is not None else True)
        want_sms = security and (choice.sms if choice is not None else default_sms)
        if not want_push:
            await self._record(row.id, "push_off", category)
            return
        if not security and in_quiet_hours(prefs.quiet_hours, dt.datetime.now(dt.UTC)):
            await self._record(row.id, "quiet_hours", category)
            return
        tokens = await self.centre.push_tokens(row.account_id)
        pushed = False
        if tokens and self.push is not None:
            data = {"message_id": str(row.id), "category": category}
            try:
                for token in tokens:
                    await self.push.push(token, title=row.title, body=_GENERIC_BODY, data=data)
                pushed = True
            except DepartmentError as exc:
                log.warning("push failed", extra={"kind": exc.kind, "category": category})
                if not security:
                    if attempts < _PUSH_RETRIES:
                        raise RetryLater(min(300.0, 2.0 * 2**attempts)) from None
                    await self._record(row.id, "push_failed", category)
                    return
        if pushed:
            await self._record(row.id, "pushed", category)
            return
        if want_sms:
            applicant = await self.identity.applicant(row.account_id)
            if applicant is not None:
                try:
                    await self.sms.send(
                        applicant.phone, f"【OneCity】{row.title}，请打开 OneCity 查看。", purpose="security"
                    )
                except DepartmentError:
                    if attempts < _PUSH_RETRIES:
                        raise RetryLater(min(300.0, 2.0 * 2**attempts)) from None
                    await self._record(row.id, "sms_failed", category)
                    return
                # The phone went to the SMS gateway: a disclosure the citizen's ledger shows.
                await self._repository.audit(
                    [
                        AuditEvent(
                            action=SMS_FALLBACK_ACTION,
                            outcome="success",
                            actor_type="system",
                            actor_id="onecity",
                            subject_id=row.account_id,
                            details={"department": "sms", "category": category, "message_id": row.id},
                        )
                    ]
                )
                await self._record(row.id, "sms", category)
                return
        await self._record(row.id, "no_channel", category)

    # notices ------------------------------------------------------------------------------

    async def notice(self, staff: StaffPrincipal, request: NoticeRequest) -> NoticeAccepted:
        """Accept a staff notice for the region; 403 for a region the staff member does not cover.

        The fan-out runs as jobs of ``notice_batch`` recipients each (one giant request would
        hold a transaction for a whole district).
        """
        if not region_covers(staff.region, request.region):
            raise Forbidden("Your region does not cover this region")
        notice_id = str(uuid.uuid4())
        async with self._repository.transaction() as tx:
            await self._repository.insert_notice(
                tx,
                notice_id=notice_id,
                region=request.region,
                title=request.title,
                body=request.body,
                staff_id=staff.staff_id,
            )
            await enqueue(
                tx,
                ENTRY_NOTICE,
                JobPayload(notice_id=notice_id, first_at=dt.datetime.now(dt.UTC).timestamp()),
            )
        return NoticeAccepted(notice_id=notice_id, region=request.region)

    async def fan_out(self, payload: JobPayload, attempts: int) -> None:
        """Job: one batch of a notice's recipients, then enqueue the next batch."""
        del attempts
        assert payload.notice_id is not None
        notice = await self._repository.notice(payload.notice_id)
        if notice is None:
            return
        size = self.centre.settings.notice_batch
        accounts = await self.identity.accounts_in_region(notice.region, after=payload.after, limit=size)
        async with self._repository.transaction() as tx:
            made = 0
            for account_id in accounts:
                ident = await self.centre.produce(
                    tx,
                    account_id=account_id,
                    category="notice",
                    title=notice.title,
                    body=notice.body,
                    dedupe_key=f"notice:{payload.notice_id}",
                )
                made += ident is not None
            if len(accounts) == size:
                await enqueue(
                    tx,
                    ENTRY_NOTICE,
                    JobPayload(notice_id=payload.notice_id, after=accounts[-1], first_at=payload.first_at),
                )
            await self._repository.count_recipients(tx, payload.notice_id, made=made, finished=len(accounts) < size)
        await self.centre.announce(*accounts)
