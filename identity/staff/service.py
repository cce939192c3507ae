"""Staff sign-in: password (argon2id), then a second factor, then a short-lived token.

Step 1 checks the password and, only if it is right, returns a random *ticket* that binds
it to step 2, and starts the second factor:

- the member has a WebAuthn security key: a single-use challenge (kept with the ticket in
  Redis for ``webauthn_challenge_ttl_s``) and the options for ``navigator.credentials.get``;
  step 2 (``webauthn_step``) verifies the assertion and issues the staff access token
  (``aud``/``client_id`` :data:`STAFF_AUDIENCE`, ``roles``, ``region``, ``amr`` with
  ``hwk``). No SMS is sent and an SMS code cannot complete this sign-in.
- the member has none (new account, or a security administrator's recovery revoked their
  keys): a 6-digit code by SMS; step 2 (``otp_step``) gives an *enrolment-only* token
  (:data:`STAFF_ENROL_AUDIENCE`) that registers a key and nothing else. (With
  ``webauthn_required`` off, a full token as before: development only.)

Either ticket works once; an SMS ticket dies after a few wrong codes.

Every answer to a wrong username, wrong password or disabled account is the same 401 in
the same time (argon2 against a dummy hash), so usernames cannot be enumerated. Wrong
passwords are counted per username (short lockout) and attempts per address per hour.
Failure policy: fail closed; without Redis nobody signs in (503).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from typing import Any

from core.audit import AuditEvent, write_audit
from core.crypto import Vault
from core.errors import RateLimited, Unauthorized
from core.redis import Redis
from identity.staff.authenticators import WebAuthnCeremonies, view_of
from identity.staff.errors import AuthenticatorCloned, RegistrationFailed, SecondFactorFailed, WebAuthnRequired
from identity.staff.metrics import SECOND_FACTOR, STEP_UPS
from identity.staff.passwords import Passwords
from identity.staff.permissions import (
    STAFF_AUDIENCE,
    STAFF_ENROL_AUDIENCE,
    EnrollingStaff,
    StaffPrincipal,
    region_level,
)
from identity.staff.repository import StaffRepository, StaffRow
from identity.staff.schemas import (
    AuthenticatorList,
    AuthenticatorRegistration,
    AuthenticatorView,
    StaffOtpLogin,
    StaffOtpSent,
    StaffPasswordLogin,
    StaffProfile,
    StaffToken,
    StaffWebAuthnLogin,
    WebAuthnOptions,
)
from identity.staff.settings import StaffSettings
from identity.tokens import AccessTokens
from services.departments.sms import SmsGateway
from services.errors import DepartmentError

__all__ = ["StaffService"]

# KEYS: ticket   ARGV: candidate_hash, max_attempts
_CHECK = """
if redis.call('HGET', KEYS[1], 'k') == 'webauthn' then return {'webauthn', ''} end
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

# KEYS: ticket. Single use: whatever the answer turns out to be, the challenge is gone.
_TAKE = """
local fields = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return fields
"""

