"""Partitioned logs: conversion with rows, partitions made ahead, append-only per partition,
retention by dropping whole partitions with the audit chain still verifiable."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from core.audit import AuditEvent, write_audit
from core.audit_chain import AuditRetention, AuditSettings, verify_chain
from core.db import Pool, create_pool
from core.migrate import MIGRATIONS_DIR, apply_migrations
from core.partitions import drop_before, maintain, partitions
from tests.support.backends import DatabaseFactory

_EVENTS = [AuditEvent(action="auth.login", outcome="success", subject_id=f"s{i}") for i in range(5)]


@pytest.fixture
async def own_pool(database_factory: DatabaseFactory) -> AsyncIterator[Pool]:
    """A database of its own: these tests drop partitions."""
    url = await database_factory.create()
    pool = await create_pool(url, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        await apply_migrations(conn)
    try:
        yield pool
    finally:
        await pool.close()


def _month_start(at: datetime) -> datetime:
    return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


async def test_migration_converts_existing_tables_with_their_rows(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    before = tmp_path / "before"
    before.mkdir()
    for file in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if file.name < "0070":
            shutil.copy(file, before / file.name)
    url = await database_factory.create()
    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, before)
            async with conn.transaction():
                await write_audit(conn, _EVENTS)
            old = datetime.now(UTC) - timedelta(days=40)
            await conn.execute(
                """INSERT INTO scan_log (scanned_at, partner_id, result, jti)
                   VALUES ($1, 'p', 'valid', 'a'), (now(), 'p', 'valid', 'b')""",
                old,
            )
            await conn.execute(
                """INSERT INTO venues (id, name, address, region_code, owner_type, owner_id)
                   VALUES ('venue000001', 'v', 'a', '110101', 'system', 'test')"""
            )
            await conn.execute("INSERT INTO checkins (venue_id, pseudonym) VALUES ('venue000001', 'x')")
            applied = await apply_migrations(conn)
            assert applied[0] == "0070_partitioned_logs.sql"  # (later migrations follow it)
            kinds = await conn.fetch(
                """SELECT relname, relkind::text AS relkind FROM pg_class
                   WHERE relname IN ('audit_log', 'scan_log', 'checkins')"""
            )
            assert {r["relname"]: r["relkind"] for r in kinds} == {"audit_log": "p", "scan_log": "p", "checkins": "p"}
            assert await conn.fetchval("SELECT count(*) FROM audit_log") == 5
            assert sorted(r["jti"] for r in await conn.fetch("SELECT jti FROM scan_log")) == ["a", "b"]
            # The 40-day-old scan has its own day, not the default partition.
            assert await conn.fetchval("SELECT count(*) FROM scan_log_default") == 0
            assert await conn.fetchval("SELECT count(*) FROM checkins") == 1
            # The chain carried over and goes on: new rows follow the copied ones.
            async with conn.transaction():
                await write_audit(conn, _EVENTS)
            new_id = await conn.fetchval(
                "INSERT INTO checkins (venue_id, pseudonym) VALUES ('venue000001', 'y') RETURNING id"
            )
            assert new_id == 2
        report = await verify_chain(pool)
        assert report.ok and report.rows == 10
        # The ledger's index (0045) exists on the partitioned scan_log.
        assert await pool.fetchval("SELECT to_regclass('scan_log_holder')") is not None
    finally:
        await pool.close()


async def test_partitions_are_made_ahead_idempotently(own_pool: Pool) -> None:
    names = {p.name for p in await partitions(own_pool)}
    today = datetime.now(UTC)
    assert f"audit_log_m{today:%Y%m}" in names and "audit_log_default" in names
    assert f"scan_log_d{today + timedelta(days=14):%Y%m%d}" in names
    assert f"checkins_d{today:%Y%m%d}" in names
    # Again, from two processes at once: nothing new, no error.
    assert await asyncio.gather(maintain(own_pool), maintain(own_pool)) == [[], []]
    # A missing future partition is made again.
    gone = f"scan_log_d{today + timedelta(days=3):%Y%m%d}"
    await own_pool.execute(f'DROP TABLE "{gone}"')
    assert await maintain(own_pool) == [gone]


async def test_a_row_for_a_period_without_partition_lands_in_default(own_pool: Pool) -> None:
    far = datetime.now(UTC) + timedelta(days=400)
    await own_pool.execute("INSERT INTO scan_log (scanned_at, partner_id, result) VALUES ($1, 'p', 'valid')", far)
    assert await own_pool.fetchval("SELECT count(*) FROM scan_log_default") == 1


async def test_update_and_delete_on_an_audit_partition_are_refused(own_pool: Pool) -> None:
    stray = AuditEvent(action="stray", outcome="success", at=datetime.now(UTC) + timedelta(days=400))
    async with own_pool.acquire() as conn, conn.transaction():
        await write_audit(conn, [*_EVENTS, stray])  # the stray one lands in the default partition
    part = f"audit_log_m{datetime.now(UTC):%Y%m}"
    assert await own_pool.fetchval(f'SELECT count(*) FROM "{part}"') == 5
    for sql in (
        f"UPDATE \"{part}\" SET action = 'forged'",
        f'DELETE FROM "{part}"',
        f'TRUNCATE "{part}"',
        "UPDATE audit_log_default SET action = 'forged'",
        'TRUNCATE "audit_log_default"',
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await own_pool.execute(sql)
    assert (await verify_chain(own_pool)).ok


async def test_audit_retention_drops_old_months_and_the_chain_still_verifies(own_pool: Pool) -> None:
    now = datetime.now(UTC)
    old_month = _month_start(now - timedelta(days=300))
    await own_pool.execute("SELECT onecity_partition_create('audit_log', $1)", old_month)
    async with own_pool.acquire() as conn, conn.transaction():
        await write_audit(
            conn, [AuditEvent(action="old", outcome="success", at=old_month + timedelta(days=i)) for i in range(3)]
        )
        await write_audit(conn, _EVENTS)
    part = f"audit_log_m{old_month:%Y%m}"
    removed = await AuditRetention(own_pool, AuditSettings(retention_days=180)).run_once()
    assert removed == 3
    assert await own_pool.fetchval("SELECT to_regclass($1)", part) is None  # dropped whole
    assert await own_pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'old'") == 0
    report = await verify_chain(own_pool)
    assert report.ok, report.breaks
    retention = await own_pool.fetchrow("SELECT details FROM audit_log WHERE action = 'audit.retention'")
    assert retention is not None


async def test_scan_and_checkin_retention_drop_whole_days(own_pool: Pool) -> None:
    now = datetime.now(UTC)
    day = (now - timedelta(days=40)).replace(hour=0, minute=0, second=0, microsecond=0)
    await own_pool.execute("SELECT onecity_partition_create('scan_log', $1)", day)
    await own_pool.executemany(
        "INSERT INTO scan_log (scanned_at, partner_id, result, jti) VALUES ($1, 'p', 'valid', $2)",
        [(day + timedelta(hours=1), "old-1"), (day + timedelta(hours=2), "old-2"), (now, "new")],
    )
    async with own_pool.acquire() as conn, conn.transaction():
        dropped, removed = await drop_before(conn, "scan_log", now - timedelta(days=30))
    assert dropped == [f"scan_log_d{day:%Y%m%d}"] and removed == 2
    assert [r["jti"] for r in await own_pool.fetch("SELECT jti FROM scan_log")] == ["new"]


async def test_partitions_cli_maintains_and_lists(
    database_factory: DatabaseFactory, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bff.cli import main as onecity

    url = await database_factory.create()
    monkeypatch.setenv("ONECITY_DATABASE_URL", url)
    monkeypatch.setenv("ONECITY_LOG_LEVEL", "WARNING")
    assert await asyncio.to_thread(onecity, ["migrate"]) == 0
    await (pool := await create_pool(url, min_size=1, max_size=1)).execute(
        f'DROP TABLE "checkins_d{datetime.now(UTC) + timedelta(days=2):%Y%m%d}"'
    )
    await pool.close()
    capsys.readouterr()
    assert await asyncio.to_thread(onecity, ["partitions", "maintain"]) == 0
    assert capsys.readouterr().out.startswith("created 1 partition(s): checkins_d")
    assert await asyncio.to_thread(onecity, ["partitions", "status"]) == 0
    listing = capsys.readouterr().out
    assert "scan_log_default" in listing and "rows=0" in listing
