"""SQL of the screens domain: the citizen's data-access log, read from ``audit_log``.

The rows are written by the fan-out (``action = 'data.read'``) through the audit batcher;
nothing here writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from core.db import Pool
from services.fanout import AUDIT_ACTION

__all__ = ["DataAccessRepository"]


class DataAccessRepository:
    """Reads the data-access rows of one citizen, newest first, by keyset pagination.

    Args:
        pool: The asyncpg pool.
    """

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def page(
        self, subjects: Sequence[str], *, before: tuple[dt.datetime, int] | None, limit: int
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` rows for any of ``subjects`` strictly older than ``before``.

        Served by the ``audit_log (subject_id, at DESC)`` index; ``id`` breaks ties of ``at``.
        """
        at, row_id = before if before is not None else (None, None)
        rows = await self.pool.fetch(
            """SELECT id, at, details, outcome FROM audit_log
               WHERE subject_id = ANY($1::text[]) AND action = $2
                 AND ($3::timestamptz IS NULL OR (at, id) < ($3, $4))
               ORDER BY at DESC, id DESC
               LIMIT $5""",
            list(subjects),
            AUDIT_ACTION,
            at,
            row_id,
            limit,
        )
        return [dict(row) for row in rows]
