"""Issuing holder codes to citizens, the ``GET /v1/me/codes`` overview, images and revocation.

A code is issued for the signed-in citizen only, at the level its type needs, with the status
decided now (:class:`codes.status.StatusResolver`). Its ``sub`` is the citizen's pseudonym for
the type. Each issue refreshes the holder cache verification reads and keeps the code as the
citizen's *current* code until its refresh time, which is what the image endpoint renders (so an
app fetching the image a few times gets the same, cached, picture).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from codes import render
from codes.holders import HolderAccount, Holders
from codes.live import CurrentCode, HolderEntry, LiveCodes
from codes.payload import CodeType, build_claims, issue_code, refresh_after
from codes.schemas import CodesOverview, CodeStatus, HolderCodeType, ImageFormat, IssuedCode
from codes.settings import CodesSettings
from codes.status import SharedReads, StatusDecision, StatusResolver, StatusRow
from core.audit import AuditBatcher, AuditEvent
from core.errors import DependencyUnavailable, RateLimited, Unauthorized
from core.keys import KeyManager
from identity.principal import Principal

__all__ = ["Issuer"]


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class Issuer:
    """Issues citizens' codes.

    Args:
        keys: The key manager (the active ``code`` key signs).
        holders: Accounts and pseudonyms.
        status: Status decisions.
        live: Redis state.
        settings: Levels, limits.
        issuer: The city's id (``iss``).
        audit: Records revocations by citizens.
    """

    def __init__(
        self,
        *,
        keys: KeyManager,
        holders: Holders,
        status: StatusResolver,
        live: LiveCodes,
        settings: CodesSettings,
        issuer: str,
        audit: AuditBatcher | None = None,
    ) -> None:
        self._keys = keys
        self._holders = holders
        self._status = status
        self._live = live
        self._settings = settings
        self._issuer = issuer
        self._audit = audit

    async def _holder(self, principal: Principal) -> HolderAccount:
        holder = await self._holders.get(principal.account_id)
        if holder is None:
            raise Unauthorized("The account no longer exists")
        return holder

    async def issue(self, principal: Principal, kind: HolderCodeType) -> IssuedCode:
        """Sign a new code of ``kind`` for the citizen.

        Raises:
            InsufficientLevel: the token's level is below what the type needs (RFC 9470).
            RateLimited: too many codes requested this minute.
            DependencyUnavailable: no status can be decided (transit/socsec department down
                and nothing fresh known).
        """
        principal.require_level(self._settings.required_level(kind.value))
        wait = await self._live.take_issue_slot(principal.account_id, kind.value, limit=self._settings.issue_per_minute)
        if wait is not None:
            raise RateLimited(wait, "Too many codes requested; use the current one until its refresh time")
        holder = await self._holder(principal)
        code_type = CodeType.parse(kind.value)
        decision, subject = await asyncio.gather(
            self._status.decide(holder, code_type, issuing=True), self._holders.register(code_type, holder.account_id)
        )
        return await self._sign(holder, kind, code_type, subject, decision)

    async def _sign(
        self, holder: HolderAccount, kind: HolderCodeType, code_type: CodeType, subject: str, decision: StatusDecision
    ) -> IssuedCode:
        now = time.time()
        claims = build_claims(
            code_type,
            issuer=self._issuer,
            subject=subject,
            status=decision.status,
            now=now,
            rule_version=decision.rule_version if code_type is CodeType.HEALTH else None,
        )
        try:
            payload = issue_code(self._keys.signer("code"), claims)
        except LookupError:
            raise DependencyUnavailable("No code-signing key is active") from None
        refresh = refresh_after(claims)
        await self._live.record_issue(
            code_type=code_type.value,
            subject=subject,
            jti=claims.jti,
            holder=HolderEntry(account_id=holder.account_id, name=holder.masked_name, status=decision.status),
            account_id=holder.account_id,
            api_name=kind.value,
            current=CurrentCode(
                payload=payload,
                status=decision.status,
                iat=claims.iat,
                exp=claims.exp,
                refresh_after=refresh,
                reasons=decision.reasons,
                rule_version=claims.rv,
            ),
            now=now,
        )
        return IssuedCode(
            type=kind,
            payload=payload,
            status=decision.status,
            issued_at=_at(claims.iat),
            expires_at=_at(claims.exp),
            refresh_after=_at(refresh),
            reasons=decision.reasons,
            rule_version=claims.rv,
            # Verifiers accept a code until exp + their clock tolerance: so long it is worth
            # showing while OneCity cannot be reached (docs/codes.md, "Offline display").
            offline_display_until=_at(claims.exp + self._settings.clock_skew_s),
        )

    async def image(self, principal: Principal, kind: HolderCodeType, fmt: ImageFormat) -> bytes:
        """The citizen's current code of ``kind`` as PNG or SVG (a new code if it is due)."""
        principal.require_level(self._settings.required_level(kind.value))
        current = await self._live.current(principal.account_id, kind.value)
        if current is not None and current.refresh_after > time.time():
            payload = current.payload
        else:
            payload = (await self.issue(principal, kind)).payload
        return await render.render(payload, fmt)

    async def overview(self, principal: Principal, reads: SharedReads | None = None) -> CodesOverview:
        """Every holder code type: available or not, the current status and why.

        Args:
            principal: The citizen.
            reads: The caller's reads of the citizen's department data in this request (the
                home screen's), decided from instead of reading again.
        """
        kinds = list(HolderCodeType)
        available = [principal.has_level(self._settings.required_level(k.value)) for k in kinds]
        holder = await self._holder(principal) if any(available) else None

        async def one(kind: HolderCodeType, allowed: bool) -> CodeStatus:
            required = self._settings.required_level(kind.value)
            if not allowed or holder is None:
                return CodeStatus(type=kind, available=False, required_level=required, source="level")
            try:
                decision = await self._status.decide(holder, CodeType.parse(kind.value), reads, saves=saves)
            except DependencyUnavailable:
                return CodeStatus(type=kind, available=True, required_level=required, source="unavailable")
            return CodeStatus(
                type=kind,
                available=True,
                required_level=required,
                status=decision.status,
                reasons=decision.reasons,
                rule_version=decision.rule_version,
                source=decision.source,
                as_of=decision.as_of,
                overridden=decision.overridden,
            )

        # The decisions are stored together: one round trip instead of one per type.
        saves: list[StatusRow] = []
        statuses = await asyncio.gather(*(one(k, a) for k, a in zip(kinds, available, strict=True)))
        await self._status.save_decisions(saves)
        return CodesOverview(codes=list(statuses))

    async def revoke_all(self, principal: Principal, kind: HolderCodeType) -> int:
        """Revoke every unexpired code of ``kind`` the citizen holds (a leaked screenshot, a
        lost phone); returns how many. The next request issues a fresh code."""
        code_type = CodeType.parse(kind.value)
        subject = self._holders.subject(code_type, principal.account_id)
        count = await self._live.revoke_all(code_type.value, subject, now=time.time())
        await self._live.drop_current(principal.account_id, kind.value)
        if self._audit is not None:
            # A revocation is a security event: written before the answer, not batched.
            await self._audit.write_now(
                AuditEvent(
                    action="codes.revoke",
                    outcome="success",
                    actor_type="citizen",
                    actor_id=principal.account_id,
                    subject_id=principal.account_id,
                    details={"code_type": kind.value, "count": count},
                )
            )
        return count
