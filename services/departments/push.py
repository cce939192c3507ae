"""The push gateway client (``aud: push``); calls are on nobody's behalf (``sub: onecity``)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

import msgspec

from services.departments.base import DepartmentHttp, Payload
from services.tokens import SERVICE_SUBJECT

__all__ = ["HttpPushGateway", "PushGateway", "PushOutbox", "PushedMessage"]


class PushedMessage(Payload, frozen=True, kw_only=True):
    """One notification the gateway accepted."""

    device_token: str
    title: str
    body: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    sent_at: dt.datetime


class PushOutbox(Payload, frozen=True, kw_only=True):
    """``GET /v1/push?device_token=`` (simulator only)."""

    messages: list[PushedMessage]


class _PushBody(msgspec.Struct, frozen=True, kw_only=True):
    device_token: str
    title: str
    body: str
    data: dict[str, Any]


class PushGateway(Protocol):
    """What the BFF needs from the push gateway."""

    async def push(self, device_token: str, *, title: str, body: str, data: dict[str, Any]) -> None:
        """Queue a notification for one device."""
        ...

    async def outbox(self, device_token: str | None = None, *, purpose: str = "testing") -> PushOutbox:
        """The simulator's record of sent notifications (real gateways do not offer this)."""
        ...


class HttpPushGateway:
    """:class:`PushGateway` over HTTP, plus the simulator's outbox for tests and dev.

    Args:
        http: The department's transport (base URL, shared client, token minter).
    """

    __slots__ = ("_http",)

    def __init__(self, http: DepartmentHttp) -> None:
        self._http = http

    async def push(self, device_token: str, *, title: str, body: str, data: dict[str, Any]) -> None:
        """``POST /v1/push``; succeeds on 202."""
        await self._http.post_accepted(
            "/v1/push",
            _PushBody(device_token=device_token, title=title, body=body, data=data),
            subject=SERVICE_SUBJECT,
            scope="push:send",
            purpose="notification",
        )

    async def outbox(self, device_token: str | None = None, *, purpose: str = "testing") -> PushOutbox:
        """``GET /v1/push?device_token=``: what the simulator has "sent", newest last."""
        params = None if device_token is None else {"device_token": device_token}
        return await self._http.get(
            "/v1/push", PushOutbox, subject=SERVICE_SUBJECT, scope="push:outbox", purpose=purpose, params=params
        )
