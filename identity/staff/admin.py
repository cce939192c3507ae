"""Managing staff accounts: what ``onecity staff add|list|disable`` runs."""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.audit import AuditEvent, write_audit
from core.crypto import Vault
from core.db import Pool
from core.errors import Forbidden
from identity.revocation import STAFF, RevocationSet
from identity.staff.errors import SeparationOfDuties, StaffAdminError, UnknownStaff
from identity.staff.passwords import Passwords
from identity.staff.permissions import LEGACY_ROLES, Role, region_level, separation_of_duties_violation
from identity.staff.repository import StaffRepository, StaffRow
from identity.staff.schemas import RecoveryResult, StaffProfile
from identity.staff.service import StaffService

__all__ = ["StaffAdmin", "StaffAdminError", "check_roles"]

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
_PHONE = re.compile(r"^1[3-9][0-9]{9}$")


def check_roles(roles: Sequence[str]) -> list[str]:
    """``roles`` without repeats, or why they are refused.

    Raises:
        StaffAdminError: an unknown role or none.
        SeparationOfDuties: roles one account may not combine.
    """
    valid_roles = {r.value for r in Role}
    # Callers written before the split may still say "admin": the system administrator.
    roles = [LEGACY_ROLES.get(r, r) for r in roles]
    if not roles or any(r not in valid_roles for r in roles):
        raise StaffAdminError(f"roles: one or more of {', '.join(sorted(valid_roles))}")
    violation = separation_of_duties_violation(roles)
    if violation is not None:
        raise SeparationOfDuties(f"roles: {violation}")
    return list(dict.fromkeys(roles))


