"""The OIDC repository on real PostgreSQL: typed rows, its transactions, its domain errors."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from core.crypto import Vault
from core.db import Pool
from core.errors import Conflict, InvalidValue
from identity.oidc import ClientAdmin, ClientAdminError
from identity.oidc.errors import ClientExists
from identity.oidc.repository import (
    Client,
    ConsentEntry,
    OidcRepository,
    RefreshTokenState,
    RotatedGrant,
    SpentCode,
    UsedCode,
    UserinfoGrant,
)

_CODE_HASH = b"code-hash-0001"
_CHALLENGE = "A" * 43


@pytest.fixture
async def repository(clean: None, pool: Pool, vault: Vault) -> OidcRepository:
    """The repository, with one registered client (``partner``)."""
    await ClientAdmin(pool, vault).add(
        "partner", name="Partner", redirect_uris=["https://partner.example/cb"], scopes=["openid", "profile"]
    )
    return OidcRepository(pool)


async def _account(pool: Pool) -> str:
    account: str = await pool.fetchval(
        "INSERT INTO accounts (phone_enc, phone_index) VALUES ('\\x01', gen_random_uuid()::text::bytea) "
        "RETURNING id::text"
    )
    return account


async def _grant(repository: OidcRepository, account_id: str, refresh_hash: bytes) -> str:
    async with repository.transaction() as tx:
        grant_id = await repository.insert_grant(
            tx,
            client_id="partner",
            account_id=account_id,
            scope="openid profile",
            claims={"full_name": True},
            acr="L2",
            amr=["otp", "sms"],
            auth_time=1_700_000_000,
            ttl_s=3600,
        )
        await repository.insert_refresh_token(
            tx, token_hash=refresh_hash, grant_id=grant_id, client_id="partner", idle_ttl_s=600
        )
    return grant_id


async def test_a_client_is_a_typed_row(repository: OidcRepository) -> None:
    client = await repository.get_client("partner")
    assert isinstance(client, Client)
    assert client.client_id == "partner" and client.name == "Partner"
    assert client.redirect_uris == ("https://partner.example/cb",)
    assert client.scopes == frozenset({"openid", "profile"})
    assert client.grant_types == frozenset({"authorization_code", "refresh_token"})
    assert client.is_public is False and client.disabled is False and client.secret_hash is not None
    assert await repository.get_client("nobody") is None
    assert await repository.list_clients() == [client]


async def test_a_taken_client_id_is_a_conflict_and_nothing_is_written(
    repository: OidcRepository, pool: Pool, vault: Vault
) -> None:
    with pytest.raises(ClientAdminError, match="client 'partner' exists"):
        await ClientAdmin(pool, vault).add("partner", scopes=["codes:verify"])
    with pytest.raises(ClientExists) as raised:
        async with repository.transaction() as tx:
            await repository.insert_client(
                tx,
                client_id="partner",
                name="Again",
                client_type="confidential",
                auth_method="client_secret_basic",
                secret_hash=b"x",
                jwks=None,
                redirect_uris=[],
                scopes=["codes:verify"],
                grant_types=["client_credentials"],
                sector_id="partner",
            )
    assert isinstance(raised.value, Conflict)
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'oidc.client.added'") == 1
    client = await repository.get_client("partner")
    assert client is not None and client.name == "Partner"


async def test_a_code_is_spent_once_and_remembers_its_grant(repository: OidcRepository, pool: Pool) -> None:
    account_id = await _account(pool)
    async with repository.transaction() as tx:
        await repository.insert_code(
            tx,
            code_hash=_CODE_HASH,
            client_id="partner",
            account_id=account_id,
            redirect_uri="https://partner.example/cb",
            scope="openid profile",
            claims={"full_name": False},
            nonce="n-1",
            code_challenge=_CHALLENGE,
            acr="L2",
            amr=["otp", "sms"],
            auth_time=1_700_000_000,
            ttl_s=60,
        )
    async with repository.transaction() as tx:
        spent = await repository.spend_code(tx, _CODE_HASH)
        assert spent == SpentCode(
            client_id="partner",
            account_id=account_id,
            redirect_uri="https://partner.example/cb",
            scope="openid profile",
            claims={"full_name": False},
            nonce="n-1",
            code_challenge=_CHALLENGE,
            acr="L2",
            amr=["otp", "sms"],
            dpop_jkt=None,
            auth_time=1_700_000_000,
            live=True,
            level="L2",
            phone_enc=b"\x01",
            name_enc=None,
        )
        assert await repository.spend_code(tx, _CODE_HASH) is None
    assert await repository.used_code(_CODE_HASH) == UsedCode(client_id="partner", account_id=account_id, grant_id=None)
    grant_id = await _grant(repository, account_id, b"refresh-1")
    async with repository.transaction() as tx:
        await repository.attach_grant(tx, _CODE_HASH, grant_id)
    used = await repository.used_code(_CODE_HASH)
    assert used is not None and used.grant_id == grant_id


async def test_concurrent_rotations_of_one_refresh_token_succeed_once(repository: OidcRepository, pool: Pool) -> None:
    account_id = await _account(pool)
    grant_id = await _grant(repository, account_id, b"refresh-old")

    async def rotate(new_hash: bytes) -> RotatedGrant | None:
        async with repository.transaction() as tx:
            return await repository.rotate_refresh_token(
                tx, old_hash=b"refresh-old", client_id="partner", new_hash=new_hash, idle_ttl_s=600
            )

    results = await asyncio.gather(rotate(b"refresh-a"), rotate(b"refresh-b"))
    rotated = [r for r in results if r is not None]
    assert rotated == [
        RotatedGrant(
            grant_id=grant_id,
            account_id=account_id,
            scope="openid profile",
            claims={"full_name": True},
            acr="L2",
            amr=["otp", "sms"],
            auth_time=1_700_000_000,
        )
    ]
    old = await repository.find_refresh_token(b"refresh-old")
    assert isinstance(old, RefreshTokenState)
    assert old.rotated is True and old.active is False and old.grant_id == grant_id
    winner = b"refresh-a" if results[0] is not None else b"refresh-b"
    loser = b"refresh-b" if winner == b"refresh-a" else b"refresh-a"
    new = await repository.find_refresh_token(winner)
    assert new is not None and new.active is True and new.rotated is False and new.client_id == "partner"
    assert await repository.find_refresh_token(loser) is None
    # Another client cannot rotate it.
    async with repository.transaction() as tx:
        assert (
            await repository.rotate_refresh_token(
                tx, old_hash=winner, client_id="other", new_hash=b"refresh-c", idle_ttl_s=600
            )
            is None
        )


async def test_userinfo_grant_and_consents_are_typed_rows(repository: OidcRepository, pool: Pool) -> None:
    account_id = await _account(pool)
    grant_id = await _grant(repository, account_id, b"refresh-2")
    assert await repository.grant_with_account(grant_id) == UserinfoGrant(
        client_id="partner",
        account_id=account_id,
        scope="openid profile",
        claims={"full_name": True},
        level="L2",
        phone_enc=b"\x01",
        name_enc=None,
    )
    async with repository.transaction() as tx:
        await repository.record_consents(
            tx, account_id=account_id, client_id="partner", options={"openid": {}, "profile": {"full_name": True}}
        )
    entries = await repository.list_consents(account_id)
    assert [(e.client_id, e.client_name, e.scope, e.options) for e in entries] == [
        ("partner", "Partner", "openid", {}),
        ("partner", "Partner", "profile", {"full_name": True}),
    ]
    assert all(isinstance(e, ConsentEntry) and isinstance(e.granted_at, dt.datetime) for e in entries)
    async with repository.transaction() as tx:
        deleted, revoked = await repository.withdraw_consents(tx, account_id=account_id, client_id="partner")
    assert (deleted, revoked) == (2, [grant_id])
    assert await repository.grant_with_account(grant_id) is None


async def test_a_value_postgresql_refuses_is_invalid_and_rolls_the_transaction_back(
    repository: OidcRepository, pool: Pool
) -> None:
    account_id = await _account(pool)

    async def consent_and_code(nonce: str) -> None:
        async with repository.transaction() as tx:
            await repository.record_consents(tx, account_id=account_id, client_id="partner", options={"openid": {}})
            await repository.insert_code(
                tx,
                code_hash=_CODE_HASH,
                client_id="partner",
                account_id=account_id,
                redirect_uri="https://partner.example/cb",
                scope="openid",
                claims={},
                nonce=nonce,
                code_challenge=_CHALLENGE,
                acr="L2",
                amr=["otp"],
                auth_time=1_700_000_000,
                ttl_s=60,
            )

    with pytest.raises(InvalidValue):
        await consent_and_code("nul\x00byte")
    assert await repository.consents_of(account_id, "partner") == {}
    assert await pool.fetchval("SELECT count(*) FROM oauth_codes") == 0
    await consent_and_code("n-2")
    assert await repository.consents_of(account_id, "partner") == {"openid": {}}
