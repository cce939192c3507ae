"""Ledger rows of the codes domain: which citizens an exposure query touched.

An exposure query returns check-in pseudonyms (``V``), not accounts; the citizen's data-access
ledger (docs/data-access.md) needs one audit row per citizen whose check-ins were returned, with
``subject_id`` = the account id. They are written in one ``INSERT ... SELECT`` that maps the
pseudonyms through ``code_subjects`` inside PostgreSQL, so a 10 000-row answer costs one round
trip and no account id ever travels to the app.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from codes.payload import CodeType
from core.db import Connection, Pool
from core.ledger import EXPOSURE_SUBJECT_ACTION, staff_context
from identity.staff.permissions import StaffPrincipal

__all__ = ["record_exposure"]

_INSERT = """
INSERT INTO audit_log (at, actor_type, actor_id, subject_id, action, outcome, client_ip, details)
SELECT now(), 'staff', $1, cs.account_id::text, $2, 'success', $3,
       $4::jsonb || jsonb_build_object('checkins', count(*))
FROM unnest($5::text[]) AS p(pseudonym)
JOIN code_subjects cs ON cs.code_type = $6 AND cs.pseudonym = p.pseudonym
GROUP BY cs.account_id
"""


async def record_exposure(
    conn: Connection | Pool,
    staff: StaffPrincipal,
    *,
    venue_id: str,
    start: datetime,
    end: datetime,
    pseudonyms: Iterable[str],
    hold_until: datetime | None,
    client_ip: str | None,
) -> None:
    """One ``codes.exposure.subject`` audit row per citizen among ``pseudonyms``.

    Args:
        conn: Where to write (a connection inside the caller's transaction, or the pool).
        staff: The health officer who ran the query (shown by id, roles and region).
        venue_id: The venue queried.
        start: The window's start.
        end: The window's end.
        pseudonyms: The check-in pseudonyms the query returned (duplicates are fine).
        hold_until: The ledger hides these rows until then (validated by
            :func:`core.ledger.check_hold` before the query ran).
        client_ip: The officer's address.
    """
    details = {
        "venue_id": venue_id,
        "start": start.isoformat(),
        "end": end.isoformat(),
        **staff_context(staff.roles, staff.region),
        **({"hold_until": hold_until.isoformat()} if hold_until is not None else {}),
    }
    distinct = sorted(set(pseudonyms))
    if distinct:
        await conn.execute(
            _INSERT,
            staff.staff_id,
            EXPOSURE_SUBJECT_ACTION,
            client_ip,
            details,
            distinct,
            CodeType.VENUE.value,
        )
