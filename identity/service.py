"""The citizen identity service: OTP login, tokens, sessions, levels, mini-program login.

Controllers call these methods with decoded Structs and get Structs back; every rule of
the domain (limits, rotation, reuse detection, step-up) lives here, every SQL statement in
:mod:`identity.repository`, every Redis script in :mod:`identity.otp`.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

import asyncpg

from core.audit import AuditEvent, write_audit
from core.crypto import Vault
from core.db import Connection
from core.errors import Conflict, Forbidden, InsufficientLevel, NotFound, RateLimited, Unauthorized, UnprocessableEntity
from core.redis import Redis
from identity.masking import mask_id_number, mask_name, mask_phone
from identity.otp import OtpOutcome, OtpStore
from identity.repository import IdentityRepository, Row
from identity.revocation import SessionRevocations
from identity.schemas import (
    Account,
    Device,
    LoginRequest,
    MiniProgramLinkRequired,
    MiniProgramLoginRequest,
    OtpSent,
    RealNameRequest,
    RealPersonRequest,
    SessionInfo,
    SessionList,
    TokenPair,
)
from identity.settings import IdentitySettings
from identity.tokens import AccessClaims, AccessTokens
from services.departments import Departments
from services.errors import DepartmentError, DepartmentRejectedError
from services.idnumber import valid_id_number

__all__ = ["Applicant", "IdentityService", "Principal"]

log = logging.getLogger("onecity.identity")

_LEVEL_RANK = {"L2": 2, "L3": 3, "L4": 4}
_REFRESH_PREFIX = "rt."


class Principal:
    """The authenticated citizen of a request, from a verified, unrevoked access token."""

    __slots__ = ("account_id", "claims", "level", "session_id")

    def __init__(self, claims: AccessClaims) -> None:
        assert claims.sid is not None
        assert claims.acr is not None
        self.claims = claims
        self.account_id = claims.sub
        self.session_id: str = claims.sid
        self.level: str = claims.acr

    def require_level(self, level: str) -> None:
        """Raise the RFC 9470 step-up challenge when the token's level is below ``level``."""
        if _LEVEL_RANK.get(self.level, 0) < _LEVEL_RANK[level]:
            raise InsufficientLevel(level)


@dataclass(frozen=True, slots=True, kw_only=True)
class Applicant:
    """What other domains may know of a citizen to act on their behalf (the service hall's
    prefill and case submission); clear values, so never logged or returned unmasked."""

    account_id: str
    level: str
    phone: str
    name: str | None
    id_number: str | None
    region_code: str | None


