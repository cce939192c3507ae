"""The citizen identity service: OTP login, tokens, sessions, levels, mini-program login.

Controllers call these methods with decoded Structs and get Structs back; every rule of
the domain (limits, rotation, reuse detection, step-up) lives here, every SQL statement in
:mod:`identity.repository`, every Redis script in :mod:`identity.otp`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from core.audit import AuditEvent, write_audit
from core.crypto import Vault
from core.db import Connection
from core.errors import Forbidden, InsufficientLevel, NotFound, RateLimited, Unauthorized, UnprocessableEntity
from core.redis import Redis
from identity.errors import IdentityAlreadyBound, IdNumberBoundElsewhere, RealNameNotVerified
from identity.masking import mask_id_number, mask_name, mask_phone
from identity.metrics import LOGIN_DELAYS, REGISTRY_CALLS, STEP_UPS
from identity.otp import OtpOutcome, OtpStore
from identity.pii import Pii
from identity.principal import Principal
from identity.repository import AccountRow, IdentityRepository
from identity.revocation import GRANTS, SESSIONS, RevocationSet
from identity.schemas import (
    Account,
    Device,
    IdentityCorrectionRequest,
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
from identity.tokens import AccessTokens
from services.departments import Departments
from services.errors import DepartmentError, DepartmentRejectedError
from services.idnumber import valid_id_number

__all__ = [
    "AccountFacts",
    "Applicant",
    "IdentityService",
    "LoginChannel",
    "OtpLogin",
    "SecurityNotice",
    "new_refresh_token",
    "refresh_token_hash",
]

log = logging.getLogger("onecity.identity")

_NOT_VERIFIED = "The name and ID number could not be verified for this account"
_ALREADY_BOUND = (
    "This account is bound to another identity; a change of identity goes through POST /v1/me/verification/correction"
)
_REFRESH_PREFIX = "rt."


def new_refresh_token() -> str:
    """A fresh opaque refresh token (``rt.`` + 256 random bits)."""
    return _REFRESH_PREFIX + secrets.token_urlsafe(32)


def refresh_token_hash(vault: Vault, token: str) -> bytes:
    """What ``refresh_tokens.token_hash`` stores of a refresh token (never the token)."""
    return vault.keyed_hash(token, domain="refresh-token")


@dataclass(frozen=True)
class SecurityNotice:
    """Something security-relevant happened to an account (for the message centre).

    Attributes:
        account_id: Whose account.
        kind: ``new_device`` (a login on a device never seen on this account),
            ``binding_attempt`` (someone tried to bind this account's identity to theirs), or
            ``identity_corrected`` (the account's bound identity was corrected).
        event: Names the producing event (its dedupe key): one message per event.
        device_name: The new device's own name (chosen by its user; no PII of ours).
    """

    account_id: str
    kind: str
    event: str
    device_name: str | None = None


#: Where a citizen logs in with an OTP: the app, or the OIDC login page in a browser.
LoginChannel = Literal["app", "browser"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OtpLogin:
    """A successful OTP login.

    Attributes:
        account_id: The account (created at ``L2`` by a first login).
        held_back: The account must prove its bound identity again before it shows personal
            data (a possibly recycled number): an app session carries ``reverify``, a browser
            login gets no browser session.
        tokens: The app session's tokens (channel ``app`` only).
    """

    account_id: str
    held_back: bool
    tokens: TokenPair | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountFacts:
    """What other domains may know of an account to serve it (codes: status, masked name on
    a verifier's screen, the region for staff); ``id_number`` is for department calls only,
    never logged or returned."""

    account_id: str
    level: str
    masked_name: str | None
    id_number: str | None
    region_code: str | None


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

    def facts(self) -> AccountFacts:
        """What a domain that does not act for the citizen may know (the name masked)."""
        return AccountFacts(
            account_id=str(self.account_id),
            level=self.level,
            masked_name=mask_name(self.name) if self.name else None,
            id_number=self.id_number,
            region_code=self.region_code,
        )


class IdentityService:
    """Everything about who a citizen is and how they are signed in.

    Args:
        repository: SQL.
        redis: OTP state, limits, link tokens.
        vault: Encrypts phones, names and ID numbers; keys blind indexes and token hashes.
        tokens: Access token issuer/verifier.
        departments: SMS gateway, registry, liveness and mini-program platform clients.
        settings: Lifetimes and limits.
        revocations: The app's revocation set: ended sessions are revoked and checked there.
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
        revocations: RevocationSet,
    ) -> None:
        self.repository = repository
        self.redis = redis
        self.vault = vault
        self.tokens = tokens
        self.departments = departments
        self.settings = settings
        self.pii = Pii(vault)
        self.otp = OtpStore(redis, vault, settings)
        #: Called after an identity correction with the principal and the revoked partner
        #: grant ids: other domains end what they keep for the old identity (the app wires
        #: partner token revocation and the codes domain's live codes here; identity cannot
        #: import codes).
        self.on_identity_corrected: list[Callable[[Principal, list[str]], Awaitable[None]]] = []
        #: Called with a :class:`SecurityNotice` when something security-relevant happened to
        #: an account (a login on a new device, someone trying to bind its identity): the app
        #: wires the message centre here (identity cannot import it). ``conn`` is the open
        #: transaction of the event, or ``None`` when there is none.
        self.on_security_event: list[Callable[[Connection | None, SecurityNotice], Awaitable[None]]] = []
        #: Called after the commit of a transaction that produced security notices.
        self.after_security_events: list[Callable[[str], Awaitable[None]]] = []
        self.revocations = revocations

    # helpers ------------------------------------------------------------------------------

    async def _security(self, conn: Connection | None, notice: SecurityNotice) -> None:
        for hook in self.on_security_event:
            await hook(conn, notice)

    async def _security_committed(self, account_id: str) -> None:
        for hook in self.after_security_events:
            await hook(account_id)

    def _phone_index(self, phone: str) -> bytes:
        return self.pii.phone.index(phone)

    def _refresh_hash(self, token: str) -> bytes:
        return refresh_token_hash(self.vault, token)

    def account_view(self, account: AccountRow, *, reverify: bool = False) -> Account:
        """The masked account the app may see; without name and ID number while the session
        must re-verify (whoever holds the phone now may not be the person bound to it)."""
        name = None if reverify else account.name_enc
        id_number = None if reverify else account.id_number_enc
        return Account(
            id=account.id,
            level=account.level,
            phone=mask_phone(self.pii.phone.open(account.phone_enc)),
            name=mask_name(self.pii.name.open(name)) if name else None,
            id_number=mask_id_number(self.pii.id_number.open(id_number)) if id_number else None,
            created_at=account.created_at,
            reverification_required=reverify,
        )

    async def _audit(self, *events: AuditEvent) -> None:
        await self.repository.audit(events)

    # authentication -----------------------------------------------------------------------

    async def authenticate(self, token: str) -> Principal:
        """Verify an access token and its session; the request's principal or 401."""
        claims = await self.tokens.verify(token)
        if claims.sid is None or claims.acr is None or claims.client_id != self.settings.audience:
            raise Unauthorized("This token is not a citizen app token", error="invalid_token")
        if await self.revocations.is_revoked((SESSIONS, claims.sid)):
            raise Unauthorized("The session has ended", error="invalid_token")
        return Principal(claims)

    # OTP login ----------------------------------------------------------------------------

    async def send_otp(self, phone: str, *, client_ip: str | None, device_id: str | None = None) -> OtpSent:
        """Send a login code by SMS, within the per-phone and per-address limits.

        ``device_id`` (optional) lets a device that logged in to this phone before draw on
        the owner's daily budget, which strangers cannot spend (see :mod:`identity.otp`).
        """
        index = self._phone_index(phone)
        refusal = await self.otp.allow_ip(client_ip or "unknown")
        issued = None
        if refusal is None:
            issued, refusal = await self.otp.issue(index, client_ip=client_ip, device_id=device_id)
        if refusal is not None or issued is None:
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
            }
            raise RateLimited(refusal.retry_after_s, messages[refusal.reason], extensions={"reason": refusal.reason})
        try:
            await self.departments.sms.send(phone, f"【OneCity】验证码 {issued.code}，5分钟内有效。请勿告诉他人。")
        except DepartmentError:
            await self.otp.withdraw(index, issued, client_ip=client_ip)
            raise
        await self._audit(
            AuditEvent(
                action="auth.otp.send",
                outcome="success",
                actor_type="anonymous",
                client_ip=client_ip,
                details={"budget": "known" if issued.known else "stranger"},
            )
        )
        return OtpSent(expires_in=self.settings.otp_ttl_s, resend_after=self.settings.otp_resend_after_s)

    async def _check_login_code(
        self, phone: str, code: str, *, client_ip: str | None, device_id: str | None, method: str
    ) -> None:
        """Check a login code with every limit and failure event of OTP login; raise if it fails.

        Raises:
            RateLimited: ``reason: delayed``: this address must wait before its next check
                of this phone (``Retry-After``).
            Unauthorized: ``reason`` ``wrong`` (``attempts_left``), ``dead`` or ``no_code``.
        """
        check = await self.otp.check(self._phone_index(phone), code, client_ip=client_ip, device_id=device_id)
        if check.outcome is OtpOutcome.OK:
            return
        details: dict[str, Any] = {"reason": check.outcome.value}
        if method != "otp":
            details["method"] = method
        events = [
            AuditEvent(
                action="auth.login", outcome="failure", actor_type="anonymous", client_ip=client_ip, details=details
            )
        ]
        if check.delay_imposed_s:
            # The successor of the old phone-wide lockout: only this address waits.
            LOGIN_DELAYS.inc()
            events.append(
                AuditEvent(
                    action="auth.lockout",
                    outcome="success",
                    actor_type="system",
                    client_ip=client_ip,
                    details={"scope": "phone+address", "delay_s": check.delay_imposed_s, "method": method},
                )
            )
        await self._audit(*events)
        if check.outcome is OtpOutcome.DELAYED:
            raise RateLimited(
                check.retry_after_s,
                "Too many failed attempts from this address; wait a moment before trying again",
                extensions={"reason": "delayed"},
            )
        messages = {
            OtpOutcome.WRONG: "The code is wrong",
            OtpOutcome.DEAD: "Too many wrong attempts: this code is no longer valid, request a new one",
            OtpOutcome.NO_CODE: "No valid code for this phone: request a new one",
        }
        extensions: dict[str, Any] = {"reason": check.outcome.value, "attempts_left": check.remaining}
        if check.delay_imposed_s:
            extensions["retry_after"] = check.delay_imposed_s
        raise Unauthorized(messages[check.outcome], error="invalid_grant", extensions=extensions)

    async def _start_session(
        self,
        tx: Connection,
        *,
        account_id: str,
        device: Device,
        method: str,
        client_ip: str | None,
        reverify_required: bool = False,
    ) -> tuple[str, str]:
        session_id = await self.repository.create_session(
            tx,
            account_id=account_id,
            device_id=device.id,
            device_name=device.name,
            platform=device.platform,
            auth_method=method,
            absolute_ttl_s=self.settings.session_absolute_ttl_s,
            reverify_required=reverify_required,
        )
        refresh = new_refresh_token()
        await self.repository.insert_refresh_token(
            tx,
            token_hash=self._refresh_hash(refresh),
            session_id=session_id,
            account_id=account_id,
            idle_ttl_s=self.settings.refresh_idle_ttl_s,
        )
        await write_audit(
            tx,
            [
                AuditEvent(
                    action="auth.login",
                    outcome="success",
                    actor_type="citizen",
                    actor_id=account_id,
                    subject_id=account_id,
                    client_ip=client_ip,
                    details={
                        "method": method,
                        "platform": device.platform,
                        "session_id": session_id,
                        **({"reverify_required": True} if reverify_required else {}),
                    },
                )
            ],
        )
        return session_id, refresh

    async def _needs_reverification(self, tx: Connection, account: AccountRow, device_id: str) -> bool:
        """A recycled number? A new device reaching a dormant account bound to a person."""
        if account.level == "L2":
            return False
        return await self.repository.dormant_on_new_device(
            tx, account_id=account.id, device_id=device_id, idle_days=self.settings.recycled_number_after_days
        )

    def _issue_access(self, *, account_id: str, session_id: str, level: str, reverify: bool) -> tuple[str, int]:
        return self.tokens.issue(
            subject=account_id,
            session_id=session_id,
            level=level,
            extra={"reverify": True} if reverify else None,
        )

    def _pair(self, account: AccountRow, *, session_id: str, refresh: str, reverify: bool = False) -> TokenPair:
        access, ttl = self._issue_access(
            account_id=account.id, session_id=session_id, level=account.level, reverify=reverify
        )
        return TokenPair(
            access_token=access,
            refresh_token=refresh,
            expires_in=ttl,
            account=self.account_view(account, reverify=reverify),
        )

    async def login_with_otp(
        self,
        phone: str,
        otp: str,
        *,
        channel: LoginChannel,
        client_ip: str | None,
        device: Device | None = None,
        link_token: str | None = None,
        client_id: str | None = None,
    ) -> OtpLogin:
        """Log in with phone + OTP: the one login of a citizen, for every channel.

        The code is checked with the same limits and events whatever the channel (per phone
        and address delays; ``auth.login`` failures, ``auth.lockout`` when a delay is set), the
        account is created at ``L2`` the first time, and a dormant bound account reached from
        a new device is held back (a possibly recycled number). Then:

        * ``app`` (``POST /v1/auth/login``): an app session bound to ``device`` with its
          token pair (``link_token`` also links a mini-program identity);
        * ``browser`` (the OIDC login page of ``client_id``): no app session; the caller
          starts its browser session unless the login is held back. A browser is never one
          of the account's app devices.

        Raises:
            RateLimited: ``reason: delayed``: this address must wait before its next check
                of this phone (``Retry-After``).
            Unauthorized: ``reason`` ``wrong`` (``attempts_left``), ``dead`` or ``no_code``;
                or the link token is invalid.
        """
        if (channel == "app") != (device is not None):
            raise ValueError("an app login names its device, a browser login none")
        device_id = device.id if device is not None else None
        await self._check_login_code(
            phone, otp, client_ip=client_ip, device_id=device_id, method="otp" if device is not None else "oidc-browser"
        )
        link: dict[str, Any] | None = None
        if link_token is not None:
            link = await self._take_link_token(link_token)
        async with self.repository.transaction() as tx:
            account = await self.repository.upsert_account(
                tx, phone_enc=self.pii.phone.seal(phone), phone_index=self._phone_index(phone)
            )
            account_id = account.id
            if link is not None:
                await self.repository.link(
                    tx,
                    platform=link["platform"],
                    openid_index=bytes.fromhex(link["openid_index"]),
                    account_id=account_id,
                )
            # A browser ("") is never one of the account's app devices: any dormant bound account
            # is held back there, as signing in would release the old owner's claims to a partner.
            held_back = await self._needs_reverification(tx, account, device_id or "")
            if device is None:
                await write_audit(
                    tx,
                    [
                        AuditEvent(
                            action="auth.login",
                            outcome="held_back" if held_back else "success",
                            actor_type="citizen",
                            actor_id=account_id,
                            subject_id=account_id,
                            client_ip=client_ip,
                            details={
                                "method": "oidc-browser",
                                "client_id": client_id,
                                **({"reason": "reverification_required"} if held_back else {}),
                            },
                        )
                    ],
                )
                return OtpLogin(account_id=account_id, held_back=held_back)
            new_device = await self.repository.is_new_device(tx, account_id=account_id, device_id=device.id)
            session_id, refresh = await self._start_session(
                tx,
                account_id=account_id,
                device=device,
                method="otp+miniprogram" if link is not None else "otp",
                client_ip=client_ip,
                reverify_required=held_back,
            )
            if new_device:
                await self._security(
                    tx,
                    SecurityNotice(
                        account_id=account_id, kind="new_device", event=f"login:{session_id}", device_name=device.name
                    ),
                )
        if new_device:
            await self._security_committed(account_id)
        tokens = self._pair(account, session_id=session_id, refresh=refresh, reverify=held_back)
        return OtpLogin(account_id=account_id, held_back=held_back, tokens=tokens)

    # refresh ------------------------------------------------------------------------------

    async def refresh(self, refresh_token: str, *, client_ip: str | None) -> TokenPair:
        """Rotate a refresh token. Presenting a spent one ends its whole family (session)."""
        old_hash = self._refresh_hash(refresh_token)
        new_token = new_refresh_token()
        rotated = await self.repository.rotate_refresh_token(
            old_hash=old_hash,
            new_hash=self._refresh_hash(new_token),
            idle_ttl_s=self.settings.refresh_idle_ttl_s,
            client_ip=client_ip,
        )
        if rotated is not None:
            reverify = rotated.reverify_required
            account = rotated.account
            access, ttl = self._issue_access(
                account_id=account.id, session_id=rotated.session_id, level=account.level, reverify=reverify
            )
            view = self.account_view(account, reverify=reverify)
            return TokenPair(access_token=access, refresh_token=new_token, expires_in=ttl, account=view)
        spent = await self.repository.find_spent_token(old_hash)
        if spent is not None and spent.rotated:
            # Reuse of a rotated token: someone holds a copy. End the family (RFC 9700 4.14.2).
            async with self.repository.transaction() as tx:
                await self.repository.end_session(
                    tx, session_id=spent.session_id, account_id=spent.account_id, reason="refresh_reuse"
                )
                await write_audit(
                    tx,
                    [
                        AuditEvent(
                            action="auth.refresh.reuse",
                            outcome="denied",
                            actor_type="anonymous",
                            subject_id=spent.account_id,
                            client_ip=client_ip,
                            details={"session_id": spent.session_id},
                        )
                    ],
                )
            await self.revocations.revoke(SESSIONS, [spent.session_id])
            log.warning("refresh token reuse: session revoked")
        else:
            await self._audit(
                AuditEvent(action="auth.refresh", outcome="failure", actor_type="anonymous", client_ip=client_ip)
            )
        raise Unauthorized("The refresh token is invalid or has been used", error="invalid_grant")

    # sessions -----------------------------------------------------------------------------

    async def end_session(self, principal: Principal, session_id: str, *, reason: str, client_ip: str | None) -> None:
        """End one of the citizen's sessions (their own current one for logout)."""
        async with self.repository.transaction() as tx:
            ended = await self.repository.end_session(
                tx, session_id=session_id, account_id=principal.account_id, reason=reason
            )
            if not ended:
                raise NotFound("No such active session")
            await write_audit(
                tx,
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
        await self.revocations.revoke(SESSIONS, [session_id])

    async def sessions(self, principal: Principal) -> SessionList:
        """The citizen's live sessions, the current one flagged."""
        live = await self.repository.list_sessions(principal.account_id)
        return SessionList(
            sessions=[
                SessionInfo(
                    id=s.id,
                    device_name=s.device_name,
                    platform=s.platform,
                    created_at=s.created_at,
                    last_seen_at=s.last_seen_at,
                    current=s.id == principal.session_id,
                )
                for s in live
            ]
        )

    # account and levels -------------------------------------------------------------------

    async def me(self, principal: Principal) -> Account:
        """The citizen's own account, masked."""
        account = await self.repository.get_account(principal.account_id)
        if account is None:
            raise Unauthorized("The account no longer exists")
        return self.account_view(account, reverify=principal.reverify)

    async def _count_today(self, key: str) -> int:
        """INCR a daily counter (one key, one slot); its new value."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, 86400)
            count, _ = await pipe.execute()
        return int(count)

    async def _count_real_name_attempt(self, account_id: str, id_number_index: bytes) -> None:
        """One registry attempt for the account and for the ID number today, or 429.

        Counted before the registry is asked, success or not: the limits bound how fast
        anyone can probe the registry through OneCity (no guessing names for an ID number,
        no sweeping ID numbers), whatever the answers.
        """
        day = int(time.time() // 86400)
        keys = (f"oc:rn:acct:{account_id}:{day}", f"oc:rn:id:{id_number_index.hex()[:32]}:{day}")
        # Not one MULTI or pipeline: the two keys live in different Redis Cluster slots; each
        # INCR is atomic.
        by_account, by_id_number = await asyncio.gather(*(self._count_today(key) for key in keys))
        if (
            by_account > self.settings.real_name_attempts_per_account
            or by_id_number > self.settings.real_name_attempts_per_id_number
        ):
            # A refused attempt spends neither budget (the two keys live in different
            # Cluster slots, so this is a compensation rather than one script).
            await asyncio.gather(*(self.redis.decr(key) for key in keys))
            await self._audit(
                AuditEvent(
                    action="level.real_name",
                    outcome="denied",
                    actor_type="citizen",
                    actor_id=account_id,
                    subject_id=account_id,
                    details={"reason": "attempts"},
                )
            )
            raise RateLimited(
                86400 - int(time.time()) % 86400,
                "Too many real-name attempts today",
                extensions={"reason": "real_name_attempts"},
            )

    async def _registry_match(self, name: str, id_number: str, *, purpose: str) -> bool:
        try:
            match = await self.departments.registry.verify(name, id_number)
        except DepartmentError:
            REGISTRY_CALLS.labels(purpose, "error").inc()
            raise
        REGISTRY_CALLS.labels(purpose, "match" if match.match else "no_match").inc()
        return match.match

    async def _bound_elsewhere(self, principal: Principal, id_number_index: bytes, *, client_ip: str | None) -> None:
        """A registry match for an ID number bound to another account: tell its owner, and
        answer the caller exactly as for "no match" (no oracle of who has an account)."""
        owner = await self.repository.account_of_id_number(id_number_index)
        await self._audit(
            AuditEvent(
                action="level.real_name",
                outcome="failure",
                actor_type="citizen",
                actor_id=principal.account_id,
                subject_id=principal.account_id,
                client_ip=client_ip,
            ),
            # For the owner of the bound account: someone else tried their identity.
            AuditEvent(
                action="identity.binding_attempt",
                outcome="denied",
                actor_type="citizen",
                actor_id=principal.account_id,
                subject_id=owner,
                client_ip=client_ip,
                details={"reason": "id_number_bound_to_this_account"},
            ),
        )
        if owner is not None:
            # One message per attempting session: retries of the same form do not flood it.
            await self._security(
                None,
                SecurityNotice(account_id=str(owner), kind="binding_attempt", event=f"bind:{principal.session_id}"),
            )
            await self._security_committed(str(owner))
        raise RealNameNotVerified(_NOT_VERIFIED)

    async def verify_real_name(
        self, principal: Principal, request: RealNameRequest, *, client_ip: str | None
    ) -> Account:
        """Bind a registry-checked identity to the account: level ``L3``.

        * A bound account (L3/L4) re-submitting *its own* identity: 200, nothing changes
          (idempotent); in a session held back as a possibly recycled number, this is the
          proof that clears it. Any other identity: 409 ``identity-already-bound`` (a
          change of identity is :meth:`correct_identity`).
        * Attempts are limited per account and per ID number a day (429).
        * "No match" and "matches, but bound to another account" are one answer
          (422 ``real-name-not-verified``); the owner of the bound account gets an audit event.
        """
        if not valid_id_number(request.id_number):
            raise UnprocessableEntity(
                "The ID number is not valid (GB 11643 check digit or birth date)",
                extensions={"field": "id_number"},
            )
        id_index = self.pii.id_number.index(request.id_number)
        account = await self.repository.get_account(principal.account_id)
        if account is None:
            raise Unauthorized("The account no longer exists")
        if account.id_number_index is not None:
            return await self._resubmitted(principal, account, request, id_index, client_ip=client_ip)
        await self._count_real_name_attempt(principal.account_id, id_index)
        event = AuditEvent(
            action="level.real_name",
            outcome="success",
            actor_type="citizen",
            actor_id=principal.account_id,
            subject_id=principal.account_id,
            client_ip=client_ip,
        )
        if not await self._registry_match(request.name, request.id_number, purpose="real_name"):
            STEP_UPS.labels("real_name", "failure").inc()
            await self._audit(msgspec.structs.replace(event, outcome="failure"))
            raise RealNameNotVerified(_NOT_VERIFIED)
        try:
            async with self.repository.transaction() as tx:
                level = await self.repository.set_real_name(
                    tx,
                    account_id=principal.account_id,
                    name_enc=self.pii.name.seal(request.name),
                    id_number_enc=self.pii.id_number.seal(request.id_number),
                    id_number_index=id_index,
                    region_code=request.id_number[:6],
                )
                if level is None:  # bound concurrently by another request
                    raise IdentityAlreadyBound(_ALREADY_BOUND)
                await write_audit(
                    tx,
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
        except IdNumberBoundElsewhere:
            STEP_UPS.labels("real_name", "failure").inc()
            await self._bound_elsewhere(principal, id_index, client_ip=client_ip)
        STEP_UPS.labels("real_name", "success").inc()
        return await self.me(principal)

    async def _resubmitted(
        self,
        principal: Principal,
        account: AccountRow,
        request: RealNameRequest,
        id_index: bytes,
        *,
        client_ip: str | None,
    ) -> Account:
        """Real-name on a bound account: its own identity again is harmless, another is 409."""
        same = account.id_number_index == id_index and self._bound_name_is(account, request.name)
        if not same:
            if principal.reverify:
                # Guessing the bound identity from a held-back session: limited like any attempt.
                await self._count_real_name_attempt(principal.account_id, id_index)
                STEP_UPS.labels("reverified", "failure").inc()
                await self._audit(
                    AuditEvent(
                        action="identity.reverify",
                        outcome="failure",
                        actor_type="citizen",
                        actor_id=principal.account_id,
                        subject_id=principal.account_id,
                        client_ip=client_ip,
                        details={"method": "real_name", "session_id": principal.session_id},
                    )
                )
                raise RealNameNotVerified(_NOT_VERIFIED)
            await self._audit(
                AuditEvent(
                    action="level.real_name",
                    outcome="denied",
                    actor_type="citizen",
                    actor_id=principal.account_id,
                    subject_id=principal.account_id,
                    client_ip=client_ip,
                    details={"reason": "already_bound"},
                )
            )
            raise IdentityAlreadyBound(_ALREADY_BOUND)
        if principal.reverify:
            await self._count_real_name_attempt(principal.account_id, id_index)
            # The stored identity was registry-checked when it was bound; knowing it in full
            # is the proof asked of a held-back session (the registry itself is not asked).
            await self._reverified(principal, method="real_name", client_ip=client_ip)
        return await self.me(principal)

    def _bound_name_is(self, account: AccountRow, name: str) -> bool:
        """Whether ``name`` is the real name bound to ``account``."""
        return account.name_enc is not None and self.pii.name.open(account.name_enc) == name

    async def _reverified(self, principal: Principal, *, method: str, client_ip: str | None) -> None:
        async with self.repository.transaction() as tx:
            cleared = await self.repository.clear_reverification(
                tx, session_id=principal.session_id, account_id=principal.account_id
            )
            if cleared:
                await write_audit(
                    tx,
                    [
                        AuditEvent(
                            action="identity.reverify",
                            outcome="success",
                            actor_type="citizen",
                            actor_id=principal.account_id,
                            subject_id=principal.account_id,
                            client_ip=client_ip,
                            details={"method": method, "session_id": principal.session_id},
                        )
                    ],
                )
        if cleared:
            STEP_UPS.labels("reverified", "success").inc()

    async def accounts_in_region(self, region: str, *, after: str | None, limit: int) -> list[str]:
        """A page of the ids of accounts registered in ``region`` (for region-scoped notices);
        ids only: a caller that needs more asks per account."""
        return await self.repository.accounts_in_region(region, after=after, limit=limit)

    async def applicant(self, account_id: str) -> Applicant | None:
        """The decrypted identity of an account, for the service hall; ``None`` if it is gone."""
        account = await self.repository.get_account(account_id)
        if account is None:
            return None
        name, id_number = account.name_enc, account.id_number_enc
        return Applicant(
            account_id=account.id,
            level=account.level,
            phone=self.pii.phone.open(account.phone_enc),
            name=self.pii.name.open(name) if name else None,
            id_number=self.pii.id_number.open(id_number) if id_number else None,
            region_code=account.region_code,
        )

    async def account_facts(self, account_id: str) -> AccountFacts | None:
        """The level, region, masked name and ID number of an account; ``None`` if it is gone."""
        applicant = await self.applicant(account_id)
        return applicant.facts() if applicant is not None else None

    async def id_number_of(self, account_id: str) -> str | None:
        """The decrypted ID number of an ``L3``+ account, for department calls only."""
        account = await self.repository.get_account(account_id)
        if account is None or account.id_number_enc is None:
            return None
        return self.pii.id_number.open(account.id_number_enc)

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
            STEP_UPS.labels("real_person", "failure").inc()
            raise Forbidden("The liveness check did not pass")
        STEP_UPS.labels("real_person", "success").inc()
        if principal.reverify:
            # The person bound to the account is the one holding the phone now.
            await self._reverified(principal, method="real_person", client_ip=client_ip)
        async with self.repository.transaction() as tx:
            await self.repository.set_level(tx, principal.account_id, "L4")
            await write_audit(
                tx,
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

    async def correct_identity(
        self, principal: Principal, request: IdentityCorrectionRequest, *, client_ip: str | None
    ) -> Account:
        """A real change of the bound identity (a correction), audited.

        The new identity must pass the registry *and* a liveness check for the new ID number
        (real-person, L4) in this request; only then is the old binding released, in the
        same transaction that writes the new one. The level is the one the new identity
        earned here (``L4``), never carried over. Everything granted under the old identity
        ends: the account's other sessions (refresh tokens die, access tokens are revoked
        at once), partner grants with their refresh tokens and unredeemed codes, partner
        consents, and code statuses decided for the old identity. The calling session stays
        (it is the one that just proved the new identity); refresh it for the new ``acr``.
        """
        principal.require_confirmed()
        if not valid_id_number(request.id_number):
            raise UnprocessableEntity(
                "The ID number is not valid (GB 11643 check digit or birth date)",
                extensions={"field": "id_number"},
            )
        account = await self.repository.get_account(principal.account_id)
        if account is None:
            raise Unauthorized("The account no longer exists")
        if account.id_number_index is None:
            raise InsufficientLevel("L3", "Only a bound (L3) account can correct its identity: verify first")
        id_index = self.pii.id_number.index(request.id_number)
        if account.id_number_index == id_index and self._bound_name_is(account, request.name):
            return await self.me(principal)  # nothing to correct
        await self._count_real_name_attempt(principal.account_id, id_index)
        if not await self._registry_match(request.name, request.id_number, purpose="correction"):
            STEP_UPS.labels("correction", "failure").inc()
            await self._audit(self._correction_event(principal, "failure", client_ip, {"reason": "registry"}))
            raise RealNameNotVerified(_NOT_VERIFIED)
        result = await self.departments.liveness.check(request.liveness_token, id_number=request.id_number)
        if not result.passed:
            STEP_UPS.labels("correction", "failure").inc()
            await self._audit(self._correction_event(principal, "failure", client_ip, {"reason": "liveness"}))
            raise Forbidden("The liveness check did not pass")
        try:
            async with self.repository.transaction() as tx:
                ended = await self.repository.correct_identity(
                    tx,
                    account_id=principal.account_id,
                    keep_session_id=principal.session_id,
                    name_enc=self.pii.name.seal(request.name),
                    id_number_enc=self.pii.id_number.seal(request.id_number),
                    id_number_index=id_index,
                    region_code=request.id_number[:6],
                    level="L4",
                )
                await write_audit(
                    tx,
                    [
                        self._correction_event(
                            principal,
                            "success",
                            client_ip,
                            {
                                "previous_level": account.level,
                                "level": "L4",
                                "ended_sessions": len(ended.sessions),
                                "revoked_grants": len(ended.grants),
                            },
                        )
                    ],
                )
                # The citizen is told in the correction's own transaction: a correction they did
                # not make is an account takeover, and the other sessions that could have seen it
                # in the app have just ended (the message is pushed, or sent by SMS).
                await self._security(
                    tx,
                    SecurityNotice(
                        account_id=principal.account_id,
                        kind="identity_corrected",
                        event=f"corrected:{secrets.token_hex(8)}",
                    ),
                )
        except IdNumberBoundElsewhere:
            STEP_UPS.labels("correction", "failure").inc()
            await self._bound_elsewhere(principal, id_index, client_ip=client_ip)
        # Access tokens of the ended sessions and of the revoked partner grants (``sid`` =
        # grant id) stop at once, not when they expire; live codes are ended by the hooks.
        await self.revocations.revoke(SESSIONS, ended.sessions)
        await self.revocations.revoke(GRANTS, ended.grants)
        await self._security_committed(principal.account_id)
        for hook in self.on_identity_corrected:
            await hook(principal, ended.grants)
        STEP_UPS.labels("correction", "success").inc()
        return await self.me(principal)

    @staticmethod
    def _correction_event(
        principal: Principal, outcome: str, client_ip: str | None, details: dict[str, Any]
    ) -> AuditEvent:
        return AuditEvent(
            action="identity.corrected",
            outcome=outcome,
            actor_type="citizen",
            actor_id=principal.account_id,
            subject_id=principal.account_id,
            client_ip=client_ip,
            details=details,
        )

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
        async with self.repository.transaction() as tx:
            session_id, refresh = await self._start_session(
                tx, account_id=account_id, device=device, method="miniprogram", client_ip=client_ip
            )
        account = await self.repository.get_account(account_id)
        assert account is not None
        return self._pair(account, session_id=session_id, refresh=refresh)

    def _link_key(self, link_token: str) -> str:
        return "oc:mplink:" + self.vault.keyed_hash(link_token, domain="link-token").hex()

    async def _take_link_token(self, link_token: str) -> dict[str, Any]:
        raw = await self.redis.getdel(self._link_key(link_token))
        if raw is None:
            raise Unauthorized("The link token is invalid or expired", error="invalid_grant")
        platform, openid_index = (raw if isinstance(raw, bytes) else raw.encode()).decode().split("|", 1)
        return {"platform": platform, "openid_index": openid_index}
