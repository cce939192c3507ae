"""A refresh-token grant is audited in the rotation's transaction, not through the batcher."""

from __future__ import annotations

from litestar.testing import AsyncTestClient

from core.db import Pool
from services.departments.sms import SmsGateway
from tests.integration.identity.oidc.conftest import Partner, citizen, code_for, exchange


async def test_a_refresh_token_grant_is_audited_with_its_rotation(
    client: AsyncTestClient,
    sms: SmsGateway,
    hospital: Partner,
    pool: Pool,  # type: ignore[type-arg]
) -> None:
    token = await citizen(client, sms)
    code, verifier = await code_for(client, token, hospital, scope="openid profile")
    tokens = (await exchange(client, hospital, code, verifier)).json()
    # With the batch writer stopped, a batched event would stay in memory, not in audit_log.
    app = client._transport.app  # type: ignore[attr-defined]  # the in-process Litestar app
    await app.state.resources.audit.stop()
    refreshed = await client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(hospital.client_id, hospital.secret or ""),
    )
    assert refreshed.status_code == 200, refreshed.text
    row = await pool.fetchrow(
        """SELECT outcome, actor_id, details FROM audit_log
           WHERE action = 'oidc.token' AND details->>'grant_type' = 'refresh_token'"""
    )
    assert row is not None and row["outcome"] == "success" and row["actor_id"] == hospital.client_id
