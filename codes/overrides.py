"""Staff overrides of a citizen's health status.

A health officer (or administrator) whose region covers the citizen's registered region sets a
status with a reason and an expiry; it replaces the rule-based status until then (stricter or
milder: staff also clear false positives). Setting and lifting are audited in the same
transaction. The override takes effect on the citizen's next code, and at once for online
verification: the holder cache is refreshed and the current code dropped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from codes.holders import Holders
from codes.live import HolderEntry, LiveCodes
from codes.payload import CodeType
from codes.repository import CodesRepository, StoredOverride
from codes.schemas import HealthOverrideRequest, HealthOverrideView
from codes.status import StatusResolver
from core.audit import AuditEvent, write_audit
from core.errors import NotFound, UnprocessableEntity
from core.ledger import staff_context
from identity.staff.permissions import Role, StaffPrincipal

__all__ = ["MAX_OVERRIDE", "Overrides"]

#: Longest an override may last: a standing decision must be renewed by a person.
MAX_OVERRIDE = timedelta(days=90)
_ROLES = (Role.HEALTH_OFFICER, Role.ADMIN)


def _view(override: StoredOverride) -> HealthOverrideView:
    return HealthOverrideView(
        account_id=override.account_id,
        status=override.status,
        reason=override.reason,
        until=override.until,
        set_by=override.set_by,
        set_at=override.set_at,
    )


class Overrides:
    """Sets and lifts staff overrides.

    Args:
        repository: SQL.
        holders: Account look-ups (region) and pseudonyms (cache refresh).
        status: Re-decides the current status for the holder cache.
        live: Redis state.
    """

    def __init__(
        self, *, repository: CodesRepository, holders: Holders, status: StatusResolver, live: LiveCodes
    ) -> None:
        self._repository = repository
        self._holders = holders
        self._status = status
        self._live = live

    async def _authorize(self, staff: StaffPrincipal, account_id: str) -> None:
        staff.require_role(*_ROLES)
        account = await self._holders.get(account_id)
        if account is None:
            raise NotFound("No such citizen")
        # Fails closed: a citizen without a registered region is covered by no one.
        staff.require_region(account.region_code)

    async def set(
        self, staff: StaffPrincipal, account_id: str, request: HealthOverrideRequest, *, client_ip: str | None
    ) -> HealthOverrideView:
        """Set (or replace) the citizen's override.

        Raises:
            Forbidden: wrong role, or the citizen is outside the staff member's region.
            NotFound: no such account.
            UnprocessableEntity: ``until`` is not in the future or too far in it.
        """
        await self._authorize(staff, account_id)
        until = request.until if request.until.tzinfo else request.until.replace(tzinfo=UTC)
        now = datetime.now(UTC)
        if until <= now:
            raise UnprocessableEntity("until must be in the future", extensions={"field": "until"})
        if until > now + MAX_OVERRIDE:
            raise UnprocessableEntity(
                f"An override lasts at most {MAX_OVERRIDE.days} days", extensions={"field": "until"}
            )
        async with self._repository.transaction() as tx:
            override = await self._repository.upsert_override(
                tx,
                account_id=account_id,
                status=request.status,
                reason=request.reason,
                until=until,
                set_by=staff.staff_id,
            )
            await write_audit(
                tx,
                [
                    AuditEvent(
                        action="codes.health_override.set",
                        outcome="success",
                        actor_type="staff",
                        actor_id=staff.staff_id,
                        subject_id=account_id,
                        client_ip=client_ip,
                        details={
                            "status": request.status,
                            "until": until.isoformat(),
                            "reason": request.reason,
                            **staff_context(staff.roles, staff.region),  # ledger: shown to the citizen
                        },
                    )
                ],
            )
        await self._refresh(account_id, until=until)
        return _view(override)

    async def lift(self, staff: StaffPrincipal, account_id: str, *, client_ip: str | None) -> None:
        """Remove the citizen's override before it expires.

        Raises:
            NotFound: no such account or no override.
        """
        await self._authorize(staff, account_id)
        async with self._repository.transaction() as tx:
            if not await self._repository.delete_override(tx, account_id):
                raise NotFound("No override for this citizen")
            await write_audit(
                tx,
                [
                    AuditEvent(
                        action="codes.health_override.lift",
                        outcome="success",
                        actor_type="staff",
                        actor_id=staff.staff_id,
                        subject_id=account_id,
                        client_ip=client_ip,
                        details=staff_context(staff.roles, staff.region),  # ledger: shown to the citizen
                    )
                ],
            )
        await self._refresh(account_id)

    async def get(self, staff: StaffPrincipal, account_id: str) -> HealthOverrideView:
        """The citizen's override.

        Raises:
            NotFound: no such account or no override.
        """
        await self._authorize(staff, account_id)
        override = await self._repository.get_override(account_id)
        if override is None:
            raise NotFound("No override for this citizen")
        return _view(override)

    async def _refresh(self, account_id: str, *, until: datetime | None = None) -> None:
        # Verification answers the current status at once; the app's next code carries it.
        subject = self._holders.subject(CodeType.HEALTH, account_id)
        account = await self._holders.get(account_id)
        decision = await self._status.current(account_id, CodeType.HEALTH)
        if decision is not None and decision.source != "fallback":
            await self._status.observed(account_id, decision.status)
        if account is not None and decision is not None:
            # The cached status must not outlive the override that decided it.
            ttl = None if until is None else int((until - datetime.now(UTC)).total_seconds()) + 1
            await self._live.put_holder(
                CodeType.HEALTH.value,
                subject,
                HolderEntry(account_id=account_id, name=account.masked_name, status=decision.status),
                ttl_s=ttl,
            )
        await self._live.drop_current(account_id, "health")
