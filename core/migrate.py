"""Numbered plain-SQL migrations, applied once each, under a transaction-scoped advisory lock.

A dozen lines of SQL bookkeeping did not justify a migration framework (asyncpg-trek, the
one maintained option for asyncpg, adds a CLI and a layout of its own); this runner does
exactly what OneCity needs: files named ``NNNN_description.sql`` in order, each in its own
transaction, recorded in ``schema_migrations``, under a transaction-scoped
``pg_advisory_xact_lock`` so runs started together never migrate at once and no lock can
outlive its connection.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import asyncpg

from core.db import Connection
from core.errors import OperatorError

__all__ = ["MIGRATIONS_DIR", "MigrationError", "apply_migrations", "pending_migrations"]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# An arbitrary constant shared by every OneCity process: the advisory lock's identity.
_LOCK_ID = 0x0C17_0001


class MigrationError(OperatorError, RuntimeError):
    """A migration file is misnamed, changed after being applied, or failed."""


def _files(directory: Path) -> list[Path]:
    files = sorted(p for p in directory.iterdir() if p.suffix == ".sql")
    for path in files:
        if not _NAME.fullmatch(path.name):
            raise MigrationError(f"migration file name must look like 0001_name.sql: {path.name}")
    return files


async def _ensure_table(conn: Connection) -> None:
    await conn.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            name text PRIMARY KEY,
            checksum text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


async def pending_migrations(conn: Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Names of the migration files not yet applied.

    Read-only (it creates nothing), so every server starting at once may call it, through a
    transaction pooler too.
    """
    if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
        return [p.name for p in _files(directory)]
    applied = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
    return [p.name for p in _files(directory) if p.name not in applied]


async def apply_migrations(conn: Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every pending migration in order; return the names applied.

    Already-applied files are skipped; one whose content changed since is an error, because
    a changed migration means two databases can no longer be assumed to match.

    The whole run is one transaction that first takes a transaction-scoped advisory lock and
    only then reads what is applied. Several runs at once (a deploy starting ``onecity
    migrate`` on every host) therefore serialise: one applies everything pending, the others
    wait on the lock, then find nothing to do. The lock ends with the transaction, so a run
    that crashes or loses its connection cannot leave it held (a session lock,
    ``pg_advisory_lock``, outlives a failed unlock, and behind a transaction pooler it stays
    on whichever server connection took it). Each file runs in its own savepoint: a failing
    file is undone entirely, the files before it stay applied (committed with the run).
    """
    files = _files(directory)
    done: list[str] = []
    failure: MigrationError | None = None
    async with conn.transaction():
        # No statement timeout: an index build on a big table may take long, and a timeout
        # half-way would only roll it back to be retried. SET LOCAL, so it ends with the
        # transaction (no session state, should this run through a pooler after all).
        await conn.execute("SET LOCAL statement_timeout = 0")
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
        await _ensure_table(conn)
        applied = {r["name"]: r["checksum"] for r in await conn.fetch("SELECT name, checksum FROM schema_migrations")}
        for path in files:
            sql = path.read_text(encoding="utf-8")
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if path.name in applied:
                if applied[path.name] != checksum:
                    raise MigrationError(f"{path.name} was changed after it was applied; add a new migration instead")
                continue
            try:
                # A savepoint per file, so the error names the file.
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)", path.name, checksum
                    )
            except asyncpg.PostgresError as exc:
                failure = MigrationError(f"{path.name} failed: {exc.__class__.__name__}: {exc}")
                failure.__cause__ = exc
                break
            done.append(path.name)
    if failure is not None:
        raise failure
    return done
