"""The asyncpg pool: how OneCity opens, configures and closes its PostgreSQL connections."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

__all__ = ["DEFAULT_STATEMENT_CACHE_SIZE", "Connection", "Pool", "connect", "create_pool", "set_statement_cache_size"]

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
#: A connection as handed out by the pool or opened directly.
Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"

#: asyncpg's own default. Behind a transaction pooler (PgBouncer ``pool_mode=transaction``,
#: RDS Proxy) it must be ``0``: a named prepared statement lives on one server connection,
#: and the pooler hands the next transaction to another one ("prepared statement
#: __asyncpg_stmt_1__ does not exist"). With ``0`` asyncpg uses the unnamed statement,
#: which is parsed and executed inside one round trip, so any server connection will do.
DEFAULT_STATEMENT_CACHE_SIZE = 100
_statement_cache_size = DEFAULT_STATEMENT_CACHE_SIZE


def set_statement_cache_size(size: int) -> None:
    """Set the cache size for every pool or connection opened afterwards in this process.

    The CLI calls it once with ``ONECITY_DB_STATEMENT_CACHE_SIZE`` so that every command
    (including the domains' admin commands, which open their own small pools) works behind
    a transaction pooler without each one having to pass the setting along.
    """
    global _statement_cache_size
    if size < 0:
        raise ValueError("statement cache size must be >= 0")
    _statement_cache_size = size


def _cache_options(statement_cache_size: int | None) -> dict[str, int]:
    size = _statement_cache_size if statement_cache_size is None else statement_cache_size
    return {
        "statement_cache_size": size,
        # 0 = statements never expire by age; with the cache off there is nothing to expire.
        "max_cached_statement_lifetime": 0 if size == 0 else 300,
    }


_json_encode = msgspec.json.encode
_json_decode = msgspec.json.decode


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out through msgspec: one JSON library everywhere, and faster than json.
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda value: b"\x01" + _json_encode(value),
        decoder=lambda data: _json_decode(data[1:]),
        schema="pg_catalog",
        format="binary",
    )


async def _keep_session(conn: asyncpg.Connection[Any]) -> None:
    """Skip the server-side ``RESET ALL`` on every release (one round trip per query saved).

    asyncpg still rolls back any open transaction before this runs. OneCity leaves no other
    session state on pooled connections: no ``SET``, no ``LISTEN``, no session-level advisory
    lock (every one is ``pg_advisory_xact_lock``), no temporary table. That is also what a
    transaction pooler requires: between two transactions the server connection behind this
    client connection may change, so session state could not be relied on anyway.
    """


async def create_pool(
    dsn: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    command_timeout: float = 10.0,
    statement_cache_size: int | None = None,
) -> Pool:
    """Open a pool whose connections speak jsonb through msgspec.

    Args:
        dsn: libpq-style URL (``postgresql://user@host:5432/db`` or a socket ``?host=/dir``).
        min_size: Connections kept open.
        max_size: Upper bound; size it to PostgreSQL's ``max_connections`` / number of workers.
        command_timeout: Seconds before a statement is abandoned, so a stuck database turns
            into a 503 instead of a pile of waiting requests.
        statement_cache_size: asyncpg's prepared-statement cache per connection; ``None``:
            the process default (:func:`set_statement_cache_size`); ``0`` behind a
            transaction pooler.
    """
    options = _cache_options(statement_cache_size)
    pool = await asyncpg.create_pool(
        dsn,
        reset=_keep_session,
        min_size=min_size,
        max_size=max_size,
        command_timeout=command_timeout,
        init=_init_connection,
        # A dead server must surface quickly as an error, not as a hang.
        timeout=5.0,
        statement_cache_size=options["statement_cache_size"],
        max_cached_statement_lifetime=options["max_cached_statement_lifetime"],
    )
    assert pool is not None
    return pool


async def connect(
    dsn: str, *, statement_cache_size: int | None = None, server_settings: dict[str, str] | None = None
) -> asyncpg.Connection[asyncpg.Record]:
    """One connection outside any pool (the migrator), with jsonb through msgspec."""
    options = _cache_options(statement_cache_size)
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(
        dsn,
        timeout=5.0,
        server_settings=server_settings,
        statement_cache_size=options["statement_cache_size"],
        max_cached_statement_lifetime=options["max_cached_statement_lifetime"],
    )
    await _init_connection(conn)
    return conn
