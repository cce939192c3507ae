"""Identity's repository on a real PostgreSQL: typed rows, its transactions, and the unique
index on ID numbers translated into identity's own error."""

from __future__ import annotations

import pytest

from core.crypto import Vault
from core.db import Pool
from identity.errors import IdNumberBoundElsewhere
from identity.pii import Pii
from identity.repository import AccountRow, EndedByCorrection, IdentityRepository, SessionRow

PHONE, OTHER_PHONE = "13800000001", "13800000002"
ID_NUMBER = "110101199003070011"


@pytest.fixture
def repository(pool: Pool, clean: None) -> IdentityRepository:
    return IdentityRepository(pool)


async def _account(repository: IdentityRepository, pii: Pii, phone: str) -> AccountRow:
    async with repository.transaction() as tx:
        return await repository.upsert_account(tx, phone_enc=pii.phone.seal(phone), phone_index=pii.phone.index(phone))


async def _bind(repository: IdentityRepository, pii: Pii, account_id: str) -> str | None:
    async with repository.transaction() as tx:
        return await repository.set_real_name(
            tx,
            account_id=account_id,
            name_enc=pii.name.seal("张三"),
            id_number_enc=pii.id_number.seal(ID_NUMBER),
            id_number_index=pii.id_number.index(ID_NUMBER),
            region_code=ID_NUMBER[:6],
        )


async def test_an_account_is_a_frozen_struct_read_back_as_written(repository: IdentityRepository, vault: Vault) -> None:
    pii = Pii(vault)
    created = await _account(repository, pii, PHONE)
    assert (created.level, created.name_enc, created.id_number_index, created.region_code) == ("L2", None, None, None)
    assert pii.phone.open(created.phone_enc) == PHONE
    # The same phone logs in again: the same account, not a second one.
    assert await _account(repository, pii, PHONE) == created
    assert await repository.get_account(created.id) == created
    with pytest.raises(AttributeError):
        created.level = "L4"  # type: ignore[misc]


async def test_binding_an_id_number_bound_elsewhere_is_identitys_error_and_rolls_back(
    repository: IdentityRepository, vault: Vault
) -> None:
    pii = Pii(vault)
    owner = await _account(repository, pii, PHONE)
    other = await _account(repository, pii, OTHER_PHONE)
    assert await _bind(repository, pii, owner.id) == "L3"
    with pytest.raises(IdNumberBoundElsewhere) as refused:
        await _bind(repository, pii, other.id)
    assert refused.value.status == 409
    assert await repository.get_account(other.id) == other  # nothing of the attempt was kept
    assert await repository.account_of_id_number(pii.id_number.index(ID_NUMBER)) == owner.id


async def test_correcting_to_an_id_number_bound_elsewhere_is_identitys_error(
    repository: IdentityRepository, vault: Vault
) -> None:
    pii = Pii(vault)
    owner = await _account(repository, pii, PHONE)
    other = await _account(repository, pii, OTHER_PHONE)
    await _bind(repository, pii, owner.id)
    with pytest.raises(IdNumberBoundElsewhere):
        async with repository.transaction() as tx:
            await repository.correct_identity(
                tx,
                account_id=other.id,
                keep_session_id="00000000-0000-0000-0000-000000000000",
                name_enc=pii.name.seal("张三"),
                id_number_enc=pii.id_number.seal(ID_NUMBER),
                id_number_index=pii.id_number.index(ID_NUMBER),
                region_code=ID_NUMBER[:6],
                level="L4",
            )
    assert await repository.get_account(other.id) == other


async def test_a_correction_reports_what_it_ended(repository: IdentityRepository, vault: Vault) -> None:
    pii = Pii(vault)
    account = await _account(repository, pii, PHONE)
    await _bind(repository, pii, account.id)
    async with repository.transaction() as tx:
        kept, ended = [
            await repository.create_session(
                tx,
                account_id=account.id,
                device_id=device,
                device_name=device,
                platform="ios",
                auth_method="otp",
                absolute_ttl_s=3600,
            )
            for device in ("kept", "ended")
        ]
    async with repository.transaction() as tx:
        result = await repository.correct_identity(
            tx,
            account_id=account.id,
            keep_session_id=kept,
            name_enc=pii.name.seal("李四"),
            id_number_enc=pii.id_number.seal("110101198512120019"),
            id_number_index=pii.id_number.index("110101198512120019"),
            region_code="110101",
            level="L4",
        )
    assert result == EndedByCorrection(sessions=[ended], grants=[])
    (live,) = await repository.list_sessions(account.id)
    assert isinstance(live, SessionRow) and (live.id, live.device_name, live.platform) == (kept, "kept", "ios")


async def test_a_failed_transaction_keeps_nothing(repository: IdentityRepository, vault: Vault, pool: Pool) -> None:
    pii = Pii(vault)

    async def write_then_fail() -> None:
        async with repository.transaction() as tx:
            await repository.upsert_account(tx, phone_enc=pii.phone.seal(PHONE), phone_index=pii.phone.index(PHONE))
            assert await tx.fetchval("SELECT count(*) FROM accounts") == 1
            raise RuntimeError("after the write")

    with pytest.raises(RuntimeError):
        await write_then_fail()
    assert await pool.fetchval("SELECT count(*) FROM accounts") == 0
