"""One-shot storage tasks run by the CLI: migrate, ensure keys, rotate keys, seed."""

from __future__ import annotations

from datetime import timedelta

from bff.settings import Settings
from core.crypto import Vault
from core.db import connect, create_pool
from core.keys import KeyStore
from core.migrate import apply_migrations
from core.partitions import maintain

__all__ = ["migrate", "prepare", "rotate_key"]


async def migrate(database_url: str, *, statement_cache_size: int | None = None) -> list[str]:
    """Apply pending migrations; return the names applied.

    Args:
        database_url: A direct (session) connection, ``ONECITY_MIGRATE_DATABASE_URL``: a
            migration may run for minutes and must not sit in a transaction pooler's queue.
        statement_cache_size: As for the pools (``0`` is harmless on a direct connection).
    """
    # No client-side command timeout either (connect() sets none); the server-side one is
    # lifted per migration transaction by apply_migrations.
    conn = await connect(database_url, statement_cache_size=statement_cache_size)
    try:
        applied = await apply_migrations(conn)
        # A fresh install (and every deploy) has the partitions of the current periods.
        async with conn.transaction():
            await maintain(conn)
        return applied
    finally:
        await conn.close()


async def prepare(settings: Settings) -> list[str]:
    """Migrate and make sure every key purpose has a signing key (what `onecity dev` runs).

    Returns:
        The kids of keys created now (empty when the store was ready).
    """
    assert settings.database.url
    await migrate(settings.database.migration_url or settings.database.url)
    pool = await create_pool(settings.database.url, min_size=1, max_size=2)
    try:
        store = KeyStore(pool, Vault(settings.require_master_key()))
        created = await store.ensure_active()
        await store.load()  # proves the master key decrypts what is stored
        return created
    finally:
        await pool.close()


async def rotate_key(settings: Settings, purpose: str, *, activate_in: timedelta) -> str:
    """Add a new signing key for ``purpose``; the old one keeps verifying."""
    assert settings.database.url
    pool = await create_pool(settings.database.url, min_size=1, max_size=1)
    try:
        store = KeyStore(pool, Vault(settings.require_master_key()))
        await store.load()
        return await store.rotate(purpose, activate_in=activate_in)
    finally:
        await pool.close()