_WRONG = "Wrong username or password"
#: RFC 8176 methods: password, proof of possession of a hardware-bound key, multi-factor.
_AMR_WEBAUTHN = ["pwd", "hwk", "mfa"]


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
        self._take = redis.register_script(_TAKE)
        self.webauthn = WebAuthnCeremonies(repository=repository, redis=redis, settings=settings)

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
        await self.repository.audit(events)

    @staticmethod
    def profile_of(member: StaffRow) -> StaffProfile:
        """The profile view of a staff row."""
        return StaffProfile(
            id=member.id,
            username=member.username,
            name=member.display_name,
            roles=list(member.roles),
            region=member.region_code,
            region_level=region_level(member.region_code) or "unknown",
        )

    async def tokens_not_before(self, staff_id: str) -> float | None:
        """Unix time before which the member's tokens are refused (their roles or security
        keys changed since), or ``None``."""
        return await self.repository.tokens_not_before(staff_id)

    async def _limit(self, username: str, client_ip: str | None) -> None:
        hour = int(time.time() // 3600)
        # The address by its keyed blind index: no address in clear in a Redis key name.
        address = self._vault.blind_index(client_ip or "unknown", domain="staff-client-ip").hex()[:32]
        ip_key = f"oc:staff:ip:{address}:{hour}"
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
        member = await self.repository.by_username(request.username)
        stored = member.password_hash if member is not None and not member.disabled else None
        if not await self._passwords.verify(stored, request.password) or member is None:
            await self._count_failure(request.username)
            await self._audit(
                AuditEvent(
                    action="staff.login.password",
                    outcome="failure",
                    actor_type="anonymous",
                    subject_id=member.id if member is not None else None,
                    client_ip=client_ip,
                )
            )
            raise Unauthorized(_WRONG, error="invalid_grant")
        await self._redis.delete(self._fail_key(request.username))
        if self._passwords.needs_rehash(member.password_hash):
            await self.repository.set_password_hash(member.id, await self._passwords.hash_async(request.password))
        ticket = secrets.token_urlsafe(32)
        key = self._ticket_key(ticket)
        webauthn = await self.webauthn.sign_in_options(member.id)
        if webauthn is None and member.webauthn_blocked:
            # The last key was caught cloned: only a security administrator's recovery helps.
            await self._login_failed("webauthn", "blocked", client_ip, member.id)
            raise AuthenticatorCloned()
        if webauthn is not None:
            # An account with a security key must use it: no SMS goes out.
            challenge, options = webauthn
            ttl = self._settings.webauthn_challenge_ttl_s
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping={"k": "webauthn", "s": member.id, "c": base64.b64encode(challenge)})
                pipe.expire(key, ttl)
                await pipe.execute()
            await self._audit_password_ok(member.id, client_ip, "webauthn")
            STEP_UPS.labels("webauthn").inc()
            return StaffOtpSent(ticket=ticket, expires_in=ttl, second_factor="webauthn", webauthn=options)
        code = f"{secrets.randbelow(1_000_000):06d}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"k": "sms", "h": self._code_hash(ticket, code), "s": member.id, "n": 0})
            pipe.expire(key, self._settings.otp_ttl_s)
            await pipe.execute()
        phone = self._vault.decrypt_text(member.phone_enc, context="staff-phone")
        try:
            await self._sms.send(phone, f"【OneCity】工作人员登录验证码 {code}，5分钟内有效。请勿告诉他人。")
        except DepartmentError:
            await self._redis.delete(key)
            raise
        await self._audit_password_ok(member.id, client_ip, "sms")
        STEP_UPS.labels("sms").inc()
        return StaffOtpSent(ticket=ticket, expires_in=self._settings.otp_ttl_s)

    async def _audit_password_ok(self, staff_id: str, client_ip: str | None, second_factor: str) -> None:
        await self._audit(
            AuditEvent(
                action="staff.login.password",
                outcome="success",
                actor_type="staff",
                actor_id=staff_id,
                subject_id=staff_id,
                client_ip=client_ip,
                details={"second_factor": second_factor},
            )
        )

    async def _login_failed(self, method: str, reason: str, client_ip: str | None, staff_id: str | None = None) -> None:
        SECOND_FACTOR.labels(method, reason).inc()
        await self._audit(
            AuditEvent(
                action="staff.login",
                outcome="failure",
                actor_type="anonymous",
                subject_id=staff_id,
                client_ip=client_ip,
                details={"reason": reason, "second_factor": method},
            )
        )

    async def otp_step(self, request: StaffOtpLogin, *, client_ip: str | None) -> StaffToken:
        """Exchange ticket and code for a staff access token."""
        status, staff_id = await self._check(
            keys=[self._ticket_key(request.ticket)],
            args=[self._code_hash(request.ticket, request.otp), self._settings.otp_max_attempts],
        )
        outcome = status.decode()
        if outcome == "webauthn":
            await self._login_failed("sms", "webauthn_required", client_ip)
            raise WebAuthnRequired()
        member = await self.repository.by_id(staff_id.decode()) if outcome == "ok" else None
        if member is None or member.disabled:
            await self._login_failed("sms", outcome if outcome != "ok" else "disabled", client_ip)
            details = {
                "wrong": "The code is wrong",
                "dead": "Too many wrong codes: sign in again",
                "none": "The sign-in ticket is invalid or expired: sign in again",
            }
            raise Unauthorized(details.get(outcome, _WRONG), error="invalid_grant")
        if member.webauthn_blocked:
            await self._login_failed("sms", "blocked", client_ip, member.id)
            raise AuthenticatorCloned()
        if await self.repository.has_authenticator(member.id):
            # A key was registered after this SMS ticket was issued: the key it is.
            await self._login_failed("sms", "webauthn_required", client_ip, member.id)
            raise WebAuthnRequired()
        if self._settings.webauthn_required:
            SECOND_FACTOR.labels("sms", "enrolment").inc()
            return await self._enrolment_token(member, client_ip)
        SECOND_FACTOR.labels("sms", "success").inc()
        return await self._issue(member, ["pwd", "otp", "sms"], client_ip, {"second_factor": "sms"})

    async def webauthn_step(self, request: StaffWebAuthnLogin, *, client_ip: str | None) -> StaffToken:
        """Exchange the ticket and a security key's assertion for a staff access token.

        Raises:
            SecondFactorFailed: unknown, used or expired ticket, or an assertion that does not
                verify against the ticket's challenge and the member's keys.
            AuthenticatorCloned: the key's signature counter went backwards (key revoked).
        """
        raw: list[bytes] = await self._take(keys=[self._ticket_key(request.ticket)])
        fields = dict(zip(raw[::2], raw[1::2], strict=True))
        if fields.get(b"k") != b"webauthn":
            await self._login_failed("webauthn", "unknown_ticket", client_ip)
            raise SecondFactorFailed("The sign-in ticket is invalid, used or expired: sign in again")
        staff_id = fields[b"s"].decode()
        member = await self.repository.by_id(staff_id)
        if member is None or member.disabled:
            await self._login_failed("webauthn", "disabled", client_ip, staff_id)
            raise Unauthorized(_WRONG, error="invalid_grant")
        try:
            authenticator_id = await self.webauthn.verify_sign_in(
                staff_id, base64.b64decode(fields[b"c"]), request.credential, client_ip=client_ip
            )
        except AuthenticatorCloned:
            await self._login_failed("webauthn", "cloned", client_ip, staff_id)
            raise
        except SecondFactorFailed:
            await self._login_failed("webauthn", "failure", client_ip, staff_id)
            raise
        SECOND_FACTOR.labels("webauthn", "success").inc()
        return await self._issue(
            member, _AMR_WEBAUTHN, client_ip, {"second_factor": "webauthn", "authenticator_id": authenticator_id}
        )

    async def _enrolment_token(self, member: StaffRow, client_ip: str | None) -> StaffToken:
        profile = self.profile_of(member)
        access, ttl = self._tokens.issue(
            subject=profile.id,
            client_id=STAFF_AUDIENCE,
            audience=STAFF_ENROL_AUDIENCE,
            extra={"amr": ["pwd", "otp", "sms"]},
            ttl_s=self._settings.enrolment_token_ttl_s,
        )
        await self._audit(
            AuditEvent(
                action="staff.login.enrolment",
                outcome="success",
                actor_type="staff",
                actor_id=profile.id,
                subject_id=profile.id,
                client_ip=client_ip,
                details={"second_factor": "sms"},
            )
        )
        return StaffToken(access_token=access, expires_in=ttl, staff=profile, enrolment_only=True)

    async def _issue(
        self, member: StaffRow, amr: Sequence[str], client_ip: str | None, details: dict[str, Any]
    ) -> StaffToken:
        profile = self.profile_of(member)
        access, ttl = self._tokens.issue(
            subject=profile.id,
            client_id=STAFF_AUDIENCE,
            audience=STAFF_AUDIENCE,
            extra={"roles": profile.roles, "region": profile.region, "amr": list(amr)},
            ttl_s=self._settings.token_ttl_s,
        )
        async with self.repository.transaction() as tx:
            await self.repository.touch_login(tx, profile.id)
            await write_audit(
                tx,
                [
                    AuditEvent(
                        action="staff.login",
                        outcome="success",
                        actor_type="staff",
                        actor_id=profile.id,
                        subject_id=profile.id,
                        client_ip=client_ip,
                        details={"roles": profile.roles, "region": profile.region, **details},
                    )
                ],
            )
        return StaffToken(access_token=access, expires_in=ttl, staff=profile)

    # security keys ------------------------------------------------------------------------

    async def _enrolling_member(self, who: EnrollingStaff) -> StaffRow:
        member = await self.repository.by_id(who.staff_id)
        if member is None or member.disabled:
            raise Unauthorized("This staff account is disabled", error="invalid_token")
        return member

    async def registration_options(self, who: EnrollingStaff) -> WebAuthnOptions:
        """Options to register a security key (a new challenge each time)."""
        return await self.webauthn.registration_options(await self._enrolling_member(who))

    async def register_authenticator(
        self, who: EnrollingStaff, request: AuthenticatorRegistration, *, client_ip: str | None
    ) -> AuthenticatorView:
        """Register a security key; an enrolment-only token registers one key, once, and only
        while the account has none.

        Raises:
            RegistrationFailed: see :meth:`WebAuthnCeremonies.register`, or the enrolment
                token has registered a key already.
        """
        member = await self._enrolling_member(who)
        if who.enrolment_jti is not None:
            # It bootstraps the first key only: with a key, more are added signed in with it.
            if await self.repository.has_authenticator(member.id):
                raise RegistrationFailed("This account has a security key: sign in with it to add another")
            ttl = max(1, who.expires_at - int(time.time()) + 60)
            if not await self._redis.set(f"oc:staff:enrolled:{who.enrolment_jti}", b"1", nx=True, ex=ttl):
                raise RegistrationFailed("This enrolment token has registered a key already: sign in with it")
        return await self.webauthn.register(member.id, request, actor_id=member.id, client_ip=client_ip)

    async def authenticators(self, who: EnrollingStaff) -> AuthenticatorList:
        """The member's active security keys."""
        member = await self._enrolling_member(who)
        return AuthenticatorList(
            authenticators=[view_of(key) for key in await self.repository.active_authenticators(member.id)]
        )

    async def me(self, principal: StaffPrincipal) -> StaffProfile:
        """The signed-in staff member's profile.

        Raises:
            Unauthorized: the account no longer exists or was disabled.
        """
        member = await self.repository.by_id(principal.staff_id)
        if member is None or member.disabled:
            raise Unauthorized("This staff account is disabled", error="invalid_token")
        return self.profile_of(member)
