"""SMS gateway simulator (``aud: sms``): accepts messages into a bounded in-memory outbox.

It never logs a message's text or phone number: the text of an OTP message is a credential.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections import deque
from typing import Annotated, Final

import msgspec
from litestar import Litestar, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody

from core.structs import Phone
from services.simulators.base import SimulatorState, build_simulator
from services.tokens import JwksSource, VerifiedServiceToken

__all__ = ["OUTBOX_LIMIT", "create_app"]

OUTBOX_LIMIT: Final = 1000
"""Messages kept; the oldest go first, so a long dev session cannot grow memory without bound."""


class MessageBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``POST /v1/messages`` request."""

    to: Phone
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


class Accepted(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /v1/messages`` answer (202): the gateway's message id."""

    id: str


class SentMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One outbox entry."""

    to: str
    text: str
    sent_at: dt.datetime


class OutboxBody(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/messages`` answer."""

    messages: list[SentMessage]


def create_app(jwks: JwksSource, *, dev_mode: bool = True) -> Litestar:
    """Build the SMS gateway simulator.

    Args:
        jwks: The BFF's service-token keys.
        dev_mode: Unused here; every simulator factory takes it.
    """
    outbox: deque[SentMessage] = deque(maxlen=OUTBOX_LIMIT)

    @post("/v1/messages", status_code=202, sync_to_thread=False)
    def send(token: NamedDependency[VerifiedServiceToken], data: JSONBody[MessageBody]) -> Accepted:
        outbox.append(SentMessage(to=data.to, text=data.text, sent_at=dt.datetime.now(dt.UTC)))
        return Accepted(id=secrets.token_hex(8))

    @get("/v1/messages", sync_to_thread=False)
    def messages(token: NamedDependency[VerifiedServiceToken], to: FromQuery[str | None] = None) -> OutboxBody:
        return OutboxBody(messages=[m for m in outbox if to is None or m.to == to])

    return build_simulator(SimulatorState("sms", jwks, dev_mode=dev_mode), [send, messages])
