"""The authorization endpoint's rules, shared by the app (``POST``) and the browser (``GET``).

Order matters (RFC 6749 section 4.1.2.1): the client and its redirect URI are checked first
and, if either is wrong, the error is *shown* and never redirected (an open redirector would
otherwise send citizens anywhere). Every later error is redirected to the registered URI
with ``error`` and ``state``. Codes are 256-bit random strings stored as a keyed hash, live at
most 60 seconds and carry the PKCE challenge (S256 only: ``plain`` would let anyone who sees
the request redeem the code).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from core.audit import AuditEvent, write_audit
from core.crypto import Vault
from core.structs import FrozenStruct
from identity.oidc.clients import Client, ClientRegistry
from identity.oidc.repository import OidcRepository
from identity.oidc.scopes import CITIZEN_SCOPES, SCOPES, parse_scope
from identity.oidc.settings import OidcSettings
from identity.oidc.uris import with_params

__all__ = [
    "AMR_OF_METHOD",
    "AuthorizationParams",
    "Authorizer",
    "RedirectableError",
    "UnsafeAuthorizationRequest",
]

#: RFC 8176 method references for each way a citizen can have signed in.
AMR_OF_METHOD: Mapping[str, tuple[str, ...]] = {
    "otp": ("otp", "sms"),
    "otp+miniprogram": ("otp", "sms", "mp"),
    "miniprogram": ("mp",),
    "oidc-browser": ("otp", "sms"),
}
_PROMPTS = frozenset({"none", "login", "consent", "select_account"})
# Used codes are kept this long after expiry, so a late replay is still recognised as reuse.
_CODE_KEEP_S = 3600


class UnsafeAuthorizationRequest(Exception):
    """The client or redirect URI is wrong: show this, never redirect."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RedirectableError(Exception):
    """An authorization error to report to the client at its (verified) redirect URI."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


class AuthorizationParams(FrozenStruct, frozen=True):
    """A validated authorization request."""

    client: Client
    redirect_uri: str
    scopes: tuple[str, ...]
    code_challenge: str
    state: str | None = None
    nonce: str | None = None
    prompt: frozenset[str] = frozenset()
    max_age: int | None = None
    dpop_jkt: str | None = None  # a pushed request's DPoP key: the code is bound to it

    @property
    def wants_full_name_choice(self) -> bool:
        """Whether the consent screen offers "share my full name"."""
        return "profile" in self.scopes


class Authorizer:
    """Validates authorization requests, records consent and issues codes.

    Args:
        repository: SQL.
        registry: Client look-up.
        vault: Keyed hashes of codes.
        settings: Code lifetime.
        issuer: The provider's issuer (the ``iss`` authorization response parameter).
    """

    def __init__(
        self,
        *,
        repository: OidcRepository,
        registry: ClientRegistry,
        vault: Vault,
        settings: OidcSettings,
        issuer: str,
    ) -> None:
        self.repository = repository
        self.registry = registry
        self._vault = vault
        self._settings = settings
        self.issuer = issuer

    def code_hash(self, code: str) -> bytes:
        """The keyed hash a code is stored and found by."""
        return self._vault.keyed_hash(code, domain="oauth-code")

    # validation ---------------------------------------------------------------------------

    async def client_and_redirect(self, client_id: str | None, redirect_uri: str | None) -> Client:
        """The client, if it exists, may use codes, and registered exactly this redirect URI.

        Raises:
            UnsafeAuthorizationRequest: otherwise (to be shown, not redirected).
        """
        client = await self.registry.get(client_id) if client_id and len(client_id) <= 64 else None
        if client is None:
            raise UnsafeAuthorizationRequest("Unknown or disabled client.")
        if not redirect_uri or redirect_uri not in client.redirect_uris:
            raise UnsafeAuthorizationRequest("The redirect URI is not registered for this client.")
        return client

    def validate(
        self,
        client: Client,
        redirect_uri: str,
        *,
        response_type: str | None,
        scope: str | None,
        code_challenge: str | None,
        code_challenge_method: str | None,
        state: str | None,
        nonce: str | None,
        prompt: str | None = None,
        max_age: str | None = None,
        request_object: bool = False,
    ) -> AuthorizationParams:
        """Check everything after the client and redirect URI.

        Raises:
            RedirectableError: with the RFC 6749 / OIDC error code to send back.
        """
        if request_object:
            raise RedirectableError("request_not_supported", "Request objects are not supported")
        if response_type != "code":
            raise RedirectableError("unsupported_response_type", "Only response_type=code is supported")
        if "authorization_code" not in client.grant_types:
            raise RedirectableError("unauthorized_client", "This client may not use the authorization code flow")
        if not code_challenge:
            raise RedirectableError("invalid_request", "PKCE is required: send code_challenge (S256)")
        if code_challenge_method != "S256":
            raise RedirectableError("invalid_request", "code_challenge_method must be S256")
        if (
            len(code_challenge) != 43
            or not all(c.isalnum() or c in "-_" for c in code_challenge)
            or not code_challenge.isascii()
        ):
            raise RedirectableError("invalid_request", "code_challenge must be 43 base64url characters (S256)")
        scopes = parse_scope(scope)
        if not scopes:
            raise RedirectableError("invalid_scope", "Ask for at least one scope")
        if any(s not in CITIZEN_SCOPES or s not in client.scopes for s in scopes):
            raise RedirectableError("invalid_scope", "A requested scope is unknown or not allowed for this client")
        for value in (state, nonce):
            if value is not None and (len(value) > 512 or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)):
                raise RedirectableError("invalid_request", "state and nonce: at most 512 printable characters")
        prompts = frozenset((prompt or "").split())
        if not prompts <= _PROMPTS or ("none" in prompts and len(prompts) > 1):
            raise RedirectableError("invalid_request", "Unsupported prompt value")
        age: int | None = None
        if max_age is not None:
            if not max_age.isdigit() or len(max_age) > 9:
                raise RedirectableError("invalid_request", "max_age must be a non-negative integer")
            age = int(max_age)
        return AuthorizationParams(
            client=client,
            redirect_uri=redirect_uri,
            scopes=scopes,
            code_challenge=code_challenge,
            state=state,
            nonce=nonce,
            prompt=prompts,
            max_age=age,
        )

    def error_redirect(self, redirect_uri: str, state: str | None, error: str, description: str) -> str:
        """The redirect URI carrying an error response (RFC 6749 section 4.1.2.1, RFC 9207)."""
        return with_params(
            redirect_uri, {"error": error, "error_description": description, "state": state, "iss": self.issuer}
        )

    # consent ------------------------------------------------------------------------------

    async def consents(self, account_id: str, client_id: str) -> dict[str, dict[str, Any]]:
        """The scopes (with options) the citizen already shares with the client."""
        return await self.repository.consents_of(account_id, client_id)

    @staticmethod
    def missing_consent(params: AuthorizationParams, existing: Mapping[str, Any]) -> list[str]:
        """Requested scopes the citizen has not consented to yet."""
        return [s for s in params.scopes if s not in existing]

    @staticmethod
    def describe(scopes: Sequence[str]) -> list[tuple[str, str, str]]:
        """(scope, English, Chinese) descriptions for a consent screen."""
        return [(s, SCOPES[s].description, SCOPES[s].description_zh) for s in scopes if s in SCOPES]

    async def deny(self, params: AuthorizationParams, *, account_id: str, channel: str, client_ip: str | None) -> str:
        """Record that the citizen denied the request; return the ``access_denied`` redirect URL."""
        await self.repository.audit(
            [
                AuditEvent(
                    action="oidc.authorize",
                    outcome="denied",
                    actor_type="citizen",
                    actor_id=account_id,
                    subject_id=account_id,
                    client_ip=client_ip,
                    details={"client_id": params.client.client_id, "channel": channel},
                )
            ]
        )
        return self.error_redirect(params.redirect_uri, params.state, "access_denied", "The citizen denied the request")

    async def current_level(self, account_id: str) -> str | None:
        """The account's identity level now, or ``None`` if it no longer exists."""
        return await self.repository.account_level(account_id)

    # codes --------------------------------------------------------------------------------

    async def complete(
        self,
        params: AuthorizationParams,
        *,
        account_id: str,
        acr: str,
        amr: Sequence[str],
        auth_time: int,
        share_full_name: bool | None,
        channel: str,
        client_ip: str | None,
    ) -> str:
        """Record consent to the requested scopes and issue a code; return the redirect URL.

        Args:
            params: The validated request.
            account_id: The citizen.
            acr: Their identity level.
            amr: How they authenticated.
            auth_time: When they authenticated (Unix seconds).
            share_full_name: The citizen's choice for ``profile`` now, or ``None`` to keep
                the choice recorded earlier (default: masked).
            channel: ``app`` or ``browser`` (audit).
            client_ip: The citizen's address (audit).
        """
        client = params.client
        existing = await self.repository.consents_of(account_id, client.client_id)
        options: dict[str, dict[str, Any]] = {}
        for scope in params.scopes:
            opts = dict(existing.get(scope, {}))
            if scope == "profile" and share_full_name is not None:
                opts["full_name"] = share_full_name
            if scope not in existing or opts != existing[scope]:
                options[scope] = opts
        full_name = bool({**existing, **options}.get("profile", {}).get("full_name", False))
        code = secrets.token_urlsafe(32)
        async with self.repository.transaction() as tx:
            if options:
                await self.repository.record_consents(
                    tx, account_id=account_id, client_id=client.client_id, options=options
                )
            await self.repository.insert_code(
                tx,
                code_hash=self.code_hash(code),
                client_id=client.client_id,
                account_id=account_id,
                redirect_uri=params.redirect_uri,
                scope=" ".join(params.scopes),
                claims={"full_name": full_name} if "profile" in params.scopes else {},
                nonce=params.nonce,
                code_challenge=params.code_challenge,
                acr=acr,
                amr=amr,
                auth_time=auth_time,
                ttl_s=self._settings.code_ttl_s,
                dpop_jkt=params.dpop_jkt,
            )
            # Housekeeping on a low-volume path keeps the table small without a scheduler.
            if secrets.randbelow(50) == 0:
                await self.repository.purge_codes(tx, keep_s=_CODE_KEEP_S)
            events = [
                AuditEvent(
                    action="oidc.authorize",
                    outcome="success",
                    actor_type="citizen",
                    actor_id=account_id,
                    subject_id=account_id,
                    client_ip=client_ip,
                    details={"client_id": client.client_id, "scope": " ".join(params.scopes), "channel": channel},
                )
            ]
            if options:
                events.append(
                    AuditEvent(
                        action="oidc.consent.granted",
                        outcome="success",
                        actor_type="citizen",
                        actor_id=account_id,
                        subject_id=account_id,
                        client_ip=client_ip,
                        details={"client_id": client.client_id, "scopes": sorted(options), "full_name": full_name},
                    )
                )
            await write_audit(tx, events)
        return with_params(params.redirect_uri, {"code": code, "state": params.state, "iss": self.issuer})
