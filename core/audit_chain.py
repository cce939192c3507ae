"""Tamper evidence and retention of the audit log.

Every ``audit_log`` row is hash-chained by a trigger (``migrations/0040_audit_integrity.sql``):
rows of one stream (the database backend that inserted them) are numbered ``seq`` 1, 2, ...
and each carries ``row_hash = sha256(canonical(row) + prev_hash)``. :func:`verify_chain`
recomputes every hash here, in Python, independently of the database's functions, and reports
the first row that does not match: an altered row (its hash), a removed row (a gap in ``seq``
or a broken link, or the stream's head pointing past the last row), a reordered row (its
``seq`` or link). :class:`AuditRetention` removes the rows past the retention period (at
least 180 days, Cybersecurity Law art. 21), a prefix of each stream at a time, recording the
last removed row's hash as the stream's anchor so the rest stays verifiable; rows set aside in
``write_quarantine`` go after the same period.

What this does not do: someone who can rewrite the whole table *and* the heads (a database
superuser) can forge a consistent chain. Exporting the heads (``onecity audit verify`` prints
them) to a separate system now and then turns that into a detectable event too.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec

from core.audit import AuditEvent, write_audit
from core.db import Pool
from core.partitions import partitions

__all__ = [
    "MIN_RETENTION_DAYS",
    "RETENTION_LOCK_ID",
    "AuditRetention",
    "AuditSettings",
    "ChainBreak",
    "ChainReport",
    "canonical_text",
    "row_hash",
    "verify_chain",
]

log = logging.getLogger("onecity.audit")

#: Cybersecurity Law of the PRC, art. 21: network logs are kept no less than six months. The
#: database refuses to delete a younger row whatever this program is told.
MIN_RETENTION_DAYS = 180
# Only one process at a time prunes (transaction-scoped: nothing to release on a crash).
RETENTION_LOCK_ID = 0x0C17_0040
_PAGE = 5_000
_LEGAL_FLOOR = timedelta(days=MIN_RETENTION_DAYS)


class AuditSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The audit log.

    Attributes:
        retention_days: How long audit rows are kept (``ONECITY_AUDIT_RETENTION_DAYS``);
            refused below 180 (Cybersecurity Law art. 21).
    """

    retention_days: Annotated[int, msgspec.Meta(ge=MIN_RETENTION_DAYS, le=36_500)] = 365


def canonical_text(parts: Sequence[str | None]) -> str:
    """Length-prefixed fields (``-`` for NULL) joined by ``|`` (SQL ``audit_field``, ``audit_row_hash``)."""
    return "|".join("-" if p is None else f"{len(p)}:{p}" for p in parts)


def row_hash(row: Any, prev_hash: bytes) -> bytes:
    """The hash a row must carry: ``row`` has the ``audit_log`` columns plus ``details_text``
    (``details::text``, PostgreSQL's own canonical jsonb text)."""
    at: datetime = row["at"]
    text = canonical_text(
        [
            str(row["stream"]),
            str(row["seq"]),
            str(row["id"]),
            at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f"),
            row["actor_type"],
            row["actor_id"],
            row["subject_id"],
            row["action"],
            row["outcome"],
            row["client_ip"],
            row["details_text"],
            prev_hash.hex(),
        ]
    )
    return hashlib.sha256(text.encode("utf-8")).digest()


@dataclass(frozen=True)
class ChainBreak:
    """The first row of a stream that does not verify.

    Attributes:
        stream: The stream.
        row_id: The bad row's ``id`` (for a truncated tail: the last row still there, or ``None``).
        seq: Its position in the stream (expected position for a missing row).
        problem: ``altered`` (hash mismatch), ``missing`` (a gap or a broken link: a row
            removed or moved), ``truncated`` (rows after the last one are gone).
    """

    stream: int
    row_id: int | None
    seq: int
    problem: str


