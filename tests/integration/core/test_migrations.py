from pathlib import Path

import asyncpg
import pytest

from core.migrate import MigrationError, apply_migrations, pending_migrations
from tests.support.backends import DatabaseFactory

# Advisory locks in this test's own database only (other tests share the server).
ADVISORY_LOCKS_HERE = """SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"""


async def test_apply_on_empty_database_then_idempotent(database_factory: DatabaseFactory) -> None:
    conn = await asyncpg.connect(await database_factory.create())
    try:
        assert await pending_migrations(conn)
        applied = await apply_migrations(conn)
        assert applied and applied == sorted(applied)
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(applied)
        assert await apply_migrations(conn) == []
        assert await pending_migrations(conn) == []
        assert await conn.fetchval("SELECT to_regclass('signing_keys') IS NOT NULL")
    finally:
        await conn.close()


async def test_failed_migration_leaves_nothing_half_applied(database_factory: DatabaseFactory, tmp_path: Path) -> None:
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE good (id int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (id int); SELECT no_such_function();")
    conn = await asyncpg.connect(await database_factory.create())
    try:
        with pytest.raises(MigrationError, match=r"0002_bad\.sql"):
            await apply_migrations(conn, tmp_path)
        assert await conn.fetchval("SELECT to_regclass('good') IS NOT NULL")
        assert await conn.fetchval("SELECT to_regclass('half') IS NULL")
        assert await pending_migrations(conn, tmp_path) == ["0002_bad.sql"]
    finally:
        await conn.close()


async def test_changed_applied_migration_is_refused(database_factory: DatabaseFactory, tmp_path: Path) -> None:
    migration = tmp_path / "0001_x.sql"
    migration.write_text("CREATE TABLE x (id int);")
    conn = await asyncpg.connect(await database_factory.create())
    try:
        await apply_migrations(conn, tmp_path)
        migration.write_text("CREATE TABLE x (id bigint);")
        with pytest.raises(MigrationError, match="changed"):
            await apply_migrations(conn, tmp_path)
    finally:
        await conn.close()


async def test_two_concurrent_migrators_apply_each_file_once(database_factory: DatabaseFactory) -> None:
    import asyncio

    url = await database_factory.create()
    first, second = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        results = await asyncio.gather(apply_migrations(first), apply_migrations(second))
        assert sorted(results[0] + results[1]) == sorted(set(results[0] + results[1]))
        assert await first.fetchval("SELECT count(*) FROM schema_migrations") == len(results[0] + results[1])
    finally:
        await first.close()
        await second.close()


async def test_pending_check_is_read_only(database_factory: DatabaseFactory) -> None:
    # Every server runs it at start-up, possibly through a transaction pooler: it must not
    # create the bookkeeping table (concurrent CREATE TABLE IF NOT EXISTS can collide).
    conn = await asyncpg.connect(await database_factory.create())
    try:
        assert await pending_migrations(conn)
        assert await conn.fetchval("SELECT to_regclass('schema_migrations')") is None
    finally:
        await conn.close()


async def test_three_concurrent_migrate_commands_one_applies_and_no_lock_is_left(
    database_factory: DatabaseFactory,
) -> None:
    import asyncio

    from bff.storage import migrate

    url = await database_factory.create()
    results = await asyncio.gather(*(migrate(url, statement_cache_size=0) for _ in range(3)))
    applied = [name for result in results for name in result]
    # One run applied everything; the others waited for it and found nothing to do.
    assert sorted(len(result) for result in results) == [0, 0, len(applied)]
    assert sorted(applied) == sorted(set(applied))
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(applied)
        assert await pending_migrations(conn) == []
        # Transaction-scoped: nothing can stay locked once the runs are over.
        assert await conn.fetchval(ADVISORY_LOCKS_HERE) == 0
    finally:
        await conn.close()


async def test_failed_migration_leaves_no_advisory_lock(database_factory: DatabaseFactory, tmp_path: Path) -> None:
    (tmp_path / "0001_bad.sql").write_text("CREATE TABLE broken (;")
    url = await database_factory.create()
    conn = await asyncpg.connect(url)
    try:
        with pytest.raises(MigrationError, match=r"0001_bad\.sql"):
            await apply_migrations(conn, tmp_path)
        # The same connection is still open: a session-level lock would still be held here.
        held = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        )
        assert held == 0
    finally:
        await conn.close()
