"""``ONECITY_DATABASE_READ_URL``: the heavy reads (the data-access ledger) go to the replica."""

from __future__ import annotations

import msgspec

from bff.app import create_app
from bff.settings import Settings
from core.db import Pool, connect
from core.migrate import apply_migrations
from services.departments.sms import SmsGateway
from tests.support.asgi import running_app
from tests.support.backends import DatabaseFactory
from tests.support.citizens import bearer, login

_READ = (
    "INSERT INTO audit_log (actor_type, actor_id, subject_id, action, outcome, details)"
    " VALUES ('system', 'onecity', $1, 'data.read', 'success', $2)"
)


async def test_ledger_reads_come_from_the_read_replica(
    settings: Settings, clean: None, pool: Pool, sms: SmsGateway, database_factory: DatabaseFactory
) -> None:
    # A second database on the same server stands in for the replica: rows written only there
    # prove where the ledger was read from.
    replica_url = await database_factory.create()
    replica = await connect(replica_url)
    try:
        await apply_migrations(replica)
        database = msgspec.structs.replace(settings.database, read_url=replica_url)
        app = create_app(msgspec.structs.replace(settings, database=database))
        async with running_app(app) as client:
            tokens = await login(client, sms, "13600000301")
            headers = bearer(tokens["access_token"])
            me = await client.get("/v1/me", headers=headers)
            assert me.status_code == 200, me.text
            account_id = me.json()["id"]
            await pool.execute(_READ, account_id, {"department": "health", "resource": "on-primary", "purpose": "t"})
            await replica.execute(_READ, account_id, {"department": "health", "resource": "on-replica", "purpose": "t"})
            page = await client.get("/v1/me/data-access", headers=headers)
            assert page.status_code == 200, page.text
            resources = [item.get("resource") for item in page.json()["items"]]
            assert "on-replica" in resources
            assert "on-primary" not in resources
    finally:
        await replica.close()
