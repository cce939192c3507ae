"""HTTP endpoints of the message centre: thin, each decodes a Struct and calls the service."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post, put
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody, PathParameter, QueryParameter
from litestar.response import ServerSentEvent
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from core.http import BEARER, error_responses
from core.structs import TEXT_PATTERN
from identity.principal import Principal
from identity.staff.permissions import StaffPrincipal
from messages.delivery import Delivery
from messages.dependencies import NOTICE_DEPENDENCIES
from messages.schemas import Message, MessageList, NoticeAccepted, NoticeRequest, Preferences, PushTokenRequest, ReadAll
from messages.service import MessageCentre

__all__ = ["MyMessagesController", "NoticesController"]

IdPath = Annotated[str, PathParameter(max_length=32)]

#: Proxies must pass events through as they come (nginx honours X-Accel-Buffering).
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class MyMessagesController(Controller):
    """The signed-in citizen's inbox, live events, preferences and push token."""

    path = "/v1/me"
    tags = ["messages"]
    security = BEARER

    @get("/messages", responses=error_responses(401, 422))
    async def list_messages(
        self,
        principal: NamedDependency[Principal],
        messages: NamedDependency[MessageCentre],
        unread: Annotated[bool | None, QueryParameter()] = None,
        cursor: Annotated[str | None, QueryParameter(max_length=32, pattern=TEXT_PATTERN)] = None,
    ) -> MessageList:
        """The inbox, newest first, with the unread count."""
        return await messages.inbox(principal, unread=unread, cursor=cursor)

    @post("/messages/read-all", status_code=HTTP_200_OK, responses=error_responses(401))
    async def read_all(
        self, principal: NamedDependency[Principal], messages: NamedDependency[MessageCentre]
    ) -> ReadAll:
        """Mark every message read."""
        return await messages.read_all(principal)

    @post("/messages/{message_id:str}/read", status_code=HTTP_200_OK, responses=error_responses(401, 404))
    async def read(
        self, message_id: IdPath, principal: NamedDependency[Principal], messages: NamedDependency[MessageCentre]
    ) -> Message:
        """Mark one message read (404 for anyone else's)."""
        return await messages.read(principal, message_id)

    @get("/events", media_type="text/event-stream", responses=error_responses(401, 429))
    async def events(
        self,
        principal: NamedDependency[Principal],
        messages: NamedDependency[MessageCentre],
        last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID", required=False)] = None,
    ) -> ServerSentEvent:
        """Server-Sent Events: ``message`` and ``code_status``; resumes after ``Last-Event-ID``."""
        stream = await messages.open_stream(principal, last_event_id)
        return ServerSentEvent(stream, headers=SSE_HEADERS)

    @get("/notification-preferences", responses=error_responses(401))
    async def get_preferences(
        self, principal: NamedDependency[Principal], messages: NamedDependency[MessageCentre]
    ) -> Preferences:
        """Per-category channels and quiet hours."""
        return await messages.preferences(principal)

    @put("/notification-preferences", responses=error_responses(401, 422))
    async def put_preferences(
        self,
        data: JSONBody[Preferences],
        principal: NamedDependency[Principal],
        messages: NamedDependency[MessageCentre],
    ) -> Preferences:
        """Replace the whole document (``security`` push stays on)."""
        return await messages.put_preferences(principal, data)

    @put("/sessions/current/push", status_code=HTTP_204_NO_CONTENT, responses=error_responses(401, 422))
    async def set_push_token(
        self,
        data: JSONBody[PushTokenRequest],
        principal: NamedDependency[Principal],
        messages: NamedDependency[MessageCentre],
    ) -> None:
        """The push token of this session's device."""
        await messages.set_push_token(principal, data.token)


class NoticesController(Controller):
    """Staff notices to the citizens registered in a region the staff member covers."""

    path = "/v1/admin/notices"
    tags = ["messages"]
    security = BEARER
    dependencies = NOTICE_DEPENDENCIES

    @post("/", status_code=HTTP_202_ACCEPTED, responses=error_responses(401, 403, 422))
    async def notify(
        self,
        data: JSONBody[NoticeRequest],
        staff: NamedDependency[StaffPrincipal],
        notices: NamedDependency[Delivery],
    ) -> NoticeAccepted:
        """Accept a notice (202); it reaches the region's citizens in batches."""
        return await notices.notice(staff, data)
