"""Settings of the message centre (``ONECITY_MESSAGES_*``, ``ONECITY_PUSH_URL``; documented in
docs/messages.md)."""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["MessagesSettings"]


class MessagesSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Inbox paging and retention, and the live stream's limits.

    Attributes:
        page_size: Messages per inbox page.
        retention_days: How long a message stays in the inbox; expired ones are purged.
        keepalive_s: A comment line on every open event stream this often (proxies close idle
            connections); DESIGN fixes 15 s, tests shorten it.
        max_streams: Concurrent event streams one citizen may hold; one more is 429.
        stream_lease_s: How long a stream's slot is held without a heartbeat (a crashed
            process's slots free themselves after this).
        notice_batch: Recipients per notice fan-out job.
    """

    page_size: Annotated[int, msgspec.Meta(ge=1, le=200)] = 20
    retention_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 180
    keepalive_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 15.0
    max_streams: Annotated[int, msgspec.Meta(ge=1, le=100)] = 5
    stream_lease_s: Annotated[float, msgspec.Meta(ge=5, le=3600)] = 60.0
    notice_batch: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500
