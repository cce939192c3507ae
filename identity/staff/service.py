"""Staff sign-in: password (argon2id), then a one-time code by SMS, then a short-lived token.

Step 1 checks the password and, only if it is right, sends a 6-digit code to the phone on
record and returns a random *ticket*; step 2 exchanges ticket and code for a staff access
token (``aud``/``client_id`` :data:`STAFF_AUDIENCE`, ``roles``, ``region``). The ticket binds
the two steps, so a code alone is worthless, and dies after one use or a few wrong codes.

Every answer to a wrong username, wrong password or disabled account is the same 401 in
the same time (argon2 against a dummy hash), so usernames cannot be enumerated. Wrong
passwords are counted per username (short lockout) and attempts per address per hour.
Failure policy: fail closed; without Redis nobody signs in (503).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from core.audit import AuditEvent, write_audit
from core.crypto import Vault
from core.errors import RateLimited, Unauthorized
from core.redis import Redis
from identity.staff.passwords import Passwords
from identity.staff.permissions import STAFF_AUDIENCE, StaffPrincipal, region_level
from identity.staff.repository import Row, StaffRepository
from identity.staff.schemas import StaffOtpLogin, StaffOtpSent, StaffPasswordLogin, StaffProfile, StaffToken
from identity.staff.settings import StaffSettings
from identity.tokens import AccessTokens
from services.departments.sms import SmsGateway
from services.errors import DepartmentError

__all__ = ["StaffService"]

# KEYS: ticket   ARGV: candidate_hash, max_attempts
_CHECK = """
local stored = redis.call('HGET', KEYS[1], 'h')
if not stored then return {'none', ''} end
if stored == ARGV[1] then
  local staff_id = redis.call('HGET', KEYS[1], 's')
  redis.call('DEL', KEYS[1])
  return {'ok', staff_id}