class StaffAdmin:
    """Adds, lists and disables staff.

    Args:
        store: PostgreSQL: the staff repository, or a pool to open one on (the command line).
        vault: Encrypts staff phones.
        passwords: argon2 hashing.
        revocations: Where disabling kills the member's live tokens at once. Adding and
            listing need none; :meth:`disable` refuses to run without it.
        min_password_length: Refuse shorter passwords.
    """

    def __init__(
        self,
        store: Pool | StaffRepository,
        vault: Vault,
        *,
        passwords: Passwords | None = None,
        revocations: RevocationSet | None = None,
        min_password_length: int = 12,
    ) -> None:
        self._repository = store if isinstance(store, StaffRepository) else StaffRepository(store)
        self._vault = vault
        self._passwords = passwords or Passwords()
        self._revocations = revocations
        self._min_password = min_password_length

    async def add(
        self, username: str, *, name: str, phone: str, password: str, roles: Sequence[str], region: str
    ) -> StaffProfile:
        """Create a staff member.

        Raises:
            StaffAdminError: invalid input or the username is taken.
        """
        if not _USERNAME.fullmatch(username):
            raise StaffAdminError("username: 3-64 characters of a-z, 0-9, '.', '_', '-'")
        if not 1 <= len(name) <= 64:
            raise StaffAdminError("name: 1-64 characters")
        if not _PHONE.fullmatch(phone):
            raise StaffAdminError("phone: an 11-digit mainland mobile number")
        if len(password) < self._min_password:
            raise StaffAdminError(f"password: at least {self._min_password} characters")
        roles = check_roles(roles)
        if region_level(region) is None:
            raise StaffAdminError("region: a division code of 4 (city), 6 (district), 9 (street) or 12 digits")
        password_hash = await self._passwords.hash_async(password)
        async with self._repository.transaction() as tx:
            staff_id = await self._repository.insert(
                tx,
                username=username,
                display_name=name,
                phone_enc=self._vault.encrypt_text(phone, context="staff-phone"),
                password_hash=password_hash,
                roles=roles,
                region_code=region,
            )
            await write_audit(
                tx,
                [
                    AuditEvent(
                        action="staff.added",
                        outcome="success",
                        actor_type="system",
                        actor_id="cli",
                        subject_id=staff_id,
                        details={"roles": roles, "region": region},
                    )
                ],
            )
        added = await self._repository.by_id(staff_id)
        assert added is not None
        return StaffService.profile_of(added)

    async def set_roles(
        self, who: str, roles: Sequence[str], *, actor_type: str = "system", actor_id: str = "cli"
    ) -> StaffProfile:
        """Replace a staff member's roles (``who``: username or id); audited.

        The member's live tokens end at once (``tokens_not_before``): the new roles apply
        from their next sign-in.

        Raises:
            StaffAdminError: unknown roles.
            SeparationOfDuties: roles one account may not combine.
            UnknownStaff: no such staff member.
        """
        new_roles = check_roles(roles)
        member = await self._find(who)
        if member is None:
            raise UnknownStaff(f"no staff member {who!r}")
        if actor_type == "staff" and actor_id == member.id:
            raise Forbidden("Nobody changes their own roles")
        async with self._repository.transaction() as tx:
            # The row lock orders concurrent changes; the CHECK constraint is the backstop.
            old = await self._repository.set_roles(tx, member.id, new_roles)
            await write_audit(
                tx,
                [
                    AuditEvent(
                        action="staff.roles.changed",
                        outcome="success",
                        actor_type=actor_type,
                        actor_id=actor_id,
                        subject_id=member.id,
                        details={"from": old, "to": new_roles},
                    )
                ],
            )
        changed = await self._repository.by_id(member.id)
        assert changed is not None
        return StaffService.profile_of(changed)

    async def recover(
        self, who: str, *, actor_type: str = "system", actor_id: str = "cli", client_ip: str | None = None
    ) -> RecoveryResult:
        """Security-key recovery: revoke every active key of the member (``who``: username or
        id) and end their live tokens; audited. Their next sign-in, password and SMS code,
        gives an enrolment-only token.

        Raises:
            UnknownStaff: no such staff member.
            Forbidden: a security administrator recovering their own account (another one
                must, or an operator with ``onecity staff recover``).
        """
        member = await self._find(who)
        if member is None:
            raise UnknownStaff(f"no staff member {who!r}")
        if actor_type == "staff" and actor_id == member.id:
            raise Forbidden("Another security administrator must recover your account")
        async with self._repository.transaction() as tx:
            revoked = await self._repository.revoke_authenticators(tx, member.id, "recovery")
            await write_audit(
                tx,
                [
                    AuditEvent(
                        action="staff.authenticator.recovery",
                        outcome="success",
                        actor_type=actor_type,
                        actor_id=actor_id,
                        subject_id=member.id,
                        client_ip=client_ip,
                        details={"revoked": revoked},
                    )
                ],
            )
        return RecoveryResult(staff_id=member.id, revoked=revoked)

    async def _find(self, who: str) -> StaffRow | None:
        by_id = await self._repository.by_id(who)
        return by_id if by_id is not None else await self._repository.by_username(who)

    async def list(self) -> list[tuple[StaffProfile, bool]]:
        """Everyone, with whether they are disabled."""
        return [(StaffService.profile_of(member), member.disabled) for member in await self._repository.list()]

    async def disable(self, username: str) -> str:
        """Disable a staff member; their tokens stop working. Returns the id.

        Raises:
            StaffAdminError: no such enabled staff member.
            StaffAdminError: built without a revocation set (their tokens would keep working).
        """
        if self._revocations is None:
            raise StaffAdminError(
                "disabling a staff member needs the revocation set (Redis, ONECITY_REDIS_URL): "
                "their tokens would keep working"
            )
        async with self._repository.transaction() as tx:
            staff_id = await self._repository.disable(tx, username)
            if staff_id is None:
                raise StaffAdminError(f"no enabled staff member {username!r}")
            await write_audit(
                tx,
                [
                    AuditEvent(
                        action="staff.disabled",
                        outcome="success",
                        actor_type="system",
                        actor_id="cli",
                        subject_id=staff_id,
                    )
                ],
            )
        await self._revocations.revoke(STAFF, [staff_id])
        return staff_id
