"""The revocation set falls back to PostgreSQL when Redis is gone, and rebuilds after a flush."""

from __future__ import annotations

from core.db import Pool
from core.redis import Redis, create_redis
from identity.oidc import ClientAdmin, TokenRevocations


async def test_fallback_and_rebuild(clean: None, pool: Pool, redis: Redis, admin: ClientAdmin) -> None:
    await admin.add("gone", scopes=["codes:verify"])
    await admin.add("kept", scopes=["codes:verify"])
    revocations = TokenRevocations(redis, pool, window_s=600)
    await pool.execute("UPDATE oauth_clients SET disabled_at = now() WHERE client_id = 'gone'")
    await pool.execute(
        "INSERT INTO oauth_revoked_tokens (jti, client_id, expires_at) "
        "VALUES ('j1', 'kept', now() + interval '5 minutes')"
    )
    # Redis is empty (no completeness marker): the set is rebuilt from PostgreSQL first.
    assert await revocations.is_revoked(jti="x", client_id="gone") is True
    assert await revocations.is_revoked(jti="j1", client_id="kept") is True
    assert await revocations.is_revoked(jti="j2", client_id="kept") is False
    # Redis unreachable: PostgreSQL answers.
    broken = create_redis("redis://127.0.0.1:1/0")
    try:
        offline = TokenRevocations(broken, pool, window_s=600)
        assert await offline.is_revoked(jti="x", client_id="gone") is True
        assert await offline.is_revoked(jti="j1", client_id="kept") is True
        assert (
            await offline.is_revoked(jti="j2", client_id="kept", grant_id="6f1c2b3a-0000-4000-8000-000000000000")
            is False
        )
    finally:
        await broken.aclose()