end
local tries = redis.call('HINCRBY', KEYS[1], 'n', 1)
if tries >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return {'dead', ''}
end
return {'wrong', ''}
"""

_WRONG = "Wrong username or password"


class StaffService:
    """Staff sign-in and profile.

    Args:
        repository: SQL.
        redis: Tickets, codes and limits.
        vault: Decrypts staff phones; keys the code hashes.
        tokens: Access token issuer.
        sms: The SMS gateway client (same as citizens' codes).
        passwords: argon2 hashing.
        settings: Lifetimes and limits.
    """

    def __init__(
        self,
        *,
        repository: StaffRepository,
        redis: Redis,
        vault: Vault,
        tokens: AccessTokens,
        sms: SmsGateway,
        passwords: Passwords,
        settings: StaffSettings,
    ) -> None:
        self.repository = repository
        self._redis = redis
        self._vault = vault
        self._tokens = tokens
        self._sms = sms
        self._passwords = passwords
        self._settings = settings
        self._code_key = vault.derive(b"onecity/staff/otp/v1")
        self._check = redis.register_script(_CHECK)

    # helpers ------------------------------------------------------------------------------

    def _code_hash(self, ticket: str, code: str) -> str:
        return hmac.new(self._code_key, f"{ticket}:{code}".encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def _ticket_key(ticket: str) -> str:
        return "oc:staff:ticket:" + hashlib.sha256(ticket.encode()).hexdigest()

    @staticmethod
    def _fail_key(username: str) -> str:
        return f"oc:staff:fail:{username}"

    async def _audit(self, *events: AuditEvent) -> None:
        await write_audit(self.repository.pool, events)

    @staticmethod
    def profile_of(row: Row) -> StaffProfile:
        """The profile view of a staff row."""
        return StaffProfile(
            id=row["id"],
            username=row["username"],
            name=row["display_name"],
            roles=list(row["roles"]),
            region=row["region_code"],
            region_level=region_level(row["region_code"]) or "unknown",
        )

    async def _limit(self, username: str, client_ip: str | None) -> None:
        hour = int(time.time() // 3600)
        ip_key = f"oc:staff:ip:{client_ip or 'unknown'}:{hour}"
        # Two single-key transactions, not one MULTI: the address and the username live in
        # different Redis Cluster slots (a MULTI across them is refused there).
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(ip_key)
            pipe.expire(ip_key, 3600)
            count, _ = await pipe.execute()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self._fail_key(username))
            pipe.ttl(self._fail_key(username))
            failures, ttl = await pipe.execute()
        if count > self._settings.logins_per_ip_per_hour:
            raise RateLimited(3600 - int(time.time()) % 3600, "Too many sign-in attempts from this address")
        if failures is not None and int(failures) >= self._settings.password_failures:
            raise RateLimited(max(1, int(ttl)), "Too many wrong passwords; this account is locked for a short while")

    async def _count_failure(self, username: str) -> None:
        key = self._fail_key(username)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.ttl(key)
            failures, ttl = await pipe.execute()
        if int(failures) >= self._settings.password_failures:
            await self._redis.expire(key, self._settings.password_lockout_s)
        elif ttl < 0:
            await self._redis.expire(key, self._settings.password_window_s)

    # sign-in ------------------------------------------------------------------------------

    async def password_step(self, request: StaffPasswordLogin, *, client_ip: str | None) -> StaffOtpSent:
        """Check the password; send the SMS code; return the ticket."""
        await self._limit(request.username, client_ip)
        row = await self.repository.by_username(request.username)
        stored = row["password_hash"] if row is not None and not row["disabled"] else None
        if not await self._passwords.verify(stored, request.password) or row is None:
            await self._count_failure(request.username)
            await self._audit(
                AuditEvent(
                    action="staff.login.password",
                    outcome="failure",
                    actor_type="anonymous",
                    subject_id=row["id"] if row is not None else None,
                    client_ip=client_ip,
                )
            )
            raise Unauthorized(_WRONG, error="invalid_grant")
        await self._redis.delete(self._fail_key(request.username))
        if self._passwords.needs_rehash(row["password_hash"]):
            await self.repository.set_password_hash(row["id"], await self._passwords.hash_async(request.password))
        ticket = secrets.token_urlsafe(32)
        code = f"{secrets.randbelow(1_000_000):06d}"
        key = self._ticket_key(ticket)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"h": self._code_hash(ticket, code), "s": row["id"], "n": 0})
            pipe.expire(key, self._settings.otp_ttl_s)
            await pipe.execute()
        phone = self._vault.decrypt_text(row["phone_enc"], context="staff-phone")
        try:
            await self._sms.send(phone, f"【OneCity】工作人员登录验证码 {code}，5分钟内有效。请勿告诉他人。")
        except DepartmentError:
            await self._redis.delete(key)
            raise
        await self._audit(
            AuditEvent(
                action="staff.login.password",
                outcome="success",
                actor_type="staff",
                actor_id=row["id"],
                subject_id=row["id"],
                client_ip=client_ip,
            )
        )
        return StaffOtpSent(ticket=ticket, expires_in=self._settings.otp_ttl_s)

    async def otp_step(self, request: StaffOtpLogin, *, client_ip: str | None) -> StaffToken:
        """Exchange ticket and code for a staff access token."""
        status, staff_id = await self._check(
            keys=[self._ticket_key(request.ticket)],
            args=[self._code_hash(request.ticket, request.otp), self._settings.otp_max_attempts],
        )
        outcome = status.decode()
        row = await self.repository.by_id(staff_id.decode()) if outcome == "ok" else None
        if row is None or row["disabled"]:
            await self._audit(
                AuditEvent(
                    action="staff.login",
                    outcome="failure",
                    actor_type="anonymous",
                    client_ip=client_ip,
                    details={"reason": outcome if outcome != "ok" else "disabled"},
                )
            )
            details = {
                "wrong": "The code is wrong",
                "dead": "Too many wrong codes: sign in again",
                "none": "The sign-in ticket is invalid or expired: sign in again",
            }
            raise Unauthorized(details.get(outcome, _WRONG), error="invalid_grant")
        profile = self.profile_of(row)
        access, ttl = self._tokens.issue(
            subject=profile.id,
            client_id=STAFF_AUDIENCE,
            audience=STAFF_AUDIENCE,
            extra={"roles": profile.roles, "region": profile.region, "amr": ["pwd", "otp", "sms"]},
            ttl_s=self._settings.token_ttl_s,
        )
        async with self.repository.pool.acquire() as conn, conn.transaction():
            await self.repository.touch_login(conn, profile.id)
            await write_audit(
                conn,
                [
                    AuditEvent(
                        action="staff.login",
                        outcome="success",
                        actor_type="staff",
                        actor_id=profile.id,
                        subject_id=profile.id,
                        client_ip=client_ip,
                        details={"roles": profile.roles, "region": profile.region},
                    )
                ],
            )
        return StaffToken(access_token=access, expires_in=ttl, staff=profile)

    async def me(self, principal: StaffPrincipal) -> StaffProfile:
        """The signed-in staff member's profile.

        Raises:
            Unauthorized: the account no longer exists or was disabled.
        """
        row = await self.repository.by_id(principal.staff_id)
        if row is None or row["disabled"]:
            raise Unauthorized("This staff account is disabled", error="invalid_token")
        return self.profile_of(row)
