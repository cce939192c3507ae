"""The asyncpg pool: how OneCity opens, configures and closes its PostgreSQL connections."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from core.errors import InvalidValue

if TYPE_CHECKING:
    from core.audit import AuditEvent

__all__ = [
    "DEFAULT_STATEMENT_CACHE_SIZE",
    "WARMED_ARRAY_TYPES",
    "Connection",
    "Pool",
    "Repository",
    "connect",
    "create_pool",
    "row_as",
    "rows_as",
    "set_statement_cache_size",
]

_T = TypeVar("_T")

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


#: The array types OneCity's statements send or read that asyncpg has no built-in codec for
#: (``text[]`` it has): the scan log's batched insert sends float8, char(1), bigint and boolean
#: arrays, grant revocation and the hall's history uuid arrays, and pgqueuer's enqueue statement
#: (run on this pool by hall.jobs) int, bytea, interval and jsonb arrays.
#: ``tests/integration/core/test_db.py`` finds every array cast in the code and fails if
#: one would still be learnt outside this warm-up.
WARMED_ARRAY_TYPES: Final = ("float8", "char(1)", "bigint", "boolean", "uuid", "int", "bytea", "interval", "jsonb")
_WARM_UP = "SELECT " + ", ".join(f"NULL::{name}[]" for name in WARMED_ARRAY_TYPES)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out through msgspec: one JSON library everywhere, and faster than json.
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda value: b"\x01" + _json_encode(value),
        decoder=lambda data: _json_decode(data[1:]),
        schema="pg_catalog",
        format="binary",
    )
    # asyncpg learns an array type with a recursive catalog query, once per connection, the
    # first time a statement uses it. It turns PostgreSQL's JIT off around that query with
    # two session settings; behind a transaction pooler each lands on whichever server
    # connection is free, so the query is JIT-compiled: 0.8 s of database CPU (EXPLAIN
    # ANALYZE, PostgreSQL 15), and 2-3.5 s under load, for every connection a pool opens.
    # At a burst's start every worker's pool grows at once and the requests waiting on those
    # connections took p99 to 5-9 s (bench/RESULTS.md, peak drill behind PgBouncer). Inside
    # one transaction all three statements reach the same server connection.
    async with conn.transaction():
        await conn.fetchrow(_WARM_UP)


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


def row_as(type_: type[_T], record: asyncpg.Record | None) -> _T | None:
    """``record`` as a ``type_`` Struct (its columns named like the fields), or ``None``.

    Raises:
        msgspec.ValidationError: the query and the Struct disagree (a bug, never input).
    """
    if record is None:
        return None
    return msgspec.convert(dict(record), type_)


def rows_as(type_: type[_T], records: Iterable[asyncpg.Record]) -> list[_T]:
    """Every record as a ``type_`` Struct (see :func:`row_as`)."""
    return [msgspec.convert(dict(record), type_) for record in records]


class Repository:
    """Base of every domain repository: it holds the pool and hands out transactions.

    A repository owns all of its domain's SQL and returns msgspec Structs (:func:`row_as`,
    :func:`rows_as`), never ``asyncpg.Record``; a service never touches the pool, asyncpg or
    a column name. A service that needs several statements to commit together asks for
    ``async with repository.transaction() as tx:`` and passes ``tx`` to the repository's
    methods (each takes the connection it runs on as its first argument).

    Driver errors that carry a domain meaning are translated here or in the repository's
    method: a data exception (class 22: bad encoding, a date or number out of range) is
    :class:`core.errors.InvalidValue` (400, the transaction rolled back); a unique violation
    is the domain's own ``Conflict``, raised by the method that knows what was duplicated.
    Outages (connection lost, pool exhausted, a pooler's errors) are not translated here:
    they surface from Redis and the pool too, so the HTTP boundary (``bff.problems``) maps
    them all to 503 with ``Retry-After`` in one place.

    Args:
        pool: The shared pool.
    """

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """One connection inside one transaction: committed on exit, rolled back on error."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                yield conn
        except asyncpg.DataError as exc:
            # The message may quote the value (PII), so it is not carried along.
            raise InvalidValue(f"A value cannot be stored ({exc.__class__.__name__}).") from None

    async def audit(self, events: Iterable[AuditEvent]) -> None:
        """Write audit ``events`` on their own, outside any transaction (a refusal, a read, a
        disclosure that changed nothing else); inside one, pass ``tx`` to ``write_audit``."""
        # Imported here: core.audit builds on this module.
        from core.audit import write_audit

        async with self.connection() as conn:
            await write_audit(conn, events)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """One connection without a transaction (each statement commits on its own)."""
        try:
            async with self.pool.acquire() as conn:
                yield conn
        except asyncpg.DataError as exc:
            raise InvalidValue(f"A value cannot be stored ({exc.__class__.__name__}).") from None
