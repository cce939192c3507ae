"""SQL of the screens domain: the citizen's data-access ledger (docs/data-access.md).

Two sources, each read newest first by keyset and merged by the service:

- ``audit_log`` rows whose ``subject_id`` is the citizen (the account id, or the audit pseudonym
  of reads made without one) and whose ``action`` is one of the ledger's (``core.ledger``);
  keyset ``(at, id)``, served by ``audit_log_subject_at_id``;
- ``scan_log`` rows of the citizen's code pseudonyms (partner verifications); keyset
  ``(scanned_at, jti, partner_id)``, served by ``scan_log_holder``.

Rows an investigator put on hold (``details.hold_until`` in the future) are left out here, in
SQL, so they can never reach a page. Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import msgspec

from core.db import Repository, rows_as

__all__ = ["AuditLedgerRow", "DataAccessRepository", "ScanLedgerRow"]


class AuditLedgerRow(msgspec.Struct, frozen=True, kw_only=True):
    """An ``audit_log`` row of the citizen's ledger (``details`` as stored, normally an object)."""

    id: int
    at: dt.datetime
    action: str
    actor_type: str
    actor_id: str | None
    outcome: str
    details: Any


class ScanLedgerRow(msgspec.Struct, frozen=True, kw_only=True):
    """A partner's verification of one of the citizen's codes (``scan_log``)."""

    at: dt.datetime
    partner_id: str
    venue_id: str | None
    code_type: str
    jti: str | None
    result: str
    consumed: bool


_AUDIT = """
SELECT a.id, a.at, a.action, a.actor_type, a.actor_id, a.outcome, a.details
FROM audit_log a
WHERE a.subject_id = ANY($1::text[]) AND a.action = ANY($2::text[])
  AND ($3::timestamptz IS NULL OR a.at >= $3)
  AND ($4::timestamptz IS NULL OR a.at < $4)
  AND ($5::timestamptz IS NULL OR a.at < $5 OR (a.at = $5 AND ($6::bigint IS NULL OR a.id < $6)))
  AND NOT (a.details ? 'hold_until' AND (a.details->>'hold_until')::timestamptz > now())
ORDER BY a.at DESC, a.id DESC
LIMIT $7
"""

_SCANS = """
SELECT s.scanned_at AS at, s.partner_id, s.venue_id, s.code_type, s.jti, s.result, s.consumed
FROM scan_log s
WHERE s.code_type IN ('H', 'T', 'S', 'C')
  AND (s.code_type, s.pseudonym) IN (
      SELECT cs.code_type, cs.pseudonym FROM code_subjects cs
      WHERE cs.account_id = $1::uuid AND cs.code_type IN ('H', 'T', 'S', 'C'))
  AND ($2::timestamptz IS NULL OR s.scanned_at >= $2)
  AND ($3::timestamptz IS NULL OR s.scanned_at < $3)
  AND ($4::timestamptz IS NULL OR s.scanned_at < $4
       OR ($5::text IS NOT NULL AND s.scanned_at = $4 AND (s.jti, s.partner_id) < ($5, $6)))
ORDER BY s.scanned_at DESC, s.jti DESC, s.partner_id DESC
LIMIT $7
"""


class DataAccessRepository(Repository):
    """Reads the ledger rows of one citizen, newest first, by keyset pagination.

    Args:
        pool: The read pool (``ONECITY_DATABASE_READ_URL``, else the primary): nothing here
            needs the newest row; a read or scan of the last replication lag shows up a
            moment later.
    """

    async def audit_page(
        self,
        subjects: Sequence[str],
        actions: Sequence[str],
        *,
        since: dt.datetime | None,
        until: dt.datetime | None,
        before_at: dt.datetime | None,
        before_id: int | None,
        limit: int,
    ) -> list[AuditLedgerRow]:
        """Up to ``limit`` audit rows of ``subjects`` with one of ``actions``, in ``[since, until)``.

        Args:
            subjects: The citizen's subject ids.
            actions: The audit actions wanted.
            since: Inclusive lower bound of ``at``.
            until: Exclusive upper bound of ``at``.
            before_at: Keyset: only rows older than this (or as old, see ``before_id``).
            before_id: Keyset tie-break: rows at ``before_at`` with a smaller id; ``None``
                takes every row at ``before_at`` (the cursor was a scan row, which sorts first).
            limit: Most rows.
        """
        rows = await self.pool.fetch(_AUDIT, list(subjects), list(actions), since, until, before_at, before_id, limit)
        return rows_as(AuditLedgerRow, rows)

    async def scan_page(
        self,
        account_id: str,
        *,
        since: dt.datetime | None,
        until: dt.datetime | None,
        before_at: dt.datetime | None,
        before_key: tuple[str, str] | None,
        limit: int,
    ) -> list[ScanLedgerRow]:
        """Up to ``limit`` verifications of the citizen's codes, in ``[since, until)``.

        Args:
            account_id: The citizen.
            since: Inclusive lower bound of ``scanned_at``.
            until: Exclusive upper bound of ``scanned_at``.
            before_at: Keyset: only rows older than this (or as old, see ``before_key``).
            before_key: Keyset tie-break ``(jti, partner_id)`` at ``before_at``; ``None``
                takes no row at ``before_at`` (the cursor was an audit row, which sorts after).
            limit: Most rows.
        """
        jti, partner = before_key if before_key is not None else (None, None)
        rows = await self.pool.fetch(_SCANS, account_id, since, until, before_at, jti, partner, limit)
        return rows_as(ScanLedgerRow, rows)
