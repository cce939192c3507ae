"""The asyncpg pool: how OneCity opens, configures and closes its PostgreSQL connections."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

__all__ = ["Connection", "Pool", "create_pool"]

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
#: A connection as handed out by the pool or opened directly.
Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"

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
    session state on pooled connections: no ``SET``, no ``LISTEN``, and advisory locks are
    transaction-scoped, except the migrator's, which it releases itself.
    """


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10, command_timeout: float = 10.0) -> Pool:
    """Open a pool whose connections speak jsonb through msgspec.

    Args:
        dsn: libpq-style URL (``postgresql://user@host:5432/db`` or a socket ``?host=/dir``).
        min_size: Connections kept open.
        max_size: Upper bound; size it to PostgreSQL's ``max_connections`` / number of workers.
        command_timeout: Seconds before a statement is abandoned, so a stuck database turns
            into a 503 instead of a pile of waiting requests.
    """
    pool = await asyncpg.create_pool(
        dsn,
        reset=_keep_session,
        min_size=min_size,
        max_size=max_size,
        command_timeout=command_timeout,
        init=_init_connection,
        # A dead server must surface quickly as an error, not as a hang.
        timeout=5.0,
    )
    assert pool is not None
    return pool
