"""The staff repository on a real PostgreSQL: typed rows, and the unique and check
constraints translated into the staff domain's errors."""

from __future__ import annotations

import pytest

from core.audit import AuditEvent
from core.crypto import Vault
from core.db import Pool
from identity.staff.errors import AuthenticatorAlreadyRegistered, SeparationOfDuties, UsernameTaken
from identity.staff.repository import AuditRow, AuthenticatorRow, StaffRepository, StaffRow


@pytest.fixture
def repository(pool: Pool, clean: None) -> StaffRepository:
    return StaffRepository(pool)


async def _add(repository: StaffRepository, vault: Vault, username: str, roles: list[str]) -> str:
    async with repository.transaction() as tx:
        return await repository.insert(
            tx,
            username=username,
            display_name="Officer",
            phone_enc=vault.encrypt_text("13900000001", context="staff-phone"),
            password_hash="$argon2id$not-checked-here",
            roles=roles,
            region_code="110101",
        )


async def _register(repository: StaffRepository, staff_id: str, credential_id: bytes) -> AuthenticatorRow:
    async with repository.transaction() as tx:
        return await repository.insert_authenticator(
            tx,
            staff_id=staff_id,
            credential_id=credential_id,
            public_key=b"key",
            sign_count=0,
            transports=["usb"],
            aaguid="00000000-0000-0000-0000-000000000000",
            name="Blue key",
        )


async def test_a_staff_member_is_a_frozen_struct(repository: StaffRepository, vault: Vault) -> None:
    staff_id = await _add(repository, vault, "officer.one", ["health_officer"])
    member = await repository.by_id(staff_id)
    assert isinstance(member, StaffRow)
    assert (member.username, member.roles, member.region_code, member.disabled, member.webauthn_blocked) == (
        "officer.one",
        ["health_officer"],
        "110101",
        False,
        False,
    )
    assert await repository.by_username("officer.one") == member
    assert await repository.list() == [member]
    assert await repository.by_id("not-a-uuid") is None
    with pytest.raises(AttributeError):
        member.disabled = True  # type: ignore[misc]


async def test_a_taken_username_is_the_staff_domains_error(repository: StaffRepository, vault: Vault) -> None:
    await _add(repository, vault, "officer.one", ["health_officer"])
    with pytest.raises(UsernameTaken) as refused:
        await _add(repository, vault, "officer.one", ["auditor"])
    assert (refused.value.status, refused.value.detail) == (422, "username 'officer.one' is taken")
    assert [m.roles for m in await repository.list()] == [["health_officer"]]


async def test_roles_breaking_separation_of_duties_are_refused_by_the_backstop(
    repository: StaffRepository, vault: Vault
) -> None:
    staff_id = await _add(repository, vault, "officer.one", ["health_officer"])
    with pytest.raises(SeparationOfDuties) as refused:
        async with repository.transaction() as tx:
            await repository.set_roles(tx, staff_id, ["auditor", "health_officer"])
    assert refused.value.type_slug == "separation-of-duties"
    member = await repository.by_id(staff_id)
    assert member is not None and member.roles == ["health_officer"]


async def test_a_key_registered_twice_is_the_staff_domains_error(repository: StaffRepository, vault: Vault) -> None:
    staff_id = await _add(repository, vault, "officer.one", ["health_officer"])
    key = await _register(repository, staff_id, b"credential-1")
    assert (key.credential_id, key.transports, key.name, key.last_used_at) == (
        b"credential-1",
        ["usb"],
        "Blue key",
        None,
    )
    with pytest.raises(AuthenticatorAlreadyRegistered) as refused:
        await _register(repository, staff_id, b"credential-1")
    assert (refused.value.type_slug, refused.value.detail) == (
        "webauthn-registration-failed",
        "This security key is registered already",
    )
    assert await repository.active_authenticators(staff_id) == [key]
    stored = await repository.authenticator(staff_id, b"credential-1")
    assert stored is not None and (stored.id, stored.public_key, stored.sign_count) == (key.id, b"key", 0)


async def test_audit_rows_are_structs_scoped_by_region(repository: StaffRepository, vault: Vault) -> None:
    staff_id = await _add(repository, vault, "officer.one", ["health_officer"])
    await repository.audit(
        [
            AuditEvent(action="staff.test", outcome="success", actor_type="system", subject_id=staff_id),
            AuditEvent(action="staff.test", outcome="success", actor_type="system", subject_id="partner-1"),
        ]
    )
    page = await repository.audit_page(
        region="1101",
        sees_unregioned=False,
        before_id=None,
        action="staff.test",
        action_prefix=None,
        since=None,
        limit=10,
    )
    (row,) = page
    assert isinstance(row, AuditRow) and (row.subject_id, row.action, row.details) == (staff_id, "staff.test", {})