@dataclass
class ChainReport:
    """What :func:`verify_chain` found."""

    streams: int = 0
    rows: int = 0
    breaks: list[ChainBreak] = field(default_factory=list)
    heads: dict[int, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No break anywhere."""
        return not self.breaks

    @property
    def first_bad(self) -> ChainBreak | None:
        """The break at the lowest row id (the earliest damage)."""
        known = [b for b in self.breaks if b.row_id is not None]
        return min(known, key=lambda b: b.row_id or 0) if known else (self.breaks[0] if self.breaks else None)


_ROWS = """
SELECT id, at, actor_type, actor_id, subject_id, action, outcome, client_ip, details::text AS details_text,
       stream, seq, prev_hash, row_hash
FROM audit_log WHERE stream = $1 AND seq > $2 ORDER BY seq LIMIT $3
"""


async def verify_chain(pool: Pool, *, since: datetime | None = None) -> ChainReport:
    """Recompute every stream's chain; one :class:`ChainBreak` per broken stream.

    Args:
        pool: The database.
        since: Verify from each stream's first row stamped at or after this time, to the end
            of the stream (later rows stamped earlier, a batched event written late, are
            included). That first row's link is trusted, its own hash still checked. Faster,
            and what a daily check needs; the tail (head) check still applies.
    """
    report = ChainReport()
    heads = await pool.fetch("SELECT stream, seq, hash, anchor_seq, anchor_hash FROM audit_chain_heads ORDER BY stream")
    for head in heads:
        stream: int = head["stream"]
        report.streams += 1
        report.heads[stream] = f"{head['seq']}:{bytes(head['hash']).hex()}"
        expected_seq = head["anchor_seq"] + 1
        prev: bytes = bytes(head["anchor_hash"])
        after = head["anchor_seq"]
        trusted_start = False
        nothing_seen = False
        if since is not None:
            first = await pool.fetchval("SELECT min(seq) FROM audit_log WHERE stream = $1 AND at >= $2", stream, since)
            if first is None:
                nothing_seen = True
            else:
                after, trusted_start = max(after, first - 1), True
        last_id: int | None = None
        broken: ChainBreak | None = None
        while broken is None and not nothing_seen:
            page = await pool.fetch(_ROWS, stream, after, _PAGE)
            for row in page:
                stored_prev = bytes(row["prev_hash"])
                if trusted_start:
                    # The window's first row: take its position and link as given.
                    expected_seq, prev, trusted_start = row["seq"], stored_prev, False
                if row["seq"] != expected_seq or stored_prev != prev:
                    broken = ChainBreak(stream, row["id"], row["seq"], "missing")
                    break
                computed = row_hash(row, prev)
                if computed != bytes(row["row_hash"]):
                    broken = ChainBreak(stream, row["id"], row["seq"], "altered")
                    break
                report.rows += 1
                prev, expected_seq, last_id = computed, expected_seq + 1, row["id"]
            if len(page) < _PAGE or broken is not None:
                break
            after = page[-1]["seq"]
        if broken is None and not await _tail_matches(pool, head, nothing_seen, expected_seq - 1, prev):
            broken = ChainBreak(stream, last_id, expected_seq, "truncated")
        if broken is not None:
            report.breaks.append(broken)
    return report


async def _tail_matches(pool: Pool, head: Any, nothing_seen: bool, last_seq: int, last_hash: bytes) -> bool:
    """Whether the stream ends where its head says (rows removed from the end are detected).

    ``nothing_seen`` is true only with ``since`` and no row in the window: then the newest
    row of the stream (older than the window), or the anchor if none is left, must be the head.
    """
    if nothing_seen:
        newest = await pool.fetchrow(
            "SELECT seq, row_hash FROM audit_log WHERE stream = $1 ORDER BY seq DESC LIMIT 1", head["stream"]
        )
        if newest is None:
            last_seq, last_hash = head["anchor_seq"], bytes(head["anchor_hash"])
        else:
            last_seq, last_hash = newest["seq"], bytes(newest["row_hash"])
    return bool(last_seq == head["seq"] and last_hash == bytes(head["hash"]))


class AuditRetention:
    """Removes audit rows older than the retention period, keeping every chain verifiable.

    Per stream, in short transactions of at most ``batch`` rows, each under a
    transaction-scoped advisory lock (``pg_try_advisory_xact_lock``: a second process skips, a
    crash releases it): the prefix of the stream older than the cutoff (up to the first row at
    or after it) is covered by the stream's anchor (its last ``seq`` and hash), then deleted.
    The database's trigger lets a DELETE through only for anchored rows older than 180 days.

    Args:
        pool: The database.
        settings: The retention period.
        batch: Most rows removed per transaction.
    """

    def __init__(self, pool: Pool, settings: AuditSettings, *, batch: int = _PAGE) -> None:
        self._pool = pool
        self._settings = settings
        self._batch = batch

    def cutoff(self, now: datetime | None = None) -> datetime:
        """The time before which rows are removed."""
        return (now or datetime.now(UTC)) - timedelta(days=self._settings.retention_days)

    async def run_once(self, now: datetime | None = None) -> int | None:
        """Remove what is past retention; rows removed, or ``None`` if another process runs."""
        cutoff = self.cutoff(now)
        # audit_log is partitioned by month (core.partitions): rows in months that ended before
        # the cutoff go with their partition once their streams' anchors cover them; only the
        # rest (the default partition's) are deleted row by row.
        bound = max(
            (p.upper for p in await partitions(self._pool, "audit_log") if p.upper is not None and p.upper <= cutoff),
            default=None,
        )
        streams = [r["stream"] for r in await self._pool.fetch("SELECT stream FROM audit_chain_heads ORDER BY stream")]
        total = 0
        for stream in streams:
            while True:
                removed = await self._prune(stream, cutoff, bound)
                if removed is None:
                    return None
                total += removed
                if removed < self._batch:
                    break
        dropped = await self._drop_partitions(cutoff)
        if dropped is None:
            return None
        quarantined = await self._prune_quarantine(cutoff)
        if quarantined is None:
            return None
        async with self._pool.acquire() as conn:
            await write_audit(
                conn,
                [
                    AuditEvent(
                        action="audit.retention",
                        outcome="success",
                        details={
                            "removed": total,
                            "before": cutoff.isoformat(),
                            "partitions_dropped": dropped,
                            "quarantine_removed": quarantined,
                        },
                    )
                ],
            )
        if total or quarantined:
            log.info(
                "audit retention done",
                extra={"removed": total, "partitions_dropped": len(dropped), "quarantine_removed": quarantined},
            )
        return total

    async def _prune_quarantine(self, cutoff: datetime) -> int | None:
        """Remove ``write_quarantine`` rows older than the cutoff (audit and scan-log rows a batch
        writer could not store): they are kept as long as the audit log itself, no longer."""
        removed = 0
        while True:
            async with self._pool.acquire() as conn, conn.transaction():
                if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", RETENTION_LOCK_ID):
                    return None
                batch: int = await conn.fetchval(
                    """WITH gone AS (
                           DELETE FROM write_quarantine WHERE id = ANY(ARRAY(
                               SELECT id FROM write_quarantine WHERE quarantined_at < $1 LIMIT $2))
                           RETURNING 1
                       ) SELECT count(*) FROM gone""",
                    cutoff,
                    self._batch,
                )
            removed += batch
            if batch < self._batch:
                return removed

    async def _drop_partitions(self, cutoff: datetime) -> list[str] | None:
        """Drop the months that ended before the cutoff and whose every row is anchored."""
        dropped: list[str] = []
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", RETENTION_LOCK_ID):
                return None
            for part in await partitions(conn, "audit_log"):
                # The legal floor again, whatever the configuration says (as the DELETE trigger).
                if part.upper is None or part.upper > cutoff or part.upper > datetime.now(UTC) - _LEGAL_FLOOR:
                    continue
                # A row stamped in this month but chained after a younger row of its stream (a
                # batched event written late) is not anchored yet: the month waits for it.
                unanchored = await conn.fetchval(
                    f"""SELECT EXISTS (SELECT 1 FROM "{part.name}" p JOIN audit_chain_heads h USING (stream)
                                      WHERE p.seq > h.anchor_seq)""",  # noqa: S608 - a catalog name
                )
                if not unanchored:
                    await conn.execute(f'DROP TABLE "{part.name}"')
                    dropped.append(part.name)
        return dropped

    async def _prune(self, stream: int, cutoff: datetime, bound: datetime | None) -> int | None:
        """Anchor the next batch of the stream's old prefix; delete those rows outside the
        months :meth:`_drop_partitions` drops whole. Returns how many rows were anchored."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", RETENTION_LOCK_ID):
                return None
            head = await conn.fetchrow("SELECT anchor_seq FROM audit_chain_heads WHERE stream = $1 FOR UPDATE", stream)
            if head is None:
                return 0
            anchor: int = head["anchor_seq"]
            # The first row young enough to keep ends the prefix that may go.
            young = await conn.fetchval(
                "SELECT seq FROM audit_log WHERE stream = $1 AND seq > $2 AND at >= $3 ORDER BY seq LIMIT 1",
                stream,
                anchor,
                cutoff,
            )
            last = await conn.fetchval("SELECT max(seq) FROM audit_log WHERE stream = $1", stream)
            if last is None:
                return 0
            through = min((young - 1) if young is not None else last, anchor + self._batch)
            if through <= anchor:
                return 0
            hash_through = await conn.fetchval(
                "SELECT row_hash FROM audit_log WHERE stream = $1 AND seq = $2", stream, through
            )
            await conn.execute(
                """UPDATE audit_chain_heads SET anchor_seq = $2, anchor_hash = $3, pruned_at = now()
                   WHERE stream = $1""",
                stream,
                through,
                hash_through,
            )
            await conn.execute(
                """DELETE FROM audit_log WHERE stream = $1 AND seq > $2 AND seq <= $3
                   AND ($4::timestamptz IS NULL OR at >= $4 OR tableoid = 'audit_log_default'::regclass)""",
                stream,
                anchor,
                through,
                bound,
            )
            return int(through - anchor)
