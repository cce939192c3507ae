"""The SMS gateway client (``aud: sms``); calls are on nobody's behalf (``sub: onecity``)."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

import msgspec

from services.departments.base import DepartmentHttp, Payload
from services.tokens import SERVICE_SUBJECT

__all__ = ["HttpSmsGateway", "Outbox", "OutboxMessage", "SmsGateway"]


class OutboxMessage(Payload, frozen=True, kw_only=True):
    """One message the gateway accepted."""

    to: str
    text: str
    sent_at: dt.datetime


class Outbox(Payload, frozen=True, kw_only=True):
    """``GET /v1/messages?to=`` (simulator only)."""

    messages: list[OutboxMessage]


class _MessageBody(msgspec.Struct, frozen=True, kw_only=True):
    to: str
    text: str


class SmsGateway(Protocol):
    """What the BFF needs from the SMS gateway."""

    async def send(self, to: str, text: str, *, purpose: str = "otp") -> None:
        """Queue ``text`` for delivery to the phone ``to``."""
        ...

    async def outbox(self, to: str | None = None, *, purpose: str = "testing") -> Outbox:
        """The simulator's record of sent messages (real gateways do not offer this)."""
        ...


class HttpSmsGateway:
    """:class:`SmsGateway` over HTTP, plus the simulator's outbox for tests and dev.

    Args:
        http: The department's transport (base URL, shared client, token minter).
    """

    __slots__ = ("_http",)

    def __init__(self, http: DepartmentHttp) -> None:
        self._http = http

    async def send(self, to: str, text: str, *, purpose: str = "otp") -> None:
        """``POST /v1/messages``; succeeds on 202."""
        await self._http.post_accepted(
            "/v1/messages", _MessageBody(to=to, text=text), subject=SERVICE_SUBJECT, scope="sms:send", purpose=purpose
        )

    async def outbox(self, to: str | None = None, *, purpose: str = "testing") -> Outbox:
        """``GET /v1/messages?to=``: what the simulator has "sent", newest last."""
        params = None if to is None else {"to": to}
        return await self._http.get(
            "/v1/messages", Outbox, subject=SERVICE_SUBJECT, scope="sms:outbox", purpose=purpose, params=params
        )
