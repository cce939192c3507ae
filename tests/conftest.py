"""Fixtures shared by the whole suite: real PostgreSQL, real Redis, real simulators.

Scopes: the server, the test database (migrated once), the pool, the signing keys and the
seven department simulators live for the whole session; every test that uses ``client``
starts from empty tables (keys and migrations kept) and an empty Redis database.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from httpx import AsyncClient as AsyncTestClient

from bff.app import create_app
from bff.embedded import EmbeddedServers, start_embedded
from bff.settings import Settings, load_settings
from core.crypto import Vault
from core.db import Pool, create_pool
from core.keys import KeyStore
from core.migrate import apply_migrations
from core.redis import Redis, create_redis
from services.departments import DepartmentEndpoints, Departments, build_departments
from services.departments.sms import SmsGateway
from services.simulators import SIMULATORS, RunningServer, start_in_process
from services.tokens import ServiceTokenMinter
from tests.support.asgi import running_app
from tests.support.backends import DatabaseFactory
from tests.support.jwks import KeyStoreJwks

MASTER_KEY = secrets.token_bytes(32)
_KEPT_TABLES = ("schema_migrations", "signing_keys", "hall_matters", "hall_bundle_templates")  # migration-seeded data


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServers]:
    """Embedded servers for whatever the environment does not provide."""
    need_pg = not os.environ.get("ONECITY_TEST_DATABASE_URL")
    need_redis = not os.environ.get("ONECITY_TEST_REDIS_URL")
    servers = start_embedded(Path(tmp_path_factory.mktemp("embedded")), postgres=need_pg, redis=need_redis)
    yield servers
    servers.stop()


@pytest.fixture(scope="session")
def redis_url(embedded: EmbeddedServers) -> str:
    url = os.environ.get("ONECITY_TEST_REDIS_URL") or embedded.redis_url
    assert url
    return url


@pytest.fixture(scope="session")
async def database_factory(embedded: EmbeddedServers) -> AsyncIterator[DatabaseFactory]:
    admin = os.environ.get("ONECITY_TEST_DATABASE_URL") or embedded.database_url
    assert admin
    factory = DatabaseFactory(admin)
    yield factory
    await factory.drop_all()


@pytest.fixture(scope="session")
async def database_url(database_factory: DatabaseFactory) -> str:
    """The session's database, migrated."""
    url = await database_factory.create()
    pool = await create_pool(url, min_size=1, max_size=1)
    async with pool.acquire() as conn:
        await apply_migrations(conn)
    await pool.close()
    return url


@pytest.fixture(scope="session")
def vault() -> Vault:
    return Vault(MASTER_KEY)


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=5)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def key_store(pool: Pool, vault: Vault) -> KeyStore:
    store = KeyStore(pool, vault)
    await store.ensure_active()
    return store


@pytest.fixture(scope="session")
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = create_redis(redis_url)
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture(scope="session")
async def simulators(key_store: KeyStore) -> AsyncIterator[dict[str, RunningServer]]:
    """Every department simulator on its own loopback port, trusting the test key store."""
    running = {}
    for name, factory in SIMULATORS.items():
        running[name] = await start_in_process(factory(jwks=KeyStoreJwks(key_store), dev_mode=True))
    yield running
    for server in running.values():
        await server.stop()


@pytest.fixture(scope="session")
def department_endpoints(simulators: dict[str, RunningServer]) -> DepartmentEndpoints:
    return DepartmentEndpoints(**{name: server.base_url for name, server in simulators.items()})


@pytest.fixture(scope="session")
async def departments(department_endpoints: DepartmentEndpoints, key_store: KeyStore) -> AsyncIterator[Departments]:
    """Department clients as the BFF builds them (for reading the SMS outbox and the like)."""
    ring = await key_store.load()
    async with httpx.AsyncClient(timeout=5.0) as http:
        yield build_departments(department_endpoints, http, ServiceTokenMinter(lambda: ring.signer("service")))


@pytest.fixture(scope="session")
def sms(departments: Departments) -> SmsGateway:
    return departments.sms


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str, department_endpoints: DepartmentEndpoints) -> Settings:
    """Settings as the environment of a test deployment would give them."""
    base = load_settings(
        {
            "ONECITY_ENV": "test",
            "ONECITY_DATABASE_URL": database_url,
            "ONECITY_REDIS_URL": redis_url,
            "ONECITY_MASTER_KEY": base64.urlsafe_b64encode(MASTER_KEY).decode(),
            "ONECITY_LOG_LEVEL": "WARNING",
            # The shared test machine's event loop lags under contention and bursts of hundreds
            # of requests are common; automatic shedding and the per-worker budgets (bff.peak)
            # must not answer 503 in tests about other things. Its own tests set them.
            "ONECITY_PEAK_LOOP_LAG_MS": "60000",
            # Hundreds of apps start in this one process: frozen objects would never be freed.
            "ONECITY_GC_FREEZE": "false",
            "ONECITY_PEAK_TIER0_LATENCY_MS": "60000",
            "ONECITY_PEAK_MAX_IN_FLIGHT": "4096",
            "ONECITY_PEAK_CHANNEL_MAX_IN_FLIGHT": "4096",
        }
    )
    return msgspec.structs.replace(base, departments=department_endpoints)


async def reset_state(pool: Pool, redis: Redis) -> None:
    """Empty every table but migrations and keys, and the Redis test database.

    Only the tables that hold rows are truncated (a TRUNCATE makes new files for every table
    and partition it names, about a second for all of them on every test), and every sequence
    starts again, as ``RESTART IDENTITY`` would.
    """
    async with pool.acquire() as conn:
        tables = await conn.fetch(
            """SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
                 AND NOT c.relname = ANY($1::text[])""",
            list(_KEPT_TABLES),
        )
        if tables:
            probes = " UNION ALL ".join(
                f"""SELECT '{r["name"]}' AS name WHERE EXISTS (SELECT 1 FROM "{r["name"]}")""" for r in tables
            )
            filled = [r["name"] for r in await conn.fetch(probes)]
            async with conn.transaction():
                # audit_log refuses TRUNCATE through a trigger; replica mode skips triggers.
                await conn.execute("SET LOCAL session_replication_role = replica")
                if filled:
                    names = ", ".join(f'"{name}"' for name in filled)
                    await conn.execute(f"TRUNCATE {names} CASCADE")
                # The sequences owned by the emptied tables' columns (serial and identity).
                await conn.execute(
                    """SELECT setval(d.objid::regclass, s.seqstart, false)
                       FROM pg_depend d JOIN pg_sequence s ON s.seqrelid = d.objid
                       JOIN pg_class t ON t.oid = d.refobjid
                       WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                         AND d.deptype IN ('a', 'i') AND t.relname = ANY($1::text[])""",
                    [r["name"] for r in tables],
                )
    await redis.flushdb()


@pytest.fixture
async def clean(pool: Pool, redis: Redis) -> None:
    await reset_state(pool, redis)


@pytest.fixture
async def client(settings: Settings, clean: None) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    """The BFF in-process (its lifespan run), talking to the real servers and simulators."""
    async with running_app(create_app(settings)) as test_client:
        yield test_client
