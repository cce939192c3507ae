"""Managing the client registry: what ``onecity clients ...`` and the demo seed run.

Every change is validated here, once, before it reaches PostgreSQL (which checks the same
invariants again in its constraints), and written to the audit log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from core.audit import AuditEvent, write_audit
from core.crypto import Vault
from core.db import Pool
from core.errors import UnprocessableEntity
from identity.oidc.clients import AUTH_METHODS, SECRET_METHODS, Client, SecretHasher, generate_secret, parse_client_jwks
from identity.oidc.errors import ClientExists
from identity.oidc.repository import OidcRepository
from identity.oidc.scopes import CITIZEN_SCOPES, PARTNER_SCOPES, SCOPES
from identity.oidc.uris import redirect_uri_problem
from identity.revocation import CLIENTS, GRANTS, RevocationSet

__all__ = ["GRANT_TYPES", "ClientAdmin", "ClientAdminError", "NewClient"]

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
_CLIENT_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


class ClientAdminError(UnprocessableEntity, ValueError):
    """The requested change is invalid; the message says why (422 over HTTP)."""


class NewClient:
    """A registered client and, for secret-based clients, its secret (shown once)."""

    __slots__ = ("client", "secret")

    def __init__(self, client: Client, secret: str | None) -> None:
        self.client = client
        self.secret = secret


class ClientAdmin:
    """Adds, lists, rotates and disables clients.

    Args:
        pool: PostgreSQL.
        vault: Derives the client secret hashing key.
        revocations: Where disabling a client kills its live access tokens at once. Adding,
            listing and rotating need none; :meth:`disable` refuses to run without it.
    """

    def __init__(self, pool: Pool, vault: Vault, revocations: RevocationSet | None = None) -> None:
        self._repository = OidcRepository(pool)
        self._hasher = SecretHasher(vault)
        self._revocations = revocations

    async def add(
        self,
        client_id: str,
        *,
        name: str | None = None,
        client_type: str = "confidential",
        auth_method: str | None = None,
        redirect_uris: Sequence[str] = (),
        scopes: Sequence[str] = ("openid", "profile"),
        grant_types: Sequence[str] | None = None,
        jwks: Mapping[str, Any] | None = None,
        sector_id: str | None = None,
        secret: str | None = None,
        if_absent: bool = False,
        require_par: bool = False,
        dpop_bound: bool = False,
    ) -> NewClient | None:
        """Register a client.

        Args:
            client_id: Lower-case id, 2-64 characters (``[a-z0-9._-]``).
            name: Shown to citizens on the consent page (default: the id).
            client_type: ``confidential`` or ``public``.
            auth_method: Default ``client_secret_basic`` (confidential) or ``none`` (public).
            redirect_uris: Exact redirect URIs (needed for ``authorization_code``).
            scopes: Allowed scopes.
            grant_types: Default: ``authorization_code`` + ``refresh_token`` when a citizen
                scope is allowed, plus ``client_credentials`` when a partner scope is.
            jwks: Public keys for ``private_key_jwt``.
            sector_id: Pairwise subject sector; clients sharing one see the same ``sub``
                (default: the client id, i.e. nobody else).
            secret: Use this secret instead of a generated one (the fixed demo partner only).
            if_absent: Leave an existing client alone and return ``None``.
            require_par: Accept its authorization requests only through ``POST /oauth/par``
                (FAPI 2.0; the global default lets every client choose).
            dpop_bound: Issue it only DPoP-bound access tokens (a token request without a
                DPoP proof is refused).

        Raises:
            ClientAdminError: the description is inconsistent.
        """
        if not _CLIENT_ID.fullmatch(client_id):
            raise ClientAdminError("client_id: 2-64 characters of a-z, 0-9, '.', '_', '-'")
        if client_type not in ("confidential", "public"):
            raise ClientAdminError("type must be confidential or public")
        method = auth_method or ("none" if client_type == "public" else "client_secret_basic")
        if method not in AUTH_METHODS:
            raise ClientAdminError(f"auth method must be one of {', '.join(AUTH_METHODS)}")
        if (client_type == "public") != (method == "none"):
            raise ClientAdminError("public clients authenticate with 'none'; confidential clients may not")
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown or not scopes:
            raise ClientAdminError(f"unknown scope(s): {', '.join(unknown) or '(none given)'}")
        if grant_types is None:
            inferred = []
            if set(scopes) & CITIZEN_SCOPES:
                inferred += ["authorization_code", "refresh_token"]
            if set(scopes) & PARTNER_SCOPES and client_type == "confidential":
                inferred.append("client_credentials")
            grant_types = inferred
        if not grant_types or any(g not in GRANT_TYPES for g in grant_types):
            raise ClientAdminError(f"grant types must be among {', '.join(GRANT_TYPES)}")
        if client_type == "public" and "client_credentials" in grant_types:
            raise ClientAdminError("a public client cannot use client_credentials")
        if set(scopes) & PARTNER_SCOPES and "client_credentials" not in grant_types:
            raise ClientAdminError("partner scopes (codes:verify) need the client_credentials grant")
        if "authorization_code" in grant_types and not redirect_uris:
            raise ClientAdminError("authorization_code needs at least one --redirect-uri")
        for uri in redirect_uris:
            problem = redirect_uri_problem(uri)
            if problem:
                raise ClientAdminError(f"redirect URI {uri!r} {problem}")
        if method == "private_key_jwt":
            if jwks is None:
                raise ClientAdminError("private_key_jwt needs the client's public keys (--jwks FILE)")
            try:
                parse_client_jwks(jwks)
            except ValueError as exc:
                raise ClientAdminError(f"jwks: {exc}") from None
        elif jwks is not None:
            raise ClientAdminError("--jwks is only for private_key_jwt clients")
        if require_par and "authorization_code" not in grant_types:
            raise ClientAdminError("--require-par needs the authorization_code grant")
        new_secret = (secret or generate_secret()) if method in SECRET_METHODS else None
        display = name or client_id
        if not 1 <= len(display) <= 128:
            raise ClientAdminError("name: 1-128 characters")
        try:
            async with self._repository.transaction() as tx:
                inserted = await self._repository.insert_client(
                    tx,
                    client_id=client_id,
                    name=display,
                    client_type=client_type,
                    auth_method=method,
                    secret_hash=self._hasher.hash(client_id, new_secret) if new_secret else None,
                    jwks=jwks,
                    redirect_uris=list(dict.fromkeys(redirect_uris)),
                    scopes=list(dict.fromkeys(scopes)),
                    grant_types=list(dict.fromkeys(grant_types)),
                    sector_id=sector_id or client_id,
                    if_absent=if_absent,
                    require_par=require_par,
                    dpop_bound=dpop_bound,
                )
                if not inserted:
                    return None
                await write_audit(
                    tx,
                    [
                        self._event(
                            "oidc.client.added",
                            client_id,
                            {"type": client_type, "require_par": require_par, "dpop_bound": dpop_bound},
                        )
                    ],
                )
        except ClientExists as exc:
            raise ClientAdminError(exc.detail) from None
        client = await self._repository.get_client(client_id)
        assert client is not None
        return NewClient(client, new_secret)

    async def list(self) -> list[Client]:
        """Every client (disabled ones included)."""
        return await self._repository.list_clients()

    async def rotate_secret(self, client_id: str, *, grace_s: int = 0) -> str:
        """Give a secret-based client a new secret; the old one works ``grace_s`` more seconds.

        Raises:
            ClientAdminError: no such secret-based client.
        """
        secret = generate_secret()
        async with self._repository.transaction() as tx:
            done = await self._repository.set_secret(
                tx, client_id, self._hasher.hash(client_id, secret), grace_s=max(0, grace_s)
            )
            if not done:
                raise ClientAdminError(f"no client {client_id!r} authenticating with a secret")
            await write_audit(tx, [self._event("oidc.client.secret_rotated", client_id, {"grace_s": grace_s})])
        return secret

    async def disable(self, client_id: str) -> int:
        """Disable a client and revoke every grant it holds; return how many grants.

        Raises:
            ClientAdminError: no such enabled client.
            ClientAdminError: built without a revocation set (its tokens would keep working).
        """
        if self._revocations is None:
            raise ClientAdminError(
                "disabling a client needs the revocation set (Redis, ONECITY_REDIS_URL): its tokens would keep working"
            )
        async with self._repository.transaction() as tx:
            grants = await self._repository.disable_client(tx, client_id)
            if grants is None:
                raise ClientAdminError(f"no enabled client {client_id!r}")
            await write_audit(tx, [self._event("oidc.client.disabled", client_id, {"grants_revoked": len(grants)})])
        await self._revocations.revoke(CLIENTS, [client_id])
        await self._revocations.revoke(GRANTS, grants)
        return len(grants)

    @staticmethod
    def _event(action: str, client_id: str, details: Mapping[str, Any]) -> AuditEvent:
        return AuditEvent(
            action=action,
            outcome="success",
            actor_type="system",
            actor_id="cli",
            subject_id=client_id,
            details={"client_id": client_id, **details},
        )


def load_jwks(path: str) -> dict[str, Any]:
    """Read a JWKS file (``{"keys": [...]}``) for ``--jwks``."""
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise ClientAdminError("the JWKS file must hold a JSON object")
    return data
