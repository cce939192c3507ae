"""Settings of the service hall (``ONECITY_HALL_*``, documented in docs/service-hall.md)."""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["HallSettings"]


class HallSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How the hall's job queue delivers cases and runs bundles.

    Attributes:
        worker: Whether this process runs queue workers (any number of processes may).
        worker_concurrency: Jobs one process runs at once.
        retry_base_s: First backoff after a department failed to take a case; doubles per try.
        retry_max_s: Longest backoff between two tries.
        retry_budget_s: How long a case submission is retried before the application (and its
            bundle) needs attention; DESIGN asks for at least 24 h in production.
        heartbeat_s: A job whose worker stopped beating for this long is picked again by
            another worker (a killed worker's saga resumes).
        page_size: Items per page of the lists.
    """

    worker: bool = True
    worker_concurrency: Annotated[int, msgspec.Meta(ge=1, le=500)] = 20
    retry_base_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 2.0
    retry_max_s: Annotated[float, msgspec.Meta(gt=0, le=86_400)] = 300.0
    retry_budget_s: Annotated[float, msgspec.Meta(gt=0, le=30 * 86_400)] = 86_400.0
    heartbeat_s: Annotated[float, msgspec.Meta(ge=1, le=3600)] = 30.0
    page_size: Annotated[int, msgspec.Meta(ge=1, le=200)] = 20
