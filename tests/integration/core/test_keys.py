import secrets
from datetime import timedelta

import jwt
import pytest

from core.crypto import MasterKeyError, Vault
from core.db import create_pool
from core.keys import KeyStore
from core.migrate import apply_migrations
from tests.support.backends import DatabaseFactory


@pytest.fixture
async def store(database_factory: DatabaseFactory):  # type: ignore[no-untyped-def]
    url = await database_factory.create()
    pool = await create_pool(url, min_size=1, max_size=2)
    async with pool.acquire() as conn:
        await apply_migrations(conn)
    key = secrets.token_bytes(32)
    yield KeyStore(pool, Vault(key)), pool, key
    await pool.close()


async def test_round_trip_private_keys_encrypted_at_rest(store) -> None:  # type: ignore[no-untyped-def]
    key_store, pool, _ = store
    created = await key_store.ensure_active()
    assert len(created) == 3
    assert await key_store.ensure_active() == []  # idempotent
    ring = await key_store.load()
    signer = ring.signer("token")
    token = signer.sign({"sub": "x"}, typ="at+jwt")
    assert jwt.decode(token, ring.public_key(signer.kid, "token"), algorithms=["EdDSA"])["sub"] == "x"
    raw = signer.private_key.private_bytes_raw()
    stored = await pool.fetchval("SELECT private_key_enc FROM signing_keys WHERE kid = $1", signer.kid)
    assert raw not in stored


async def test_rotation_keeps_old_kid_verifying(store) -> None:  # type: ignore[no-untyped-def]
    key_store, _, _ = store
    await key_store.ensure_active()
    old = (await key_store.load()).signer("code")
    old_code = old.sign({"ct": "H"}, typ="oc1")
    new_kid = await key_store.rotate("code")
    ring = await key_store.load()
    assert ring.signer("code").kid == new_kid != old.kid
    old_key = ring.public_key(old.kid, "code")
    assert old_key is not None
    assert jwt.decode(old_code, old_key, algorithms=["EdDSA"])["ct"] == "H"
    published = {k["kid"] for k in ring.jwks(["code"])["keys"]}
    assert {old.kid, new_kid} <= published
    assert all(k["kty"] == "OKP" and k["crv"] == "Ed25519" and k["alg"] == "EdDSA" for k in ring.jwks(["code"])["keys"])


async def test_future_key_is_published_before_it_signs(store) -> None:  # type: ignore[no-untyped-def]
    key_store, _, _ = store
    await key_store.ensure_active()
    current = (await key_store.load()).signer("token").kid
    upcoming = await key_store.rotate("token", activate_in=timedelta(hours=1))
    ring = await key_store.load()
    assert ring.signer("token").kid == current
    assert upcoming in {k["kid"] for k in ring.jwks(["token"])["keys"]}


async def test_purposes_do_not_cross(store) -> None:  # type: ignore[no-untyped-def]
    key_store, _, _ = store
    await key_store.ensure_active()
    ring = await key_store.load()
    token_kid = ring.signer("token").kid
    assert ring.public_key(token_kid, "token") is not None
    assert ring.public_key(token_kid, "code") is None
    assert ring.public_key("token-20260101-deadbeef", "token") is None


async def test_wrong_master_key_is_a_clear_error(store) -> None:  # type: ignore[no-untyped-def]
    key_store, pool, _ = store
    await key_store.ensure_active()
    with pytest.raises(MasterKeyError, match="wrong master key"):
        await KeyStore(pool, Vault(secrets.token_bytes(32))).load()
