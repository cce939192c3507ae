"""A holder's status per code type, from department data, with a defined fallback.

Health: the active rule version evaluated over the health department's tests, vaccinations and
risk (:mod:`codes.rules`), then a staff override on top. Transit and social security: the card's
status (``active`` → ``A``, blocked/suspended → ``X``). Citizen: ``A``.

Every decision made from department data is stored (``holder_status``) with its time. When the
department does not answer (any :class:`~services.errors.DepartmentError`, or data that does not
fit the contract):

1. the stored decision stands in while it is younger than ``status_fresh_s`` (24 h by default),
   marked ``source: last_known``;
2. after that, health falls back to ``Y`` with reason ``health_data_unavailable`` — never green
   on missing data, never red on our own outage — and transit and social security have no
   status: issuing answers 503 (a signed ``X`` would assert a suspension nobody decided).

A staff override applies in every case: it is a human decision, not department data.

A caller that reads the same department data in the same request (the home screen) hands its
reads over as :class:`SharedReads`: the status is decided from them instead of asking the
department a second time under another purpose. The department saw one call, whose service
token carries the purpose of that first read; the citizen's data-access ledger gets a second
row for the code's purpose (``source: shared``), so both purposes are on record.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from codes.holders import HolderAccount
from codes.payload import CodeType
from codes.repository import CodesRepository
from codes.rule_versions import RuleBook
from codes.rules import (
    STAFF_OVERRIDE_REASON,
    Decision,
    HealthFacts,
    HealthStatus,
    StatusOverride,
    evaluate,
    facts_from_department,
)
from core.audit import AuditBatcher, AuditEvent
from core.errors import DependencyUnavailable
from core.structs import FrozenStruct
from services.departments.health import HealthDepartment, HealthRisk, HealthTests
from services.departments.socsec import SocsecCard, SocsecDepartment
from services.departments.transport import TransportCard, TransportDepartment
from services.errors import DepartmentError
from services.fanout import AUDIT_ACTION

__all__ = [
    "FALLBACK_HEALTH_STATUS",
    "HEALTH_UNAVAILABLE_REASON",
    "SharedRead",
    "SharedReads",
    "StatusDecision",
    "StatusResolver",
    "StatusRow",
]

log = logging.getLogger("onecity.codes.status")

#: What a health code shows when nothing fresh is known (DESIGN: never green on missing data).
FALLBACK_HEALTH_STATUS: HealthStatus = "Y"
HEALTH_UNAVAILABLE_REASON = "health_data_unavailable"

_T = TypeVar("_T")

StatusRow = tuple[str, str, str, int | None, tuple[str, ...], dt.datetime]
"""A decision to store: ``(account_id, code_type, status, rule_version, reasons, decided_at)``."""

SharedRead = Callable[[], Awaitable[_T]]
"""Waits for a read another part of the request started; its fresh answer, or
:class:`~services.errors.DepartmentError` (failed, late, or only an old cached answer: a status
is never decided on data the Protocol face would not give either)."""


@dataclass(frozen=True, slots=True)
class SharedReads:
    """Department reads of the holder that the caller makes anyway in this request.

    A resource left ``None`` is read by the resolver itself, under the code's purpose.

    Attributes:
        purpose: The purpose the reads were made (and the service tokens sent) under.
        health_tests: Health ``tests``.
        health_risk: Health ``risk``.
        transport_card: Transport ``card``.
        socsec_card: Social-security ``card``.
    """

    purpose: str
    health_tests: SharedRead[HealthTests] | None = None
    health_risk: SharedRead[HealthRisk] | None = None
    transport_card: SharedRead[TransportCard] | None = None
    socsec_card: SharedRead[SocsecCard] | None = None


class StatusDecision(FrozenStruct, frozen=True):
    """A holder's status for one code type and where it came from.

    Attributes:
        status: The ``st`` value.
        reasons: Machine-readable reasons (health rules' reasons, ``staff_override``,
            ``health_data_unavailable``, ``card_blocked``...).
        rule_version: Health: the rule version (``rv``).
        source: ``department``, ``last_known`` or ``fallback``.
        as_of: When the underlying data was read.
        overridden: A staff override decided the status.
    """

    status: str
    source: str
    as_of: dt.datetime
    reasons: tuple[str, ...] = ()
    rule_version: int | None = None
    overridden: bool = False


class StatusResolver:
    """Decides statuses.

    Args:
        health: The health department (any :class:`HealthDepartment`, e.g. a cached layer).
        transport: The transport department.
        socsec: The social-security department.
        repository: Stored decisions and overrides.
        rules: The health rule versions.
        fresh_s: How long a stored decision may stand in for an unreachable department.
        audit: Records each read of department data (who, whose, what, why).
        audit_reads: Whether the resolver's own department reads are recorded here; off when
            the department clients record every read already. Uses of :class:`SharedReads`
            are always recorded (nobody else knows the second purpose).
    """

    def __init__(
        self,
        *,
        health: HealthDepartment,
        transport: TransportDepartment,
        socsec: SocsecDepartment,
        repository: CodesRepository,
        rules: RuleBook,
        fresh_s: int,
        audit: AuditBatcher | None = None,
        audit_reads: bool = True,
    ) -> None:
        self._health = health
        self._transport = transport
        self._socsec = socsec
        self._repository = repository
        self._rules = rules
        self._fresh = dt.timedelta(seconds=fresh_s)
        self._audit = audit
        self._audit_reads = audit_reads
        #: Called with ``(account_id, code type, status)`` whenever a health status is decided
        #: (on a read, by a staff override, by the periodic re-evaluation): the app wires the message centre here, which
        #: turns a *change* into a ``code`` message and a ``code_status`` event.
        self.on_health_status: list[Callable[[str, str, str], Awaitable[None]]] = []

    async def observed(self, account_id: str, status: str) -> None:
        """Tell the hooks a health status was decided; they never fail the caller."""
        for hook in self.on_health_status:
            try:
                await hook(account_id, CodeType.HEALTH.api_name, status)
            except Exception:
                log.warning("health status hook failed", exc_info=True)

    # overrides --------------------------------------------------------------------------------

    async def override_of(self, account_id: str) -> StatusOverride | None:
        """The citizen's override row as a :class:`StatusOverride` (maybe lapsed)."""
        stored = await self._repository.get_override(account_id)
        if stored is None:
            return None
        return StatusOverride(status=stored.status, reason=stored.reason, until=stored.until)

    @staticmethod
    def _with_override(decision: StatusDecision, override: StatusOverride | None, now: dt.datetime) -> StatusDecision:
        if override is None or not override.is_active(now):
            return decision
        return msgspec.structs.replace(
            decision,
            status=override.status,
            reasons=(*decision.reasons, STAFF_OVERRIDE_REASON),
            overridden=True,
        )

    # department reads ------------------------------------------------------------------------

    def _audit_read(self, holder: HolderAccount, department: str, purpose: str) -> None:
        if self._audit is not None and self._audit_reads:
            self._audit.add(
                AuditEvent(
                    action="department.read",
                    outcome="success",
                    actor_type="citizen",
                    actor_id=holder.account_id,
                    subject_id=holder.account_id,
                    details={"department": department, "purpose": purpose},
                )
            )

    def _audit_shared(self, holder: HolderAccount, department: str, resource: str, purpose: str, first: str) -> None:
        # The row the ledger shows for the code's purpose; the read itself is on record under
        # ``first``, the purpose its service token carried.
        if self._audit is not None:
            self._audit.add(
                AuditEvent(
                    action=AUDIT_ACTION,
                    outcome="success",
                    actor_type="system",
                    actor_id="onecity",
                    subject_id=holder.account_id,
                    details={
                        "department": department,
                        "resource": resource,
                        "purpose": purpose,
                        "state": "ok",
                        "source": "shared",
                        "read_for": first,
                    },
                    at=dt.datetime.now(dt.UTC),
                )
            )

    async def _read(
        self,
        holder: HolderAccount,
        department: str,
        call: Callable[[str], Awaitable[_T]],
        shared: tuple[SharedReads, SharedRead[_T] | None, str, str] | None = None,
    ) -> _T:
        """One department answer for a decision.

        Args:
            shared: ``(reads, the read of this resource, resource, code purpose)`` when the
                caller shares its reads; a ``None`` read falls back to ``call``.
        """
        if shared is not None and (read := shared[1]) is not None:
            reads, _, resource, purpose = shared
            result = await read()
            self._audit_shared(holder, department, resource, purpose, reads.purpose)
            return result
        if holder.id_number is None:
            raise DepartmentError(department, "rejected")  # no ID number: nothing to ask for
        result = await call(holder.id_number)
        self._audit_read(holder, department, "code_status")
        return result

    async def _stored(self, holder: HolderAccount, code_type: CodeType, now: dt.datetime) -> StatusDecision | None:
        stored = await self._repository.last_status(holder.account_id, code_type.value)
        if stored is None or now - stored.decided_at > self._fresh:
            return None
        return StatusDecision(
            status=stored.status,
            source="last_known",
            as_of=stored.decided_at,
            reasons=tuple(stored.reasons),
            rule_version=stored.rule_version,
        )

    async def _save(
        self,
        holder: HolderAccount,
        code_type: CodeType,
        decision: StatusDecision,
        saves: list[StatusRow] | None = None,
        *,
        issuing: bool = False,
    ) -> None:
        if saves is not None:  # the caller writes them together (save_decisions)
            assert not issuing, "a code being issued is saved at once"
            saves.append(
                (
                    holder.account_id,
                    code_type.value,
                    decision.status,
                    decision.rule_version,
                    decision.reasons,
                    decision.as_of,
                )
            )
            return
        await self._repository.save_status(
            account_id=holder.account_id,
            code_type=code_type.value,
            status=decision.status,
            rule_version=decision.rule_version,
            reasons=decision.reasons,
            decided_at=decision.as_of,
            issuing=issuing,
        )

    # decisions -------------------------------------------------------------------------------

    async def decide(
        self,
        holder: HolderAccount,
        code_type: CodeType,
        reads: SharedReads | None = None,
        *,
        saves: list[StatusRow] | None = None,
        issuing: bool = False,
    ) -> StatusDecision:
        """The holder's status now, from department data or the fallback.

        Args:
            holder: Whose status.
            code_type: Which code.
            reads: The caller's own reads of the holder's department data, used instead of
                reading again (see :class:`SharedReads`).
            saves: Collects the decisions to store instead of storing each at once; the
                caller deciding several types writes them in one round trip
                (:meth:`save_decisions`).
            issuing: A health code is being issued with this decision: the holder is then one
                of those the periodic re-evaluation looks at (:mod:`codes.reevaluation`).

        Raises:
            DependencyUnavailable: transit/social security with the department down and nothing
                fresh stored.
        """
        now = dt.datetime.now(dt.UTC)
        if code_type is CodeType.HEALTH:
            return await self._health_status(holder, now, reads, saves, issuing=issuing)
        if code_type is CodeType.CITIZEN:
            return StatusDecision(status="A", source="department", as_of=now)
        try:
            if code_type is CodeType.TRANSIT:
                card: Any = await self._read(
                    holder,
                    "transport",
                    lambda idn: self._transport.card(idn, purpose="transit_code"),
                    (reads, reads.transport_card, "card", "transit_code") if reads else None,
                )
                active, reason = card.status == "active", "card_blocked"
            else:
                card = await self._read(
                    holder,
                    "socsec",
                    lambda idn: self._socsec.card(idn, purpose="socsec_code"),
                    (reads, reads.socsec_card, "card", "socsec_code") if reads else None,
                )
                active, reason = card.status == "active", "card_suspended"
        except (DepartmentError, msgspec.ValidationError):
            stored = await self._stored(holder, code_type, now)
            if stored is None:
                raise DependencyUnavailable(
                    f"The {code_type.api_name} card status cannot be read right now", retry_after=10
                ) from None
            return stored
        decision = StatusDecision(
            status="A" if active else "X", source="department", as_of=now, reasons=() if active else (reason,)
        )
        await self._save(holder, code_type, decision, saves)
        return decision

    async def save_decisions(self, saves: list[StatusRow]) -> None:
        """Store what :meth:`decide` collected in ``saves``, in one round trip."""
        await self._repository.save_statuses(saves)

    async def _health_facts(
        self, holder: HolderAccount, now: dt.datetime, reads: SharedReads | None = None
    ) -> HealthFacts | None:
        """The health department's data reduced to facts, or ``None`` if it cannot be had."""
        try:
            tests, vaccinations, risk = await asyncio.gather(
                self._read(
                    holder,
                    "health",
                    lambda idn: self._health.tests(idn, purpose="health_code"),
                    (reads, reads.health_tests, "tests", "health_code") if reads else None,
                ),
                self._read(holder, "health", lambda idn: self._health.vaccinations(idn, purpose="health_code")),
                self._read(
                    holder,
                    "health",
                    lambda idn: self._health.risk(idn, purpose="health_code"),
                    (reads, reads.health_risk, "risk", "health_code") if reads else None,
                ),
            )
            return facts_from_department(tests, vaccinations, risk, now)
        except (DepartmentError, ValueError):  # msgspec.ValidationError is a ValueError
            return None

    async def _health_status(
        self,
        holder: HolderAccount,
        now: dt.datetime,
        reads: SharedReads | None = None,
        saves: list[StatusRow] | None = None,
        *,
        issuing: bool = False,
    ) -> StatusDecision:
        ruleset = await self._rules.active()
        # The override is read while the department answers: one latency, not two.
        facts, override = await asyncio.gather(
            self._health_facts(holder, now, reads), self.override_of(holder.account_id)
        )
        if facts is None:
            stored = await self._stored(holder, CodeType.HEALTH, now)
            decision = stored or StatusDecision(
                status=FALLBACK_HEALTH_STATUS,
                source="fallback",
                as_of=now,
                reasons=(HEALTH_UNAVAILABLE_REASON,),
                rule_version=ruleset.version,
            )
        else:
            # Stored without the override: the override is applied at read time, so lifting or
            # expiring it never leaves its status behind in the stored decision.
            evaluated: Decision = evaluate(ruleset, facts, now=now)
            decision = StatusDecision(
                status=evaluated.status,
                source="department",
                as_of=now,
                reasons=evaluated.reasons,
                rule_version=evaluated.rule_version,
            )
            await self._save(holder, CodeType.HEALTH, decision, saves, issuing=issuing)
        effective = self._with_override(decision, override, now)
        if effective.source != "fallback":
            # A fallback (department unreachable) is no news for the citizen.
            await self.observed(holder.account_id, effective.status)
        return effective

    async def current(self, account_id: str, code_type: CodeType) -> StatusDecision | None:
        """The current status from stored data only (no department call): for verification.

        Health: the stored decision (or the fallback when it is stale) with the override on
        top; other types: the stored decision; citizen codes: ``A``. ``None`` when nothing is
        known for transit or social security.
        """
        now = dt.datetime.now(dt.UTC)
        if code_type is CodeType.CITIZEN:
            return StatusDecision(status="A", source="department", as_of=now)
        stored = await self._repository.last_status(account_id, code_type.value)
        fresh = stored is not None and now - stored.decided_at <= self._fresh
        if code_type is not CodeType.HEALTH:
            if stored is None:
                return None
            return StatusDecision(
                status=stored.status,
                source="last_known",
                as_of=stored.decided_at,
                reasons=tuple(stored.reasons),
            )
        if stored is not None and fresh:
            decision = StatusDecision(
                status=stored.status,
                source="last_known",
                as_of=stored.decided_at,
                reasons=tuple(stored.reasons),
                rule_version=stored.rule_version,
            )
        else:
            decision = StatusDecision(
                status=FALLBACK_HEALTH_STATUS,
                source="fallback",
                as_of=now,
                reasons=(HEALTH_UNAVAILABLE_REASON,),
                rule_version=(await self._rules.active()).version,
            )
        return self._with_override(decision, await self.override_of(account_id), now)
