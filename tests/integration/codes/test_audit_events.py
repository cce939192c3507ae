"""Security events of the codes domain are in the audit log before the answer, not batched."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from codes.ride import device_id_of
from core.db import Pool
from tests.integration.codes.conftest import ZHANG_SAN, App, Demo, issue
from tests.integration.codes.test_rides import _raw, _register


async def _stop_the_batcher(app: App) -> None:
    # With the batch writer stopped, a batched event would sit in memory, not in audit_log:
    # whatever the table holds right after an answer was written with the change itself.
    await app.state.resources.audit.stop()


async def test_a_device_certificate_and_its_revocation_are_audited_with_the_change(
    app: App, demo: Demo, pool: Pool
) -> None:
    await _stop_the_batcher(app)
    key = Ed25519PrivateKey.generate()
    device_id = device_id_of(_raw(key))
    assert (await _register(app, demo[ZHANG_SAN], key)).status_code == 200
    certified = await pool.fetchrow(
        """SELECT actor_type FROM audit_log
           WHERE action = 'codes.device.certify' AND details->>'device_id' = $1""",
        device_id,
    )
    assert certified is not None and certified["actor_type"] == "citizen"
    response = await app.client.delete(f"/v1/me/ride-devices/{device_id}", headers=demo[ZHANG_SAN])
    assert response.status_code == 204
    revoked = await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'codes.device.revoke' AND details->>'device_id' = $1", device_id
    )
    assert revoked == 1


async def test_a_code_revocation_is_audited_before_the_answer(app: App, demo: Demo, pool: Pool) -> None:
    await _stop_the_batcher(app)
    await issue(app.client, demo[ZHANG_SAN], "health")
    response = await app.client.delete("/v1/me/codes/health", headers=demo[ZHANG_SAN])
    assert response.status_code == 204
    row = await pool.fetchrow("SELECT outcome, details FROM audit_log WHERE action = 'codes.revoke'")
    assert row is not None and row["outcome"] == "success" and row["details"]["code_type"] == "health"
