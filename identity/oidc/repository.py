"""All SQL of the OpenID Connect provider, and the rows it returns (frozen Structs)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from core.db import Connection, Repository, row_as, rows_as
from core.structs import FrozenStruct
from identity.oidc.errors import ClientExists

__all__ = [
    "Client",
    "ConsentEntry",
    "OidcRepository",
    "RefreshTokenState",
    "RotatedGrant",
    "SessionContext",
    "SpentCode",
    "UsedCode",
    "UserinfoGrant",
]


class Client(FrozenStruct, frozen=True):
    """A registered client as the provider sees it."""

    client_id: str
    name: str
    client_type: str  # confidential | public
    auth_method: str
    redirect_uris: tuple[str, ...]
    scopes: frozenset[str]
    grant_types: frozenset[str]
    sector_id: str
    disabled: bool = False
    secret_hash: bytes | None = None
    previous_secret_hash: bytes | None = None
    previous_secret_expires_at: float | None = None
    jwks: dict[str, Any] | None = None
    require_par: bool = False  # authorization requests only through PAR (RFC 9126)
    dpop_bound: bool = False  # access tokens only DPoP-bound (RFC 9449)

    @property
    def is_public(self) -> bool:
        """A client that cannot keep a secret (a mini-program, a single-page app)."""
        return self.client_type == "public"


class ConsentEntry(FrozenStruct, frozen=True):
    """One scope a citizen shares with a client, with its options and the client's name."""

    client_id: str
    client_name: str
    scope: str
    options: dict[str, Any]
    granted_at: dt.datetime


class SpentCode(FrozenStruct, frozen=True):
    """An authorization code just spent, with what it stands for and its account's claims."""

    client_id: str
    account_id: str
    redirect_uri: str
    scope: str
    claims: dict[str, Any]  # consent options at authorization time
    nonce: str | None
    code_challenge: str
    acr: str
    amr: list[str]
    dpop_jkt: str | None
    auth_time: int
    live: bool  # not expired
    level: str
    phone_enc: bytes
    name_enc: bytes | None


class UsedCode(FrozenStruct, frozen=True):
    """A code redeemed before: who it was issued to and the grant it produced (if any)."""

    client_id: str
    account_id: str
    grant_id: str | None


class RotatedGrant(FrozenStruct, frozen=True):
    """The grant a refresh token was just rotated in."""

    grant_id: str
    account_id: str
    scope: str
    claims: dict[str, Any]
    acr: str
    amr: list[str]
    auth_time: int


class RefreshTokenState(FrozenStruct, frozen=True):
    """A refresh token as it stands, with its grant (reuse detection, introspection)."""

    grant_id: str
    client_id: str
    rotated: bool  # spent by a rotation: presenting it again is reuse
    active: bool
    iat: int
    exp: int
    account_id: str
    scope: str
    acr: str
    dpop_jkt: str | None


class UserinfoGrant(FrozenStruct, frozen=True):
    """A live grant and the account data userinfo may release from it."""

    client_id: str
    account_id: str
    scope: str
    claims: dict[str, Any]
    level: str
    phone_enc: bytes
    name_enc: bytes | None


class SessionContext(FrozenStruct, frozen=True):
    """When and how a live app session signed in, with the account's current level."""

    auth_time: int
    auth_method: str
    level: str


_CLIENT_COLUMNS = """client_id, name, client_type, auth_method, secret_hash, previous_secret_hash,
    EXTRACT(EPOCH FROM previous_secret_expires_at)::float8 AS previous_secret_expires_at, jwks,
    redirect_uris, scopes, grant_types, sector_id, disabled_at IS NOT NULL AS disabled,
    require_par, dpop_bound"""


