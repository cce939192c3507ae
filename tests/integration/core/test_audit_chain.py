"""The audit log's hash chain and retention on a real PostgreSQL.

The attacks are made as a database superuser who disables the append-only trigger, which is
what someone with direct database access could do; the chain is what still tells.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import pytest

from bff.cli import main as onecity
from bff.settings import Settings
from core.audit import AuditBatcher, AuditEvent, write_audit
from core.audit_chain import RETENTION_LOCK_ID, AuditRetention, AuditSettings, verify_chain
from core.db import Connection, Pool


def _events(count: int, *, at: datetime | None = None, action: str = "auth.login") -> list[AuditEvent]:
    return [
        AuditEvent(action=action, outcome="success", actor_type="citizen", actor_id=f"a{i}", details={"n": i}, at=at)
        for i in range(count)
    ]


async def _write(conn: Connection, events: list[AuditEvent]) -> list[int]:
    """Write on ``conn`` (one backend, so one stream); the new rows' ids in chain order."""
    before = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM audit_log WHERE stream = pg_backend_pid()")
    await write_audit(conn, events)
    rows = await conn.fetch(
        "SELECT id FROM audit_log WHERE stream = pg_backend_pid() AND seq > $1 ORDER BY seq", before
    )
    return [r["id"] for r in rows]


async def _write_on_one_connection(pool: Pool, events: list[AuditEvent]) -> list[int]:
    async with pool.acquire() as conn:
        return await _write(conn, events)


async def _as_attacker(pool: Pool, sql: str, *args: object) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update")
        await conn.execute(sql, *args)
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update")


