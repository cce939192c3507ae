"""What one OneCity process holds open: pools, clients, keys; opened and closed together.

:func:`open_resources` is the lifespan's first step and fails with a clear
:class:`StartupError` (never a stack trace a minute later) when the master key is missing
or wrong, the database is unreachable, or migrations are pending.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import asyncpg
import httpx

from bff.settings import Settings, SettingsError
from core.audit import AuditBatcher
from core.crypto import MasterKeyError, Vault
from core.db import Pool, create_pool
from core.errors import OperatorError
from core.keys import KeyManager, KeyStore
from core.migrate import pending_migrations
from core.redis import Redis, create_redis
from services.departments import Departments, build_departments
from services.fanout import DepartmentPools, ResilientDepartments, build_resilient_departments
from services.tls import department_tls_context
from services.tokens import ServiceTokenMinter

__all__ = ["Resources", "StartupError", "close_resources", "open_resources"]


class StartupError(OperatorError, RuntimeError):
    """OneCity cannot start; the message says what to fix."""


@dataclass
class Resources:
    """Everything shared by the requests of one process."""

    settings: Settings
    vault: Vault
    pool: Pool
    redis: Redis
    http: httpx.AsyncClient
    keys: KeyManager
    departments: Departments
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # The batched audit writer (department reads, scans) and the resilient department layer;
    # set by open_resources, optional only so the dataclass keeps its field order.
    audit: AuditBatcher | None = None
    fanout: ResilientDepartments | None = None
    # The replica pool for heavy reads (ONECITY_DATABASE_READ_URL); None: ``pool`` serves them.
    read_pool: Pool | None = None


def _department_http_client() -> httpx.AsyncClient:
    # One pool for every department call: keep-alive connections, and a hard cap so a hung
    # department cannot hold every socket of the process.
    return httpx.AsyncClient(
        timeout=httpx.Timeout(5.0, connect=1.0),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=100, keepalive_expiry=30.0),
        follow_redirects=False,
        verify=department_tls_context(),
    )


async def open_resources(settings: Settings, redis: Redis | None = None) -> Resources:
    """Open the pool, Redis client, key ring and department clients.

    Raises:
        StartupError: with an operator-readable reason.
    """
    try:
        vault = Vault(settings.require_master_key())
    except (SettingsError, MasterKeyError) as exc:
        raise StartupError(str(exc)) from None
    if not settings.database.url:
        raise StartupError("ONECITY_DATABASE_URL is not set (or run `onecity dev` for the embedded default)")
    if not settings.redis.url:
        raise StartupError("ONECITY_REDIS_URL is not set (or run `onecity dev` for the embedded default)")
    try:
        pool = await create_pool(
            settings.database.url,
            min_size=settings.database.pool_min,
            max_size=settings.database.pool_max,
            command_timeout=settings.database.command_timeout_s,
            statement_cache_size=settings.database.statement_cache_size,
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StartupError(f"cannot connect to PostgreSQL: {exc.__class__.__name__}") from None
    try:
        async with pool.acquire() as conn:
            pending = await pending_migrations(conn)
        if pending:
            raise StartupError(f"{len(pending)} migration(s) pending ({pending[0]}, ...): run `onecity migrate`")
        keys = await KeyManager.open(KeyStore(pool, vault))
    except MasterKeyError as exc:
        await pool.close()
        raise StartupError(str(exc)) from None
    except BaseException:
        await pool.close()
        raise
    read_pool: Pool | None = None
    if settings.database.read_url:
        try:
            read_pool = await create_pool(
                settings.database.read_url,
                min_size=settings.database.pool_min,
                max_size=settings.database.pool_max,
                command_timeout=settings.database.command_timeout_s,
                statement_cache_size=settings.database.statement_cache_size,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await pool.close()
            raise StartupError(f"cannot connect to the read replica: {exc.__class__.__name__}") from None
    if redis is None:
        redis = create_redis(
            settings.redis.url, max_connections=settings.redis.max_connections, cluster=settings.redis.cluster
        )
    http = _department_http_client()
    minter = ServiceTokenMinter(lambda: keys.signer("service"))
    departments = build_departments(settings.departments, http, minter)
    resources = Resources(
        settings=settings,
        vault=vault,
        pool=pool,
        redis=redis,
        http=http,
        keys=keys,
        departments=departments,
        read_pool=read_pool,
    )
    resources.tasks.append(asyncio.create_task(keys.refresh_forever(), name="key-refresh"))
    resources.audit = AuditBatcher(pool)
    resources.audit.start()
    resources.fanout = build_resilient_departments(
        departments,
        redis=redis,
        hasher=vault,
        settings=settings.fanout,
        audit=resources.audit,
        pools=DepartmentPools(settings.departments, minter, settings.fanout.pool),
    )
    return resources


async def close_resources(resources: Resources) -> None:
    """Stop background tasks and close every client, the pool last."""
    for task in resources.tasks:
        task.cancel()
    for task in resources.tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if resources.fanout is not None:
        await resources.fanout.aclose()
    await resources.http.aclose()
    if resources.audit is not None:
        await resources.audit.stop()  # writes what is still queued, so before the pool closes
    await resources.redis.aclose()
    if resources.read_pool is not None:
        await resources.read_pool.close()
    await resources.pool.close()