def _client(row: asyncpg.Record) -> Client:
    # Built field by field: every token request authenticates a client, and this is
    # cheaper than converting a dict (the cache in front of it absorbs most look-ups).
    jwks = row["jwks"]
    return Client(
        client_id=row["client_id"],
        name=row["name"],
        client_type=row["client_type"],
        auth_method=row["auth_method"],
        redirect_uris=tuple(row["redirect_uris"]),
        scopes=frozenset(row["scopes"]),
        grant_types=frozenset(row["grant_types"]),
        sector_id=row["sector_id"],
        disabled=row["disabled"],
        secret_hash=row["secret_hash"],
        previous_secret_hash=row["previous_secret_hash"],
        previous_secret_expires_at=row["previous_secret_expires_at"],
        jwks=dict(jwks) if jwks is not None else None,
        require_par=row["require_par"],
        dpop_bound=row["dpop_bound"],
    )


_SPEND_CODE = """
WITH spent AS (
    UPDATE oauth_codes SET used_at = now()
    WHERE code_hash = $1 AND used_at IS NULL
    RETURNING client_id, account_id, redirect_uri, scope, claims, nonce, code_challenge, acr, amr, auth_time,
              expires_at > now() AS live, dpop_jkt
)
SELECT spent.client_id, spent.account_id::text AS account_id, spent.redirect_uri, spent.scope, spent.claims,
       spent.nonce, spent.code_challenge, spent.acr, spent.amr, spent.dpop_jkt,
       EXTRACT(EPOCH FROM spent.auth_time)::bigint AS auth_time, spent.live, a.level, a.phone_enc, a.name_enc
FROM spent JOIN accounts a ON a.id = spent.account_id
"""

_ROTATE = """
WITH old AS (
    UPDATE oauth_refresh_tokens SET used_at = now()
    WHERE token_hash = $1 AND client_id = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()
    RETURNING grant_id
), g AS (
    SELECT g.* FROM oauth_grants g JOIN old ON g.id = old.grant_id
    WHERE g.revoked_at IS NULL AND g.expires_at > now()
), fresh AS (
    INSERT INTO oauth_refresh_tokens (token_hash, grant_id, client_id, expires_at)
    SELECT $3, g.id, g.client_id, LEAST(now() + make_interval(secs => $4), g.expires_at) FROM g
    RETURNING grant_id
)
SELECT g.id::text AS grant_id, g.account_id::text AS account_id, g.scope, g.claims, g.acr, g.amr,
       EXTRACT(EPOCH FROM g.auth_time)::bigint AS auth_time
FROM g JOIN fresh ON fresh.grant_id = g.id
"""


