"""Push gateway simulator (``aud: push``): accepts notifications into a bounded in-memory outbox.

Like the SMS simulator it never logs a notification or a device token.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections import deque
from typing import Annotated, Any, Final

import msgspec
from litestar import Litestar, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody

from services.simulators.base import SimulatorState, build_simulator
from services.tokens import JwksSource, VerifiedServiceToken

__all__ = ["OUTBOX_LIMIT", "create_app"]

OUTBOX_LIMIT: Final = 5000
"""Notifications kept; the oldest go first."""


class PushBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``POST /v1/push`` request."""

    device_token: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    body: Annotated[str, msgspec.Meta(max_length=2000)]
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class Accepted(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /v1/push`` answer (202): the gateway's id."""

    id: str


class Pushed(msgspec.Struct, frozen=True, kw_only=True):
    """One outbox entry."""

    id: str
    device_token: str
    title: str
    body: str
    data: dict[str, Any]
    sent_at: dt.datetime


class OutboxBody(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/push`` answer."""

    messages: list[Pushed]


def create_app(jwks: JwksSource, *, dev_mode: bool = True) -> Litestar:
    """Build the push gateway simulator.

    Args:
        jwks: The BFF's service-token keys.
        dev_mode: Unused here; every simulator factory takes it.
    """
    outbox: deque[Pushed] = deque(maxlen=OUTBOX_LIMIT)

    @post("/v1/push", status_code=202, sync_to_thread=False)
    def push(token: NamedDependency[VerifiedServiceToken], data: JSONBody[PushBody]) -> Accepted:
        ident = secrets.token_hex(8)
        outbox.append(
            Pushed(
                id=ident,
                device_token=data.device_token,
                title=data.title,
                body=data.body,
                data=data.data,
                sent_at=dt.datetime.now(dt.UTC),
            )
        )
        return Accepted(id=ident)

    @get("/v1/push", sync_to_thread=False)
    def messages(
        token: NamedDependency[VerifiedServiceToken], device_token: FromQuery[str | None] = None
    ) -> OutboxBody:
        return OutboxBody(messages=[m for m in outbox if device_token is None or m.device_token == device_token])

    return build_simulator(SimulatorState("push", jwks, dev_mode=dev_mode), [push, messages])
