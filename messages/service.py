"""The message centre's rules: producing messages exactly once, the inbox, live streams,
preferences and push tokens.

Producers call :meth:`MessageCentre.produce` on their own connection, inside the transaction
that makes the change the message is about, with a dedupe key naming the producing event; the
unique ``(account_id, dedupe_key)`` and ``ON CONFLICT DO NOTHING`` make a repeated or twice
processed event one message. After their commit they call :meth:`MessageCentre.announce`,
which wakes the streams of that account on every process (:mod:`messages.live`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import msgspec
from litestar.response import ServerSentEventMessage

from core.crypto import Vault
from core.db import Connection
from core.errors import NotFound, RateLimited, UnprocessableEntity
from core.redis import Redis
from hall.jobs import JobPayload, enqueue
from identity import Principal
from messages.delivery import ENTRY_DELIVER, Delivery
from messages.live import WAKE_CHANNEL, StreamSlots, WakeHub
from messages.metrics import MESSAGES, STREAMS
from messages.repository import MessageRow, MessagesRepository
from messages.schemas import (
    CATEGORIES,
    CategoryPreference,
    CodeStatusEvent,
    Link,
    Message,
    MessageList,
    Preferences,
    ReadAll,
)
from messages.settings import MessagesSettings

__all__ = ["Events", "MessageCentre", "TooManyStreams"]

#: What an event stream yields.
Events = AsyncIterator[ServerSentEventMessage]

log = logging.getLogger("onecity.messages")

_PUSH_TOKEN_CONTEXT: Final = "messages.push_token"  # noqa: S105 (an encryption context)
_REPLAY_BATCH: Final = 100


class TooManyStreams(RateLimited):
    """The citizen already holds the maximum of concurrent event streams."""

    type_slug = "too-many-streams"


def _message(row: MessageRow) -> Message:
    return Message(
        id=str(row.id),
        category=row.category,
        title=row.title,
        body=row.body,
        created_at=row.created_at,
        read_at=row.read_at,
        link=Link(kind=row.link_kind, id=row.link_id) if row.link_kind and row.link_id is not None else None,
    )


def _message_id(value: str) -> int:
    # Ids are decimal strings; anything else names no message (404, never a 500).
    if not value.isdecimal() or len(value) > 18:
        raise NotFound("No such message")
    return int(value)


class MessageCentre:
    """Inboxes, their producers' entry point, live streams, preferences and push tokens.

    Args:
        repository: SQL.
        redis: Wake-ups and stream slots.
        vault: Encrypts push tokens.
        settings: Paging, retention, keep-alive and stream limits.
    """

    def __init__(
        self, *, repository: MessagesRepository, redis: Redis, vault: Vault, settings: MessagesSettings
    ) -> None:
        self._repository = repository
        self.redis = redis
        self.vault = vault
        self.settings = settings
        self.hub = WakeHub(redis)
        self.slots = StreamSlots(redis, limit=settings.max_streams, lease_s=settings.stream_lease_s)
        #: Push, SMS fallback and notices (set by the app once identity and gateways exist).
        self.delivery: Delivery | None = None

    # producing ----------------------------------------------------------------------------

    async def produce(
        self,
        conn: Connection,
        *,
        account_id: str,
        category: str,
        title: str,
        body: str,
        dedupe_key: str,
        link: tuple[str, str] | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int | None:
        """Add a message inside the caller's transaction; ``None`` when the event made one before.

        Titles and bodies must not carry ID numbers or phones: they are shown on lock screens.
        """
        assert category in CATEGORIES, category
        ident = await self._repository.insert(
            conn,
            account_id=account_id,
            category=category,
            title=title,
            body=body,
            link_kind=link[0] if link else None,
            link_id=link[1] if link else None,
            data=dict(data) if data is not None else None,
            dedupe_key=dedupe_key,
            retention=dt.timedelta(days=self.settings.retention_days),
        )
        if ident is not None:
            MESSAGES.labels(category).inc()
            # Push (and the security SMS fallback) is a durable job committed with the message.
            await enqueue(
                conn, ENTRY_DELIVER, JobPayload(message_id=ident, first_at=dt.datetime.now(dt.UTC).timestamp())
            )
        return ident

    async def announce(self, *account_ids: str) -> None:
        """After the producer's commit: wake these accounts' streams on every process.

        A failed publish only delays delivery until the streams' next keep-alive catch-up.
        """
        for account_id in dict.fromkeys(account_ids):
            try:
                await self.redis.publish(WAKE_CHANNEL, account_id)
            except Exception:
                log.warning("message wake-up not published", exc_info=True)

    async def post(self, **message: Any) -> int | None:
        """Produce one message in its own transaction and announce it."""
        async with self._repository.transaction() as tx:
            ident = await self.produce(tx, **message)
        if ident is not None:
            await self.announce(message["account_id"])
        return ident

    # inbox --------------------------------------------------------------------------------

    async def inbox(self, principal: Principal, *, unread: bool | None, cursor: str | None) -> MessageList:
        """A page of the citizen's messages, newest first (keyset on the id)."""
        before = None
        if cursor is not None:
            if not cursor.isdecimal() or len(cursor) > 18:
                raise UnprocessableEntity("cursor: not a cursor of this list", extensions={"field": "cursor"})
            before = int(cursor)
        size = self.settings.page_size
        rows = await self._repository.page(principal.account_id, unread=unread, before=before, limit=size + 1)
        page = rows[:size]
        return MessageList(
            messages=[_message(r) for r in page],
            unread_count=await self._repository.unread_count(principal.account_id),
            next_cursor=str(page[-1].id) if len(rows) > size else None,
        )

    async def read(self, principal: Principal, message_id: str) -> Message:
        """Mark one message read; another citizen's message does not exist (404)."""
        row = await self._repository.mark_read(principal.account_id, _message_id(message_id))
        if row is None:
            raise NotFound("No such message")
        return _message(row)

    async def read_all(self, principal: Principal) -> ReadAll:
        """Mark every message read."""
        marked = await self._repository.mark_all_read(principal.account_id)
        return ReadAll(marked=marked, unread_count=await self._repository.unread_count(principal.account_id))

    async def purge_expired(self) -> int:
        """Delete messages past their retention (a batch; run periodically)."""
        return await self._repository.purge_expired(1000)

    # live ---------------------------------------------------------------------------------

    async def open_stream(self, principal: Principal, last_event_id: str | None) -> Events:
        """Take a stream slot (429 past the limit) and return the stream's events.

        Without ``Last-Event-ID`` the stream starts after the newest message (new events
        only); with it, every message after that id is replayed first, in order.
        """
        account_id = principal.account_id
        after: int | None = None
        if last_event_id is not None and last_event_id.strip().isdecimal() and len(last_event_id.strip()) <= 18:
            after = int(last_event_id.strip())
        stream_id = uuid.uuid4().hex
        if not await self.slots.acquire(account_id, stream_id):
            raise TooManyStreams(int(self.settings.keepalive_s), f"At most {self.slots.limit} event streams at once")
        return self._events(account_id, stream_id, after)

    async def _events(self, account_id: str, stream_id: str, after: int | None) -> Events:
        wake = await self.hub.register(account_id)
        STREAMS.inc()
        try:
            if after is None:
                after = await self._repository.last_id(account_id)
            # Tells the client (and any proxy) the stream is open before the first message.
            yield ServerSentEventMessage(data=None, comment="open", retry=3000)
            while True:
                wake.clear()
                rows = await self._repository.after(account_id, after, _REPLAY_BATCH)
                for row in rows:
                    after = row.id
                    for event in self._sse(row):
                        yield event
                if len(rows) == _REPLAY_BATCH:
                    continue
                try:
                    await asyncio.wait_for(wake.wait(), timeout=self.settings.keepalive_s)
                except TimeoutError:
                    yield ServerSentEventMessage(data=None, comment="keep-alive")
                    await self.slots.renew(account_id, stream_id)
        finally:
            STREAMS.dec()
            self.hub.unregister(account_id, wake)
            try:
                await self.slots.release(account_id, stream_id)
            except Exception:
                log.warning("stream slot not released (its lease expires)", exc_info=True)

    @staticmethod
    def _sse(row: MessageRow) -> list[ServerSentEventMessage]:
        events = []
        data = row.data
        if row.category == "code" and isinstance(data, Mapping) and "status" in data:
            # Sent before its message and without an id: a client that drops in between
            # resumes before both and sees them again together, never one without the other.
            status = CodeStatusEvent(type=str(data.get("type", "health")), status=str(data["status"]))
            events.append(ServerSentEventMessage(data=msgspec.json.encode(status).decode(), event="code_status"))
        events.append(
            ServerSentEventMessage(data=msgspec.json.encode(_message(row)).decode(), event="message", id=row.id)
        )
        return events

    # preferences and push tokens ----------------------------------------------------------

    async def preferences(self, principal: Principal) -> Preferences:
        """The citizen's notification preferences (the defaults until they set any)."""
        document = await self._repository.preferences(principal.account_id)
        stored = Preferences() if document is None else msgspec.convert(document, Preferences)
        return _effective(stored)

    async def put_preferences(self, principal: Principal, preferences: Preferences) -> Preferences:
        """Replace the whole document. ``security`` cannot be turned off: its push stays on
        whatever is sent; only its SMS fallback follows the document."""
        categories = dict(preferences.categories)
        if "security" in categories:
            categories["security"] = msgspec.structs.replace(categories["security"], push=True)
        if preferences.quiet_hours is not None:
            _check_timezone(preferences.quiet_hours.timezone)
        stored = Preferences(categories=categories, quiet_hours=preferences.quiet_hours)
        await self._repository.put_preferences(principal.account_id, msgspec.to_builtins(stored))
        return _effective(stored)

    async def set_push_token(self, principal: Principal, token: str) -> None:
        """Remember this session's device push token (encrypted)."""
        await self._repository.put_push_token(
            principal.session_id,
            principal.account_id,
            self.vault.encrypt_text(token, context=_PUSH_TOKEN_CONTEXT),
        )

    async def push_tokens(self, account_id: str) -> list[str]:
        """The account's device push tokens, newest first."""
        rows = await self._repository.push_tokens(account_id)
        return [self.vault.decrypt_text(r.token_enc, context=_PUSH_TOKEN_CONTEXT) for r in rows]

    def background_tasks(self) -> list[asyncio.Task[None]]:
        """Start the retention loop (hourly) and return it, for the owner of the process's
        resources to cancel at shutdown."""
        return [asyncio.create_task(self._purge_forever(), name="messages-retention")]

    async def _purge_forever(self) -> None:
        while True:
            try:
                purged = 1000
                while purged == 1000:  # a full batch: more may be expired
                    purged = await self.purge_expired()
            except Exception:
                log.warning("message retention run failed", exc_info=True)
            await asyncio.sleep(3600)

    async def close(self) -> None:
        """Stop this process's wake-up subscription."""
        await self.hub.close()


#: Each category's channels until the citizen says otherwise: push on, SMS only for security
#: (its fallback when no push token is known or the push failed).
DEFAULTS: Final = {c: CategoryPreference(push=True, sms=c == "security") for c in CATEGORIES}


def _effective(stored: Preferences) -> Preferences:
    """The document with every category present: a category left out has its defaults."""
    categories = {c: stored.categories.get(c, DEFAULTS[c]) for c in CATEGORIES}
    categories["security"] = msgspec.structs.replace(categories["security"], push=True)
    return Preferences(categories=categories, quiet_hours=stored.quiet_hours)


def _check_timezone(name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnprocessableEntity(
            "quiet_hours.timezone: not an IANA time zone", extensions={"field": "quiet_hours.timezone"}
        ) from None