class OidcRepository(Repository):
    """Reads and writes clients, consents, codes, grants, refresh tokens and revocations.

    Methods that take a connection run on it (a transaction from :meth:`transaction`, so
    that several statements and their audit rows commit together); the others are single
    reads that run on the pool.
    """

    # clients ------------------------------------------------------------------------------

    async def get_client(self, client_id: str) -> Client | None:
        """One client by id (disabled ones too: the caller decides)."""
        row = await self.pool.fetchrow(f"SELECT {_CLIENT_COLUMNS} FROM oauth_clients WHERE client_id = $1", client_id)  # noqa: S608
        return _client(row) if row is not None else None

    async def client_names(self, client_ids: Sequence[str]) -> dict[str, str]:
        """The display names of these clients (disabled ones too); unknown ids are left out."""
        rows = await self.pool.fetch(
            "SELECT client_id, name FROM oauth_clients WHERE client_id = ANY($1::text[])", list(client_ids)
        )
        return {row["client_id"]: row["name"] for row in rows}

    async def list_clients(self) -> list[Client]:
        """Every client, oldest first."""
        rows = await self.pool.fetch(f"SELECT {_CLIENT_COLUMNS} FROM oauth_clients ORDER BY created_at, client_id")  # noqa: S608
        return [_client(row) for row in rows]

    @staticmethod
    async def insert_client(
        conn: Connection,
        *,
        client_id: str,
        name: str,
        client_type: str,
        auth_method: str,
        secret_hash: bytes | None,
        jwks: Mapping[str, Any] | None,
        redirect_uris: Sequence[str],
        scopes: Sequence[str],
        grant_types: Sequence[str],
        sector_id: str,
        if_absent: bool = False,
        require_par: bool = False,
        dpop_bound: bool = False,
    ) -> bool:
        """Register a client; with ``if_absent``, leave an existing one as it is.

        Returns:
            Whether a row was inserted.

        Raises:
            ClientExists: the id is taken (without ``if_absent``).
        """
        conflict = "ON CONFLICT (client_id) DO NOTHING" if if_absent else ""
        try:
            inserted = await conn.fetchval(
                f"""INSERT INTO oauth_clients (client_id, name, client_type, auth_method, secret_hash, jwks,
                                               redirect_uris, scopes, grant_types, sector_id, require_par, dpop_bound)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) {conflict} RETURNING true""",  # noqa: S608
                client_id,
                name,
                client_type,
                auth_method,
                secret_hash,
                dict(jwks) if jwks is not None else None,
                list(redirect_uris),
                list(scopes),
                list(grant_types),
                sector_id,
                require_par,
                dpop_bound,
            )
        except asyncpg.UniqueViolationError:
            raise ClientExists(f"client {client_id!r} exists") from None
        return bool(inserted)

    @staticmethod
    async def set_secret(conn: Connection, client_id: str, secret_hash: bytes, *, grace_s: int) -> bool:
        """Replace the secret; the old one keeps working ``grace_s`` seconds (0: not at all)."""
        updated = await conn.fetchval(
            """UPDATE oauth_clients SET previous_secret_hash = CASE WHEN $3 > 0 THEN secret_hash END,
                      previous_secret_expires_at = CASE WHEN $3 > 0 THEN now() + make_interval(secs => $3) END,
                      secret_hash = $2, updated_at = now()
               WHERE client_id = $1 AND auth_method IN ('client_secret_basic', 'client_secret_post')
               RETURNING true""",
            client_id,
            secret_hash,
            grace_s,
        )
        return bool(updated)

    @staticmethod
    async def disable_client(conn: Connection, client_id: str) -> list[str] | None:
        """Disable a client and revoke all its grants; ``None`` if no enabled client has the id.

        Returns:
            The ids of the grants revoked now.
        """
        done = await conn.fetchval(
            """UPDATE oauth_clients SET disabled_at = now(), updated_at = now()
               WHERE client_id = $1 AND disabled_at IS NULL RETURNING true""",
            client_id,
        )
        if not done:
            return None
        rows = await conn.fetch(
            """UPDATE oauth_grants SET revoked_at = now(), revoke_reason = 'client_disabled'
               WHERE client_id = $1 AND revoked_at IS NULL RETURNING id::text AS id""",
            client_id,
        )
        ids = [r["id"] for r in rows]
        await OidcRepository._revoke_refresh_tokens(conn, ids)
        await conn.execute("UPDATE oauth_codes SET used_at = now() WHERE client_id = $1 AND used_at IS NULL", client_id)
        return ids

    # consents -----------------------------------------------------------------------------

    async def consents_of(self, account_id: str, client_id: str) -> dict[str, dict[str, Any]]:
        """The scopes ``account_id`` consented to share with ``client_id``, with their options."""
        rows = await self.pool.fetch(
            "SELECT scope, options FROM oauth_consents WHERE account_id = $1::uuid AND client_id = $2",
            account_id,
            client_id,
        )
        return {r["scope"]: dict(r["options"]) for r in rows}

    @staticmethod
    async def record_consents(
        conn: Connection, *, account_id: str, client_id: str, options: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """Insert or update one consent row per scope in ``options`` (scope → its options)."""
        await conn.executemany(
            """INSERT INTO oauth_consents (account_id, client_id, scope, options) VALUES ($1::uuid, $2, $3, $4)
               ON CONFLICT (account_id, client_id, scope)
               DO UPDATE SET options = EXCLUDED.options, granted_at = now()""",
            [(account_id, client_id, scope, dict(opts)) for scope, opts in options.items()],
        )

    async def list_consents(self, account_id: str) -> list[ConsentEntry]:
        """Every consent of the account, with the client's name, grouped by client."""
        rows = await self.pool.fetch(
            """SELECT c.client_id, k.name AS client_name, c.scope, c.options, c.granted_at
               FROM oauth_consents c JOIN oauth_clients k ON k.client_id = c.client_id
               WHERE c.account_id = $1::uuid ORDER BY c.client_id, c.scope""",
            account_id,
        )
        return rows_as(ConsentEntry, rows)

    @staticmethod
    async def withdraw_consents(conn: Connection, *, account_id: str, client_id: str) -> tuple[int, list[str]]:
        """Delete the account's consents for the client and revoke its grants.

        Returns:
            How many consent rows were deleted, and the ids of the grants revoked.
        """
        deleted = await conn.fetch(
            "DELETE FROM oauth_consents WHERE account_id = $1::uuid AND client_id = $2 RETURNING scope",
            account_id,
            client_id,
        )
        rows = await conn.fetch(
            """UPDATE oauth_grants SET revoked_at = now(), revoke_reason = 'consent_withdrawn'
               WHERE account_id = $1::uuid AND client_id = $2 AND revoked_at IS NULL RETURNING id::text AS id""",
            account_id,
            client_id,
        )
        ids = [r["id"] for r in rows]
        await OidcRepository._revoke_refresh_tokens(conn, ids)
        # A code issued a moment ago must not turn into a new grant after the withdrawal.
        await conn.execute(
            """UPDATE oauth_codes SET used_at = now()
               WHERE account_id = $1::uuid AND client_id = $2 AND used_at IS NULL""",
            account_id,
            client_id,
        )
        return len(deleted), ids

    # authorization codes ------------------------------------------------------------------

    @staticmethod
    async def insert_code(
        conn: Connection,
        *,
        code_hash: bytes,
        client_id: str,
        account_id: str,
        redirect_uri: str,
        scope: str,
        claims: Mapping[str, Any],
        nonce: str | None,
        code_challenge: str,
        acr: str,
        amr: Sequence[str],
        auth_time: int,
        ttl_s: int,
        dpop_jkt: str | None = None,
    ) -> None:
        """Store a new authorization code's hash and what it stands for."""
        await conn.execute(
            """INSERT INTO oauth_codes (code_hash, client_id, account_id, redirect_uri, scope, claims, nonce,
                                        code_challenge, acr, amr, auth_time, expires_at, dpop_jkt)
               VALUES ($1, $2, $3::uuid, $4, $5, $6, $7, $8, $9, $10, to_timestamp($11),
                       now() + make_interval(secs => $12), $13)""",
            code_hash,
            client_id,
            account_id,
            redirect_uri,
            scope,
            dict(claims),
            nonce,
            code_challenge,
            acr,
            list(amr),
            auth_time,
            ttl_s,
            dpop_jkt,
        )

    @staticmethod
    async def purge_codes(conn: Connection, *, keep_s: int) -> None:
        """Delete codes that expired more than ``keep_s`` seconds ago (reuse detection window)."""
        await conn.execute("DELETE FROM oauth_codes WHERE expires_at < now() - make_interval(secs => $1)", keep_s)

    @staticmethod
    async def spend_code(conn: Connection, code_hash: bytes) -> SpentCode | None:
        """Mark a code used and return it, or ``None`` if it is unknown or was used before.

        The row lock taken here is held until the caller's transaction ends, so a concurrent
        second redemption waits, then finds the code used and the grant it produced.
        """
        row = await conn.fetchrow(_SPEND_CODE, code_hash)
        if row is None:
            return None
        # Built field by field (the token endpoint's hot path): cheaper than a dict conversion.
        return SpentCode(
            client_id=row["client_id"],
            account_id=row["account_id"],
            redirect_uri=row["redirect_uri"],
            scope=row["scope"],
            claims=row["claims"],
            nonce=row["nonce"],
            code_challenge=row["code_challenge"],
            acr=row["acr"],
            amr=row["amr"],
            dpop_jkt=row["dpop_jkt"],
            auth_time=row["auth_time"],
            live=row["live"],
            level=row["level"],
            phone_enc=row["phone_enc"],
            name_enc=row["name_enc"],
        )

    async def used_code(self, code_hash: bytes) -> UsedCode | None:
        """A code already redeemed: its client, account and the grant it produced (if any)."""
        row = await self.pool.fetchrow(
            """SELECT client_id, account_id::text AS account_id, grant_id::text AS grant_id
               FROM oauth_codes WHERE code_hash = $1 AND used_at IS NOT NULL""",
            code_hash,
        )
        return row_as(UsedCode, row)

    @staticmethod
    async def attach_grant(conn: Connection, code_hash: bytes, grant_id: str) -> None:
        """Remember which grant a code produced (to revoke it if the code is replayed)."""
        await conn.execute("UPDATE oauth_codes SET grant_id = $2::uuid WHERE code_hash = $1", code_hash, grant_id)

    # grants and refresh tokens ------------------------------------------------------------

    @staticmethod
    async def insert_grant(
        conn: Connection,
        *,
        client_id: str,
        account_id: str,
        scope: str,
        claims: Mapping[str, Any],
        acr: str,
        amr: Sequence[str],
        auth_time: int,
        ttl_s: int,
        dpop_jkt: str | None = None,
    ) -> str:
        """A new grant; returns its id (the ``sid`` of its access tokens).

        ``dpop_jkt``: the key thumbprint its refresh tokens are bound to (public DPoP clients).
        """
        grant_id: str = await conn.fetchval(
            """INSERT INTO oauth_grants (client_id, account_id, scope, claims, acr, amr, auth_time, expires_at,
                                          dpop_jkt)
               VALUES ($1, $2::uuid, $3, $4, $5, $6, to_timestamp($7), now() + make_interval(secs => $8), $9)
               RETURNING id::text""",
            client_id,
            account_id,
            scope,
            dict(claims),
            acr,
            list(amr),
            auth_time,
            ttl_s,
            dpop_jkt,
        )
        return grant_id

    @staticmethod
    async def insert_refresh_token(
        conn: Connection, *, token_hash: bytes, grant_id: str, client_id: str, idle_ttl_s: int
    ) -> None:
        """Store a refresh token's hash in its grant's family."""
        await conn.execute(
            """INSERT INTO oauth_refresh_tokens (token_hash, grant_id, client_id, expires_at)
               SELECT $1, g.id, $3, LEAST(now() + make_interval(secs => $4), g.expires_at)
               FROM oauth_grants g WHERE g.id = $2::uuid""",
            token_hash,
            grant_id,
            client_id,
            idle_ttl_s,
        )

    @staticmethod
    async def rotate_refresh_token(
        conn: Connection, *, old_hash: bytes, client_id: str, new_hash: bytes, idle_ttl_s: int
    ) -> RotatedGrant | None:
        """Spend ``old_hash`` and store ``new_hash`` in its family, in one statement.

        One statement is what makes two concurrent refreshes with the same token safe: the
        second one's ``UPDATE`` waits for the first's row lock, then finds the token spent.
        ``None`` means nothing was rotated: unknown, spent, revoked, expired, another
        client's, or its grant is revoked or expired.
        """
        row = await conn.fetchrow(_ROTATE, old_hash, client_id, new_hash, idle_ttl_s)
        if row is None:
            return None
        # Built field by field (the refresh hot path): cheaper than a dict conversion.
        return RotatedGrant(
            grant_id=row["grant_id"],
            account_id=row["account_id"],
            scope=row["scope"],
            claims=row["claims"],
            acr=row["acr"],
            amr=row["amr"],
            auth_time=row["auth_time"],
        )

    async def find_refresh_token(self, token_hash: bytes) -> RefreshTokenState | None:
        """A refresh token with its state and its grant, for reuse detection and introspection."""
        row = await self.pool.fetchrow(
            """SELECT r.grant_id::text AS grant_id, r.client_id, r.used_at IS NOT NULL AS rotated,
                      (r.used_at IS NULL AND r.revoked_at IS NULL AND r.expires_at > now()
                       AND g.revoked_at IS NULL AND g.expires_at > now()) AS active,
                      EXTRACT(EPOCH FROM r.created_at)::bigint AS iat,
                      EXTRACT(EPOCH FROM r.expires_at)::bigint AS exp,
                      g.account_id::text AS account_id, g.scope, g.acr, g.dpop_jkt
               FROM oauth_refresh_tokens r JOIN oauth_grants g ON g.id = r.grant_id
               WHERE r.token_hash = $1""",
            token_hash,
        )
        if row is None:
            return None
        return RefreshTokenState(
            grant_id=row["grant_id"],
            client_id=row["client_id"],
            rotated=row["rotated"],
            active=row["active"],
            iat=row["iat"],
            exp=row["exp"],
            account_id=row["account_id"],
            scope=row["scope"],
            acr=row["acr"],
            dpop_jkt=row["dpop_jkt"],
        )

    @staticmethod
    async def _revoke_refresh_tokens(conn: Connection, grant_ids: Sequence[str]) -> None:
        if grant_ids:
            await conn.execute(
                """UPDATE oauth_refresh_tokens SET revoked_at = now()
                   WHERE grant_id = ANY($1::uuid[]) AND revoked_at IS NULL""",
                list(grant_ids),
            )

    @staticmethod
    async def revoke_grant(conn: Connection, grant_id: str, *, reason: str) -> bool:
        """Revoke one grant and its refresh tokens; whether it was live."""
        revoked = await conn.fetchval(
            """UPDATE oauth_grants SET revoked_at = now(), revoke_reason = $2
               WHERE id = $1::uuid AND revoked_at IS NULL RETURNING true""",
            grant_id,
            reason,
        )
        await OidcRepository._revoke_refresh_tokens(conn, [grant_id])
        return bool(revoked)

    async def grant_with_account(self, grant_id: str) -> UserinfoGrant | None:
        """A live grant and the account data userinfo may release from it."""
        row = await self.pool.fetchrow(
            """SELECT g.client_id, g.account_id::text AS account_id, g.scope, g.claims,
                      a.level, a.phone_enc, a.name_enc
               FROM oauth_grants g JOIN accounts a ON a.id = g.account_id
               WHERE g.id = $1::uuid AND g.revoked_at IS NULL AND g.expires_at > now()""",
            grant_id,
        )
        return row_as(UserinfoGrant, row)

    # revoked access tokens ----------------------------------------------------------------

    @staticmethod
    async def insert_revoked_token(conn: Connection, *, jti: str, client_id: str, expires_at: int) -> None:
        """Record an access token revoked by its client (RFC 7009)."""
        await conn.execute(
            """INSERT INTO oauth_revoked_tokens (jti, client_id, expires_at) VALUES ($1, $2, to_timestamp($3))
               ON CONFLICT (jti) DO NOTHING""",
            jti,
            client_id,
            expires_at,
        )
        # Housekeeping: what expired long ago can never be presented again.
        await conn.execute("DELETE FROM oauth_revoked_tokens WHERE expires_at < now() - interval '1 day'")

    # citizen sessions (read-only, for the app's authorization requests) -------------------

    async def session_context(self, session_id: str, account_id: str) -> SessionContext | None:
        """When and how a live app session signed in, with the account's current level."""
        row = await self.pool.fetchrow(
            """SELECT EXTRACT(EPOCH FROM s.created_at)::bigint AS auth_time, s.auth_method, a.level
               FROM sessions s JOIN accounts a ON a.id = s.account_id
               WHERE s.id = $1::uuid AND s.account_id = $2::uuid AND s.ended_at IS NULL""",
            session_id,
            account_id,
        )
        return row_as(SessionContext, row)

    async def account_level(self, account_id: str) -> str | None:
        """The account's current identity level, or ``None`` if it no longer exists."""
        level: str | None = await self.pool.fetchval("SELECT level FROM accounts WHERE id = $1::uuid", account_id)
        return level