class IdentityService:
    """Everything about who a citizen is and how they are signed in.

    Args:
        repository: SQL.
        redis: OTP state, limits, revocations, link tokens.
        vault: Encrypts phones, names and ID numbers; keys blind indexes and token hashes.
        tokens: Access token issuer/verifier.
        departments: SMS gateway, registry, liveness and mini-program platform clients.
        settings: Lifetimes and limits.
    """

    def __init__(
        self,
        *,
        repository: IdentityRepository,
        redis: Redis,
        vault: Vault,
        tokens: AccessTokens,
        departments: Departments,
        settings: IdentitySettings,
    ) -> None:
        self.repository = repository
        self.redis = redis
        self.vault = vault
        self.tokens = tokens
        self.departments = departments
        self.settings = settings
        self.otp = OtpStore(redis, vault, settings)
        self.revocations = SessionRevocations(
            redis, repository.pool, window_s=settings.access_token_ttl_s + settings.clock_skew_s
        )

    # helpers ------------------------------------------------------------------------------

    def _phone_index(self, phone: str) -> bytes:
        return self.vault.blind_index(phone, domain="phone")

    def _refresh_hash(self, token: str) -> bytes:
        return self.vault.keyed_hash(token, domain="refresh-token")

    @staticmethod
    def _new_refresh_token() -> str:
        return _REFRESH_PREFIX + secrets.token_urlsafe(32)

    def account_view(self, row: Row) -> Account:
        """The masked account the app may see."""
        name = row["name_enc"]
        id_number = row["id_number_enc"]
        return Account(
            id=row["id"] if isinstance(row["id"], str) else str(row["id"]),
            level=row["level"],
            phone=mask_phone(self.vault.decrypt_text(row["phone_enc"], context="phone")),
            name=mask_name(self.vault.decrypt_text(name, context="name")) if name else None,
            id_number=mask_id_number(self.vault.decrypt_text(id_number, context="id_number")) if id_number else None,
            created_at=row["created_at"],
        )

    async def _audit(self, *events: AuditEvent) -> None:
        await write_audit(self.repository.pool, events)

    # authentication -----------------------------------------------------------------------

    async def authenticate(self, token: str) -> Principal:
        """Verify an access token and its session; the request's principal or 401."""
        claims = await self.tokens.verify(token)
        if claims.sid is None or claims.acr is None or claims.client_id != self.settings.audience:
            raise Unauthorized("This token is not a citizen app token", error="invalid_token")
        if await self.revocations.is_revoked(claims.sid):
            raise Unauthorized("The session has ended", error="invalid_token")
        return Principal(claims)

    # OTP login ----------------------------------------------------------------------------

    async def send_otp(self, phone: str, *, client_ip: str | None) -> OtpSent:
        """Send a login code by SMS, within the per-phone and per-address limits."""
        index = self._phone_index(phone)
        refusal = await self.otp.allow_ip(client_ip or "unknown")
        code: str | None = None
        if refusal is None:
            code, refusal = await self.otp.issue(index)
        if refusal is not None or code is None:
            assert refusal is not None
            await self._audit(
                AuditEvent(
                    action="auth.otp.send",
                    outcome="denied",
                    actor_type="anonymous",
                    client_ip=client_ip,
                    details={"reason": refusal.reason},
                )
            )
            messages = {
                "cooldown": "A code was sent less than a minute ago",
                "daily": "Too many codes for this phone today",
                "ip": "Too many codes requested from this address",
                "locked": "Too many failed attempts; this phone is locked for a short while",
            }
            raise RateLimited(refusal.retry_after_s, messages[refusal.reason], extensions={"reason": refusal.reason})
        try:
            await self.departments.sms.send(phone, f"【OneCity】验证码 {code}，5分钟内有效。请勿告诉他人。")
        except DepartmentError:
            await self.otp.withdraw(index)
            raise
        await self._audit(
            AuditEvent(action="auth.otp.send", outcome="success", actor_type="anonymous", client_ip=client_ip)
        )
        return OtpSent(expires_in=self.settings.otp_ttl_s, resend_after=self.settings.otp_resend_after_s)

    async def _check_otp(self, phone: str, code: str, *, client_ip: str | None) -> None:
        check = await self.otp.check(self._phone_index(phone), code)
        if check.outcome is OtpOutcome.OK:
            return
        events = [
            AuditEvent(
                action="auth.login",
                outcome="failure",
                actor_type="anonymous",
                client_ip=client_ip,
                details={"reason": check.outcome.value},
            )
        ]
        if check.outcome is OtpOutcome.LOCKED_NOW:
            events.append(
                AuditEvent(action="auth.lockout", outcome="success", actor_type="system", client_ip=client_ip)
            )
        await self._audit(*events)
        if check.outcome in (OtpOutcome.LOCKED, OtpOutcome.LOCKED_NOW):
            raise RateLimited(
                check.retry_after_s,
                "Too many failed attempts; this phone is locked for a short while",
                extensions={"reason": "locked"},
            )
        details = {
            OtpOutcome.WRONG: "The code is wrong",
            OtpOutcome.DEAD: "Too many wrong attempts: this code is no longer valid, request a new one",
            OtpOutcome.NO_CODE: "No valid code for this phone: request a new one",
        }
        raise Unauthorized(
            details[check.outcome],
            error="invalid_grant",
            extensions={"reason": check.outcome.value, "attempts_left": check.remaining},
        )

    async def _start_session(
        self,
        conn: Connection,
        *,
        account_id: str,
        device: Device,
        method: str,
        client_ip: str | None,
    ) -> tuple[str, str]:
        session_id = await self.repository.create_session(
            conn,
            account_id=account_id,
            device_id=device.id,
            device_name=device.name,
            platform=device.platform,
            auth_method=method,
            absolute_ttl_s=self.settings.session_absolute_ttl_s,
        )
        refresh = self._new_refresh_token()
        await self.repository.insert_refresh_token(
            conn,
            token_hash=self._refresh_hash(refresh),
            session_id=session_id,
            account_id=account_id,
            idle_ttl_s=self.settings.refresh_idle_ttl_s,
        )
        await write_audit(
            conn,
            [
                AuditEvent(
                    action="auth.login",
                    outcome="success",
                    actor_type="citizen",
                    actor_id=account_id,
                    subject_id=account_id,
                    client_ip=client_ip,
                    details={"method": method, "platform": device.platform, "session_id": session_id},
                )
            ],
        )
        return session_id, refresh

    def _pair(self, row: Row, *, session_id: str, refresh: str) -> TokenPair:
        access, ttl = self.tokens.issue(subject=str(row["id"]), session_id=session_id, level=row["level"])
        return TokenPair(access_token=access, refresh_token=refresh, expires_in=ttl, account=self.account_view(row))

    async def login(self, request: LoginRequest, *, client_ip: str | None) -> TokenPair:
        """Log in with phone + OTP: the account is created at ``L2`` the first time."""
        await self._check_otp(request.phone, request.otp, client_ip=client_ip)
        link: dict[str, Any] | None = None
        if request.link_token is not None:
            link = await self._take_link_token(request.link_token)
        index = self._phone_index(request.phone)
        async with self.repository.pool.acquire() as conn, conn.transaction():
            row = await self.repository.upsert_account(
                conn, phone_enc=self.vault.encrypt_text(request.phone, context="phone"), phone_index=index
            )
            if link is not None:
                await self.repository.link(
                    conn,
                    platform=link["platform"],
                    openid_index=bytes.fromhex(link["openid_index"]),
                    account_id=row["id"],
                )
            method = "otp+miniprogram" if link is not None else "otp"
            session_id, refresh = await self._start_session(
                conn, account_id=row["id"], device=request.device, method=method, client_ip=client_ip
            )
        return self._pair(row, session_id=session_id, refresh=refresh)

    # refresh ------------------------------------------------------------------------------

    async def refresh(self, refresh_token: str, *, client_ip: str | None) -> TokenPair:
        """Rotate a refresh token. Presenting a spent one ends its whole family (session)."""
        old_hash = self._refresh_hash(refresh_token)
        new_token = self._new_refresh_token()
        row = await self.repository.rotate_refresh_token(
            old_hash=old_hash,
            new_hash=self._refresh_hash(new_token),
            idle_ttl_s=self.settings.refresh_idle_ttl_s,
            client_ip=client_ip,
        )
        if row is not None:
            access, ttl = self.tokens.issue(subject=row["account_id"], session_id=row["session_id"], level=row["level"])
            account = self.account_view(
                {**dict(row.items()), "id": row["account_id"]}  # type: ignore[arg-type]
            )
            return TokenPair(access_token=access, refresh_token=new_token, expires_in=ttl, account=account)
        spent = await self.repository.find_spent_token(old_hash)
        if spent is not None and spent["rotated"]:
            # Reuse of a rotated token: someone holds a copy. End the family (RFC 9700 4.14.2).
            async with self.repository.pool.acquire() as conn, conn.transaction():
                await self.repository.end_session(
                    conn, session_id=spent["session_id"], account_id=spent["account_id"], reason="refresh_reuse"
                )
                await write_audit(
                    conn,
                    [
                        AuditEvent(
                            action="auth.refresh.reuse",
                            outcome="denied",
                            actor_type="anonymous",
                            subject_id=spent["account_id"],
                            client_ip=client_ip,
                            details={"session_id": spent["session_id"]},
                        )
                    ],
                )
            await self.revocations.revoke([spent["session_id"]])
            log.warning("refresh token reuse: session revoked")
        else:
            await self._audit(
                AuditEvent(action="auth.refresh", outcome="failure", actor_type="anonymous", client_ip=client_ip)
            )
        raise Unauthorized("The refresh token is invalid or has been used", error="invalid_grant")

    # sessions -----------------------------------------------------------------------------

    async def end_session(self, principal: Principal, session_id: str, *, reason: str, client_ip: str | None) -> None:
        """End one of the citizen's sessions (their own current one for logout)."""
        async with self.repository.pool.acquire() as conn, conn.transaction():
            ended = await self.repository.end_session(
                conn, session_id=session_id, account_id=principal.account_id, reason=reason
            )
            if not ended:
                raise NotFound("No such active session")
            await write_audit(
                conn,
                [
                    AuditEvent(
                        action="auth.logout" if reason == "logout" else "session.ended",
                        outcome="success",
                        actor_type="citizen",
                        actor_id=principal.account_id,
                        subject_id=principal.account_id,
                        client_ip=client_ip,
                        details={"session_id": session_id},
                    )
                ],
            )
        await self.revocations.revoke([session_id])

    async def sessions(self, principal: Principal) -> SessionList:
        """The citizen's live sessions, the current one flagged."""
        rows = await self.repository.list_sessions(principal.account_id)
        return SessionList(
            sessions=[
                SessionInfo(
                    id=r["id"],
                    device_name=r["device_name"],
                    platform=r["platform"],
                    created_at=r["created_at"],
                    last_seen_at=r["last_seen_at"],
                    current=r["id"] == principal.session_id,
                )
                for r in rows
            ]
        )

    # account and levels -------------------------------------------------------------------

    async def me(self, principal: Principal) -> Account:
        """The citizen's own account, masked."""
        row = await self.repository.get_account(principal.account_id)
        if row is None:
            raise Unauthorized("The account no longer exists")
        return self.account_view(row)

    async def verify_real_name(
        self, principal: Principal, request: RealNameRequest, *, client_ip: str | None
    ) -> Account:
        """Check the ID number's check digit, then the registry; on a match, level ``L3``."""
        if not valid_id_number(request.id_number):
            raise UnprocessableEntity(
                "The ID number is not valid (GB 11643 check digit or birth date)",
                extensions={"field": "id_number"},
            )
        match = await self.departments.registry.verify(request.name, request.id_number)
        event = AuditEvent(
            action="level.real_name",
            outcome="success" if match.match else "failure",
            actor_type="citizen",
            actor_id=principal.account_id,
            subject_id=principal.account_id,
            client_ip=client_ip,
        )
        if not match.match:
            await self._audit(event)
            raise UnprocessableEntity("The name and ID number do not match the population registry")
        try:
            async with self.repository.pool.acquire() as conn, conn.transaction():
                level = await self.repository.set_real_name(
                    conn,
                    account_id=principal.account_id,
                    name_enc=self.vault.encrypt_text(request.name, context="name"),
                    id_number_enc=self.vault.encrypt_text(request.id_number, context="id_number"),
                    id_number_index=self.vault.blind_index(request.id_number, domain="id_number"),
                    region_code=request.id_number[:6],
                )
                await write_audit(
                    conn,
                    [
                        event,
                        AuditEvent(
                            action="level.raised",
                            outcome="success",
                            actor_type="citizen",
                            actor_id=principal.account_id,
                            subject_id=principal.account_id,
                            client_ip=client_ip,
                            details={"level": level},
                        ),
                    ],
                )
        except asyncpg.UniqueViolationError:
            await self._audit(
                AuditEvent(
                    action="level.real_name",
                    outcome="denied",
                    actor_type="citizen",
                    actor_id=principal.account_id,
                    subject_id=principal.account_id,
                    client_ip=client_ip,
                    details={"reason": "id_number_in_use"},
                )
            )
            raise Conflict("This ID number is already verified on another account") from None
        return await self.me(principal)

    async def applicant(self, account_id: str) -> Applicant | None:
        """The decrypted identity of an account, for the service hall; ``None`` if it is gone."""
        row = await self.repository.get_account(account_id)
        if row is None:
            return None
        name, id_number = row["name_enc"], row["id_number_enc"]
        return Applicant(
            account_id=row["id"],
            level=row["level"],
            phone=self.vault.decrypt_text(row["phone_enc"], context="phone"),
            name=self.vault.decrypt_text(name, context="name") if name else None,
            id_number=self.vault.decrypt_text(id_number, context="id_number") if id_number else None,
            region_code=row["region_code"],
        )

    async def id_number_of(self, account_id: str) -> str | None:
        """The decrypted ID number of an ``L3``+ account, for department calls only."""
        row = await self.repository.get_account(account_id)
        if row is None or row["id_number_enc"] is None:
            return None
        return self.vault.decrypt_text(row["id_number_enc"], context="id_number")

    async def verify_real_person(
        self, principal: Principal, request: RealPersonRequest, *, client_ip: str | None
    ) -> Account:
        """Liveness check against the real-name identity; on a pass, level ``L4``."""
        id_number = await self.id_number_of(principal.account_id)
        if id_number is None:
            raise InsufficientLevel("L3", "Real-name verification (L3) comes first")
        result = await self.departments.liveness.check(request.liveness_token, id_number=id_number)
        if not result.passed:
            await self._audit(
                AuditEvent(
                    action="level.real_person",
                    outcome="failure",
                    actor_type="citizen",
                    actor_id=principal.account_id,
                    subject_id=principal.account_id,
                    client_ip=client_ip,
                )
            )
            raise Forbidden("The liveness check did not pass")
        async with self.repository.pool.acquire() as conn, conn.transaction():
            await self.repository.set_level(conn, principal.account_id, "L4")
            await write_audit(
                conn,
                [
                    AuditEvent(
                        action="level.raised",
                        outcome="success",
                        actor_type="citizen",
                        actor_id=principal.account_id,
                        subject_id=principal.account_id,
                        client_ip=client_ip,
                        details={"level": "L4"},
                    )
                ],
            )
        return await self.me(principal)

    # mini-program -------------------------------------------------------------------------

    async def miniprogram_login(
        self, request: MiniProgramLoginRequest, *, client_ip: str | None
    ) -> TokenPair | MiniProgramLinkRequired:
        """Exchange the platform code; log in if linked, else ask for an OTP-proved link."""
        try:
            session = await self.departments.miniprogram.code2session(request.code)
        except DepartmentRejectedError:
            raise Unauthorized("The mini-program login code is invalid or used", error="invalid_grant") from None
        openid_index = self.vault.blind_index(f"{request.platform}:{session.openid}", domain="miniprogram")
        account_id = await self.repository.find_link(request.platform, openid_index)
        if account_id is None:
            link_token = "lk." + secrets.token_urlsafe(24)
            await self.redis.set(
                self._link_key(link_token),
                f"{request.platform}|{openid_index.hex()}".encode(),
                ex=self.settings.link_token_ttl_s,
            )
            return MiniProgramLinkRequired(
                link_required=True, link_token=link_token, expires_in=self.settings.link_token_ttl_s
            )
        device = request.device or Device(
            id=f"{request.platform}-miniprogram", name=request.platform, platform=request.platform
        )
        async with self.repository.pool.acquire() as conn, conn.transaction():
            session_id, refresh = await self._start_session(
                conn, account_id=account_id, device=device, method="miniprogram", client_ip=client_ip
            )
        row = await self.repository.get_account(account_id)
        assert row is not None
        return self._pair(row, session_id=session_id, refresh=refresh)

    def _link_key(self, link_token: str) -> str:
        return "oc:mplink:" + self.vault.keyed_hash(link_token, domain="link-token").hex()

    async def _take_link_token(self, link_token: str) -> dict[str, Any]:
        raw = await self.redis.getdel(self._link_key(link_token))
        if raw is None:
            raise Unauthorized("The link token is invalid or expired", error="invalid_grant")
        platform, openid_index = (raw if isinstance(raw, bytes) else raw.encode()).decode().split("|", 1)
        return {"platform": platform, "openid_index": openid_index}
