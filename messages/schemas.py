"""Payloads of the message centre (DESIGN, "Message centre")."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from core.structs import FrozenStruct, Request, text, whole

__all__ = [
    "CATEGORIES",
    "Category",
    "CategoryPreference",
    "CodeStatusEvent",
    "Link",
    "Message",
    "MessageList",
    "NoticeAccepted",
    "NoticeRequest",
    "Preferences",
    "PushTokenRequest",
    "QuietHours",
    "ReadAll",
]

Category = Literal["application", "bundle", "code", "security", "notice"]
CATEGORIES: tuple[Category, ...] = ("application", "bundle", "code", "security", "notice")
HhMm = Annotated[str, msgspec.Meta(pattern=whole(r"([01][0-9]|2[0-3]):[0-5][0-9]"), examples=["22:00"])]


class Link(FrozenStruct, frozen=True):
    """What a message is about: ``{kind: "application"|"bundle"|"code", id}``."""

    kind: str
    id: str


class Message(FrozenStruct, frozen=True, omit_defaults=True):
    """One inbox message; ``id`` is also its SSE event id."""

    id: str
    category: Category
    title: str
    body: str
    created_at: dt.datetime
    read_at: dt.datetime | None
    link: Link | None = None


class MessageList(FrozenStruct, frozen=True):
    """A page of the inbox, newest first."""

    messages: list[Message]
    unread_count: int
    next_cursor: str | None


class ReadAll(FrozenStruct, frozen=True):
    """How many messages ``read-all`` marked."""

    marked: int
    unread_count: int


class CategoryPreference(Request):
    """Which channels one category may use."""

    push: bool = True
    sms: bool = False


class QuietHours(Request):
    """No push between ``start`` and ``end`` (local time of ``timezone``); may cross midnight."""

    start: HhMm
    end: HhMm
    timezone: Annotated[str, text(64, nfc=False)] = "Asia/Shanghai"


class Preferences(Request, omit_defaults=True):
    """The whole preferences document; ``PUT`` replaces it."""

    categories: dict[Category, CategoryPreference] = msgspec.field(default_factory=dict)
    quiet_hours: QuietHours | None = None


class PushTokenRequest(Request):
    """The push token of the calling session's device."""

    token: Annotated[str, msgspec.Meta(min_length=8, max_length=512, pattern=whole(r"[A-Za-z0-9_.:\-]+"))]


class NoticeRequest(Request):
    """A staff notice to the citizens registered in ``region``."""

    region: Annotated[str, msgspec.Meta(pattern=whole(r"[0-9]{4}|[0-9]{6}|[0-9]{9}|[0-9]{12}"), examples=["110101"])]
    title: Annotated[str, text(64)]
    body: Annotated[str, text(2000)]


class NoticeAccepted(FrozenStruct, frozen=True):
    """A notice accepted for fan-out (delivered in batches by the job queue)."""

    notice_id: str
    region: str


class CodeStatusEvent(FrozenStruct, frozen=True):
    """The SSE ``code_status`` event: a health code's status changed."""

    type: str
    status: str