async def _cli_verify(database_url: str, *args: str) -> tuple[int, str]:
    env = {**os.environ, "ONECITY_DATABASE_URL": database_url, "ONECITY_LOG_LEVEL": "WARNING"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bff.cli", "audit", "verify", *args, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


async def test_rows_are_chained_and_verify(pool: Pool, clean: None, database_url: str) -> None:
    ids = await _write_on_one_connection(pool, _events(5))
    rows = await pool.fetch("SELECT seq, prev_hash, row_hash FROM audit_log ORDER BY seq")
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert bytes(rows[0]["prev_hash"]) == bytes(32)
    assert all(bytes(rows[i]["prev_hash"]) == bytes(rows[i - 1]["row_hash"]) for i in range(1, 5))
    report = await verify_chain(pool)
    assert report.ok and report.rows == 5 and len(ids) == 5
    code, out = await _cli_verify(database_url)
    assert code == 0 and "verified 5 rows in 1 streams" in out


async def test_an_altered_row_is_named(pool: Pool, clean: None, database_url: str) -> None:
    ids = await _write_on_one_connection(pool, _events(6))
    await _as_attacker(pool, "UPDATE audit_log SET outcome = 'failure' WHERE id = $1", ids[3])
    report = await verify_chain(pool)
    assert report.first_bad is not None
    assert (report.first_bad.row_id, report.first_bad.problem) == (ids[3], "altered")
    code, out = await _cli_verify(database_url)
    assert code == 1 and f"first bad row id: {ids[3]} (altered)" in out


async def test_a_removed_row_is_named(pool: Pool, clean: None, database_url: str) -> None:
    ids = await _write_on_one_connection(pool, _events(6))
    await _as_attacker(pool, "DELETE FROM audit_log WHERE id = $1", ids[2])
    report = await verify_chain(pool)
    assert report.first_bad is not None
    # The row after the gap is the first that no longer links.
    assert (report.first_bad.row_id, report.first_bad.problem) == (ids[3], "missing")
    code, out = await _cli_verify(database_url)
    assert code == 1 and f"first bad row id: {ids[3]}" in out


async def test_reordered_rows_are_named(pool: Pool, clean: None) -> None:
    ids = await _write_on_one_connection(pool, _events(6))
    # Swap the content of two rows (what happened first now looks like it happened later).
    await _as_attacker(
        pool,
        """UPDATE audit_log a SET actor_id = b.actor_id, details = b.details, at = b.at
           FROM audit_log b WHERE (a.id, b.id) IN (($1, $2), ($2, $1))""",
        ids[1],
        ids[4],
    )
    report = await verify_chain(pool)
    assert report.first_bad is not None and (report.first_bad.row_id, report.first_bad.problem) == (ids[1], "altered")


async def test_moved_rows_are_named(pool: Pool, clean: None) -> None:
    """Swapping two rows' positions is caught by the links."""
    ids = await _write_on_one_connection(pool, _events(3, action="auth.logout"))
    first = await pool.fetchval("SELECT seq FROM audit_log WHERE id = $1", ids[0])
    second = await pool.fetchval("SELECT seq FROM audit_log WHERE id = $1", ids[1])
    await _as_attacker(pool, "UPDATE audit_log SET seq = -seq WHERE id = ANY($1::bigint[])", ids[:2])
    await _as_attacker(
        pool,
        "UPDATE audit_log SET seq = CASE WHEN id = $1 THEN $3::bigint ELSE $4::bigint END WHERE id IN ($1, $2)",
        ids[0],
        ids[1],
        second,
        first,
    )
    breaks = {b.stream: b for b in (await verify_chain(pool)).breaks}
    stream = await pool.fetchval("SELECT stream FROM audit_log WHERE id = $1", ids[0])
    # The later row now sits first: it no longer links to its predecessor.
    assert (breaks[stream].row_id, breaks[stream].problem) == (ids[1], "missing")


async def test_removing_the_newest_rows_is_detected(pool: Pool, clean: None) -> None:
    ids = await _write_on_one_connection(pool, _events(4))
    await _as_attacker(pool, "DELETE FROM audit_log WHERE id = ANY($1::bigint[])", ids[2:])
    report = await verify_chain(pool)
    assert report.breaks and report.breaks[0].problem == "truncated" and report.breaks[0].row_id == ids[1]


async def test_since_checks_only_the_window(pool: Pool, clean: None, database_url: str) -> None:
    old = datetime.now(UTC) - timedelta(days=10)
    # The fifth row is stamped before the window but chained inside it (a batched event
    # written late): it is verified with its neighbours, not mistaken for a gap.
    ids = await _write_on_one_connection(pool, [*_events(3, at=old), *_events(1), *_events(1, at=old), *_events(1)])
    await _as_attacker(pool, "UPDATE audit_log SET outcome = 'denied' WHERE id = $1", ids[0])
    since = datetime.now(UTC) - timedelta(days=1)
    assert (await verify_chain(pool, since=since)).ok
    assert not (await verify_chain(pool)).ok
    code, _ = await _cli_verify(database_url, "--since", since.isoformat())
    assert code == 0
    await _as_attacker(pool, "UPDATE audit_log SET outcome = 'denied' WHERE id = $1", ids[4])
    report = await verify_chain(pool, since=since)
    assert report.first_bad is not None and report.first_bad.row_id == ids[4]


async def test_concurrent_writers_never_fork_a_chain(pool: Pool, clean: None) -> None:
    batcher = AuditBatcher(pool, interval_s=0.005, max_batch=50)
    batcher.start()
    try:

        async def one(i: int) -> None:
            batcher.add(AuditEvent(action="department.read", outcome="success", subject_id=f"s{i}"))
            async with pool.acquire() as conn, conn.transaction():
                await write_audit(conn, _events(2))

        await asyncio.gather(*(one(i) for i in range(200)))
    finally:
        await batcher.stop()
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 600
    report = await verify_chain(pool)
    assert report.ok and report.rows == 600, report.breaks


async def test_retention_removes_old_rows_and_the_chain_still_verifies(pool: Pool, clean: None) -> None:
    now = datetime.now(UTC)
    async with pool.acquire() as first, pool.acquire() as second:  # two backends: two streams
        old = await _write(first, _events(4, at=now - timedelta(days=200)))
        young = await _write(first, _events(2, at=now - timedelta(days=170)))
        # Older than the window but after a younger row in its stream: kept (the chain is
        # pruned from its start only; keeping a row longer is always allowed).
        late_old = await _write(first, _events(1, at=now - timedelta(days=400)))
        other_old = await _write(second, _events(2, at=now - timedelta(days=300)))
    retention = AuditRetention(pool, AuditSettings(retention_days=180), batch=3)  # several batches
    assert await retention.run_once() == 6
    remaining = {r["id"] for r in await pool.fetch("SELECT id FROM audit_log WHERE action = 'auth.login'")}
    assert remaining == set(young + late_old)
    assert not remaining & set(old + other_old)
    report = await verify_chain(pool)
    assert report.ok, report.breaks
    anchors = sorted(r["anchor_seq"] for r in await pool.fetch("SELECT anchor_seq FROM audit_chain_heads"))
    assert anchors[-2:] == [2, 4]
    # The retention job itself is audited; a second run removes nothing and still verifies.
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'audit.retention'") == 1
    assert await retention.run_once() == 0
    assert (await verify_chain(pool)).ok


async def test_retention_removes_quarantined_rows_older_than_the_audit_retention(
    settings: Settings, pool: Pool, clean: None, capsys: pytest.CaptureFixture[str]
) -> None:
    batcher = AuditBatcher(pool, interval_s=60)
    for name in ("old", "young", "new"):  # jsonb refuses \u0000: each row is quarantined
        batcher.add(
            AuditEvent(action="codes.ride_log.upload", outcome="success", details={"validator_id": f"{name}\x00"})
        )
    assert await batcher.flush() is True
    assert batcher.quarantined == 3
    ids = [r["id"] for r in await pool.fetch("SELECT id FROM write_quarantine ORDER BY id")]
    await pool.execute("UPDATE write_quarantine SET quarantined_at = now() - interval '200 days' WHERE id = $1", ids[0])
    await pool.execute("UPDATE write_quarantine SET quarantined_at = now() - interval '170 days' WHERE id = $1", ids[1])

    # `onecity audit retention`, as cron runs it.
    cron = msgspec.structs.replace(settings, audit=AuditSettings(retention_days=180))
    assert await asyncio.to_thread(onecity, ["audit", "retention"], settings=cron) == 0

    assert [r["id"] for r in await pool.fetch("SELECT id FROM write_quarantine ORDER BY id")] == ids[1:]
    details = await pool.fetchval("SELECT details FROM audit_log WHERE action = 'audit.retention'")
    assert details["quarantine_removed"] == 1
    assert "removed 0 audit rows" in capsys.readouterr().out
    # A longer retention keeps the 170-day-old row; nothing is removed twice.
    assert await AuditRetention(pool, AuditSettings(retention_days=365)).run_once() == 0
    assert await pool.fetchval("SELECT count(*) FROM write_quarantine") == 2


async def test_retention_is_one_process_at_a_time(pool: Pool, clean: None) -> None:
    await _write_on_one_connection(pool, _events(2, at=datetime.now(UTC) - timedelta(days=365)))
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", RETENTION_LOCK_ID)
        assert await AuditRetention(pool, AuditSettings()).run_once() is None
    assert await AuditRetention(pool, AuditSettings(retention_days=180)).run_once() == 2


async def test_a_delete_outside_the_retention_job_is_refused(pool: Pool, clean: None) -> None:
    now = datetime.now(UTC)
    ids = await _write_on_one_connection(pool, [*_events(1, at=now - timedelta(days=400)), *_events(1)])
    for row_id in ids:  # an old row not yet anchored, and a young one
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await pool.execute("DELETE FROM audit_log WHERE id = $1", row_id)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await pool.execute("UPDATE audit_log SET outcome = 'failure'")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await pool.execute("TRUNCATE audit_log")
    # Even anchoring by hand cannot remove a row younger than the legal 180 days.
    await pool.execute("UPDATE audit_chain_heads SET anchor_seq = seq")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await pool.execute("DELETE FROM audit_log WHERE id = $1", ids[1])
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 2


async def _write_then_fail(conn: Connection, events: list[AuditEvent]) -> None:
    async with conn.transaction():  # a transaction, or a savepoint inside one
        await write_audit(conn, events)
        raise RuntimeError("the change failed")


async def test_rolled_back_rows_give_their_place_back(pool: Pool, clean: None) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            await _write_then_fail(conn, _events(3))
        async with conn.transaction():
            await write_audit(conn, _events(1, action="kept.1"))
            with pytest.raises(RuntimeError):
                await _write_then_fail(conn, _events(2, action="dropped"))
            await write_audit(conn, _events(1, action="kept.2"))
        await write_audit(conn, _events(1, action="kept.3"))
        rows = await conn.fetch("SELECT action, seq FROM audit_log WHERE stream = pg_backend_pid() ORDER BY seq")
    assert [(r["action"], r["seq"]) for r in rows] == [("kept.1", 1), ("kept.2", 2), ("kept.3", 3)]
    assert (await verify_chain(pool)).ok
