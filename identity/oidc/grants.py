"""The token endpoint's grants, introspection, revocation and userinfo.

Access tokens are issued through :class:`identity.tokens.AccessTokens` (RFC 9068
``at+jwt``, EdDSA) with ``aud`` :data:`~identity.tokens.API_AUDIENCE`:

- ``client_credentials``: ``sub`` = ``client_id``, no ``sid``/``acr`` (what
  :func:`identity.partners.require_partner_scope` accepts);
- ``authorization_code`` / ``refresh_token``: ``sub`` = the citizen's pairwise subject for
  the client, ``sid`` = the grant id, ``acr`` = the level. The citizen app's endpoints refuse
  these (wrong audience and client), and partner machine endpoints refuse them (``sid``).

A grant is the family of every token descended from one code. Replaying its code or a
rotated refresh token revokes it (OWASP ASVS 10.4.2, RFC 9700 section 4.14.2): the refresh
tokens in PostgreSQL, the access tokens through the revocation set (:mod:`identity.revocation`) by ``sid``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Sequence
from typing import Any

from core.audit import AuditBatcher, AuditEvent, write_audit
from core.crypto import Vault
from core.errors import Unauthorized
from core.ledger import id_token_release
from core.signing import b64url_encode
from identity.oidc.clients import Client, ClientCredentials, ClientRegistry
from identity.oidc.dpop import DPoPError, DPoPProof, DPoPVerifier, PresentationError, dpop_error
from identity.oidc.errors import (
    OAuthError,
    insufficient_scope,
    invalid_grant,
    invalid_request,
    invalid_scope,
    invalid_token,
    unauthorized_client,
    unsupported_grant_type,
)
from identity.oidc.id_tokens import IdTokens, release_claims
from identity.oidc.pairwise import PairwiseSubjects
from identity.oidc.repository import OidcRepository
from identity.oidc.schemas import IntrospectForm, IntrospectionResponse, RevokeForm, TokenForm, TokenResponse
from identity.oidc.scopes import PARTNER_SCOPES, parse_scope
from identity.oidc.settings import OidcSettings
from identity.revocation import ACCESS_TOKENS, CLIENTS, GRANTS, RevocationSet
from identity.tokens import API_AUDIENCE, AccessClaims, AccessTokens

__all__ = ["REFRESH_PREFIX", "TokenEndpoint"]

log = logging.getLogger("onecity.oidc")

#: Partner refresh tokens are opaque and recognisable (never confused with the app's ``rt.``).
REFRESH_PREFIX = "ort."
_VERIFIER_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _pkce_ok(verifier: str, challenge: str) -> bool:
    """RFC 7636 section 4.6, S256: BASE64URL(SHA256(verifier)) == challenge."""
    if not 43 <= len(verifier) <= 128 or not set(verifier) <= _VERIFIER_CHARS:
        return False
    computed = b64url_encode(hashlib.sha256(verifier.encode("ascii")).digest())
    return hmac.compare_digest(computed, challenge)


class TokenEndpoint:
    """``/oauth/token``, ``/oauth/introspect``, ``/oauth/revoke`` and ``/oauth/userinfo``.

    Args:
        repository: SQL.
        registry: Client look-up and authentication.
        tokens: Access token issuer and verifier.
        id_tokens: ID token issuer.
        pairwise: Pairwise subjects.
        revocations: Revoked tokens, grants and clients.
        vault: Keyed hashes (codes, refresh tokens) and decryption of released claims.
        audit: Batched audit writer for the high-volume events (machine grants, userinfo).
        settings: Lifetimes.
        issuer: The provider's issuer URL.
        dpop: DPoP proof checks (sender-constrained tokens, RFC 9449).
    """

    def __init__(
        self,
        *,
        repository: OidcRepository,
        registry: ClientRegistry,
        tokens: AccessTokens,
        id_tokens: IdTokens,
        pairwise: PairwiseSubjects,
        revocations: RevocationSet,
        vault: Vault,
        audit: AuditBatcher,
        settings: OidcSettings,
        issuer: str,
        dpop: DPoPVerifier,
    ) -> None:
        self.dpop = dpop
        self.repository = repository
        self.registry = registry
        self.tokens = tokens
        self.id_tokens = id_tokens
        self.pairwise = pairwise
        self.revocations = revocations
        self.vault = vault
        self.audit = audit
        self.settings = settings
        self.issuer = issuer
        # The URLs clients call: DPoP proofs name them (``htu``), so they are the public ones.
        self._token_url = f"{issuer}/oauth/token"
        self._introspection_url = f"{issuer}/oauth/introspect"
        self._revocation_url = f"{issuer}/oauth/revoke"
        self._userinfo_url = f"{issuer}/oauth/userinfo"

    # helpers ------------------------------------------------------------------------------

    def _code_hash(self, code: str) -> bytes:
        return self.vault.keyed_hash(code, domain="oauth-code")

    def _refresh_hash(self, token: str) -> bytes:
        return self.vault.keyed_hash(token, domain="oauth-refresh-token")

    @staticmethod
    def _new_refresh_token() -> str:
        return REFRESH_PREFIX + secrets.token_urlsafe(32)

    def _subject(self, client: Client, account_id: str) -> str:
        return self.pairwise.subject(client.sector_id, account_id)

    @staticmethod
    def _event(
        action: str, outcome: str, client: Client | None, *, client_ip: str | None, **details: Any
    ) -> AuditEvent:
        return AuditEvent(
            action=action,
            outcome=outcome,
            actor_type="partner",
            actor_id=client.client_id if client else None,
            subject_id=details.pop("subject_id", None),
            client_ip=client_ip,
            details={k: v for k, v in details.items() if v is not None},
        )

    def _audit(
        self, action: str, outcome: str, client: Client | None, *, client_ip: str | None, **details: Any
    ) -> None:
        """Batched: events with no change of their own to join (a stateless client token, a
        failed attempt, a userinfo read)."""
        self.audit.add(self._event(action, outcome, client, client_ip=client_ip, **details))

    async def _revoke_grant(self, grant_id: str, *, reason: str, client_id: str, client_ip: str | None) -> None:
        async with self.repository.transaction() as tx:
            await self.repository.revoke_grant(tx, grant_id, reason=reason)
            await write_audit(
                tx,
                [
                    AuditEvent(
                        action=f"oidc.{reason}",
                        outcome="denied",
                        actor_type="partner",
                        actor_id=client_id,
                        client_ip=client_ip,
                        details={"grant_id": grant_id},
                    )
                ],
            )
        await self.revocations.revoke(GRANTS, [grant_id])
        log.warning("oauth grant revoked", extra={"reason": reason, "client_id": client_id})

    # token endpoint -----------------------------------------------------------------------

    async def token(
        self,
        form: TokenForm,
        *,
        authorization: str | None,
        client_ip: str | None,
        dpop_proofs: Sequence[str] = (),
    ) -> TokenResponse:
        """Run one grant for an authenticated client.

        With a ``DPoP`` proof the access token is bound to its key (``cnf.jkt``, token type
        ``DPoP``); a client registered ``dpop_bound`` gets nothing without one.

        Raises:
            OAuthError: the RFC 6749 section 5.2 error, or ``invalid_dpop_proof`` /
                ``use_dpop_nonce`` (RFC 9449 sections 5 and 8).
        """
        if form.grant_type not in ("authorization_code", "refresh_token", "client_credentials"):
            raise unsupported_grant_type()
        proof: DPoPProof | None = None
        if dpop_proofs:
            # Checked before client authentication, so a nonce round trip does not burn the
            # client's assertion.
            try:
                proof = await self.dpop.verify(dpop_proofs, method="POST", url=self._token_url, require_nonce=True)
            except DPoPError as exc:
                raise dpop_error(exc, self.dpop.nonce()) from None
        credentials = ClientCredentials.from_request(
            authorization,
            client_id=form.client_id,
            client_secret=form.client_secret,
            assertion_type=form.client_assertion_type,
            assertion=form.client_assertion,
        )
        try:
            client = await self.registry.authenticate(credentials, endpoint_url=self._token_url, allow_public=True)
        except OAuthError:
            self._audit(
                "oidc.token", "failure", None, client_ip=client_ip, grant_type=form.grant_type, reason="invalid_client"
            )
            raise
        if form.grant_type not in client.grant_types or (client.is_public and form.grant_type == "client_credentials"):
            raise unauthorized_client()
        if client.dpop_bound and proof is None:
            raise dpop_error(
                DPoPError("invalid_dpop_proof", "This client's tokens are DPoP-bound: send a DPoP proof"),
                self.dpop.nonce(),
            )
        jkt = proof.jkt if proof is not None else None
        if form.grant_type == "client_credentials":
            return self._client_credentials(client, form, client_ip=client_ip, jkt=jkt)
        if form.grant_type == "authorization_code":
            return await self._authorization_code(client, form, client_ip=client_ip, jkt=jkt)
        return await self._refresh(client, form, client_ip=client_ip, jkt=jkt)

    @staticmethod
    def _binding(jkt: str | None) -> tuple[dict[str, Any] | None, str]:
        """The ``cnf`` claim and token type of an access token bound (or not) to ``jkt``."""
        if jkt is None:
            return None, "Bearer"
        return {"cnf": {"jkt": jkt}}, "DPoP"

    def _client_credentials(
        self, client: Client, form: TokenForm, *, client_ip: str | None, jkt: str | None
    ) -> TokenResponse:
        allowed = client.scopes & PARTNER_SCOPES
        requested = parse_scope(form.scope)
        if requested is None or not set(requested) <= allowed:
            raise invalid_scope()
        scopes = requested or tuple(sorted(allowed))
        if not scopes:
            raise invalid_scope("This client has no machine scope")
        scope = " ".join(scopes)
        extra, token_type = self._binding(jkt)
        access, ttl = self.tokens.issue(
            subject=client.client_id,
            client_id=client.client_id,
            audience=API_AUDIENCE,
            scope=scope,
            extra=extra,
            ttl_s=self.settings.client_token_ttl_s,
        )
        self._audit(
            "oidc.token",
            "success",
            client,
            client_ip=client_ip,
            grant_type="client_credentials",
            scope=scope,
            dpop=jkt is not None or None,
        )
        return TokenResponse(
            token_type=token_type,
            access_token=access,
            expires_in=ttl,
            scope=scope,
        )

    async def _authorization_code(
        self, client: Client, form: TokenForm, *, client_ip: str | None, jkt: str | None
    ) -> TokenResponse:
        if not form.code or not form.redirect_uri:
            raise invalid_request("code and redirect_uri are required")
        if not form.code_verifier:
            raise invalid_request("code_verifier is required (PKCE)")
        if len(form.code) > 128:
            raise invalid_grant()
        code_hash = self._code_hash(form.code)
        failure: str | None = None
        grant_id = ""
        refresh: str | None = None
        async with self.repository.transaction() as tx:
            code = await self.repository.spend_code(tx, code_hash)
            if code is None:
                failure = "unknown_or_used"
            elif code.client_id != client.client_id:
                failure = "other_client"
            elif not code.live:
                failure = "expired"
            elif code.redirect_uri != form.redirect_uri:
                failure = "redirect_uri"
            elif not _pkce_ok(form.code_verifier, code.code_challenge):
                failure = "pkce"
            elif code.dpop_jkt is not None and code.dpop_jkt != jkt:
                # The code was bound at PAR to a DPoP key (RFC 9449 section 10).
                failure = "dpop_key"
            else:
                grant_id = await self.repository.insert_grant(
                    tx,
                    client_id=client.client_id,
                    account_id=code.account_id,
                    scope=code.scope,
                    claims=code.claims,
                    acr=code.acr,
                    amr=code.amr,
                    auth_time=code.auth_time,
                    ttl_s=self.settings.grant_ttl_s,
                    # A public client has no credential of its own: the DPoP key it redeemed
                    # the code with is what its refresh tokens are bound to (RFC 9449 section 5).
                    dpop_jkt=jkt if client.is_public else None,
                )
                await self.repository.attach_grant(tx, code_hash, grant_id)
                if "refresh_token" in client.grant_types:
                    refresh = self._new_refresh_token()
                    await self.repository.insert_refresh_token(
                        tx,
                        token_hash=self._refresh_hash(refresh),
                        grant_id=grant_id,
                        client_id=client.client_id,
                        idle_ttl_s=self.settings.refresh_idle_ttl_s,
                    )
            await write_audit(
                tx,
                [
                    AuditEvent(
                        action="oidc.token",
                        outcome="failure" if failure else "success",
                        actor_type="partner",
                        actor_id=client.client_id,
                        subject_id=code.account_id if code is not None and not failure else None,
                        client_ip=client_ip,
                        details={"grant_type": "authorization_code", "reason": failure}
                        if failure or code is None
                        else {"grant_type": "authorization_code", "grant_id": grant_id, "scope": code.scope},
                    )
                ],
            )
        # The code is spent (committed) whatever went wrong: a code fails once and for all.
        if failure == "unknown_or_used":
            used = await self.repository.used_code(code_hash)
            # Only the client the code was issued to can have leaked it into a replay worth
            # revoking for; another client replaying it must not end a partner's grant.
            if used is not None and used.grant_id is not None and used.client_id == client.client_id:
                await self._revoke_grant(
                    used.grant_id, reason="code_reuse", client_id=client.client_id, client_ip=client_ip
                )
            elif used is not None:
                log.warning("oauth code reused", extra={"client_id": client.client_id})
            raise invalid_grant()
        if failure is not None or code is None:
            raise invalid_grant()
        return self._respond(
            client,
            grant_id=grant_id,
            account_id=code.account_id,
            scope=code.scope,
            acr=code.acr,
            amr=code.amr,
            auth_time=code.auth_time,
            nonce=code.nonce,
            released=release_claims(
                scopes=code.scope.split(),
                options=code.claims,
                vault=self.vault,
                level=code.level,
                phone_enc=code.phone_enc,
                name_enc=code.name_enc,
            ),
            refresh=refresh,
            jkt=jkt,
        )

    def _respond(
        self,
        client: Client,
        *,
        grant_id: str,
        account_id: str,
        scope: str,
        acr: str,
        amr: list[str],
        auth_time: int,
        nonce: str | None,
        released: dict[str, Any] | None,
        refresh: str | None,
        jkt: str | None,
    ) -> TokenResponse:
        """Issue the access token (and the ID token when ``released`` is given)."""
        subject = self._subject(client, account_id)
        extra, token_type = self._binding(jkt)
        access, ttl = self.tokens.issue(
            extra=extra,
            subject=subject,
            session_id=grant_id,
            level=acr,
            client_id=client.client_id,
            audience=API_AUDIENCE,
            scope=scope,
            ttl_s=self.settings.access_token_ttl_s,
        )
        token_id = None
        if released is not None and "openid" in scope.split():
            token_id = self.id_tokens.issue(
                client_id=client.client_id,
                subject=subject,
                auth_time=auth_time,
                acr=acr,
                amr=amr,
                nonce=nonce,
                access_token=access,
                claims=released,
            )
            self.audit.add(id_token_release(client.client_id, account_id, released))  # ledger: a release
        return TokenResponse(
            token_type=token_type,
            access_token=access,
            expires_in=ttl,
            scope=scope,
            refresh_token=refresh,
            id_token=token_id,
        )

    async def _refresh(
        self, client: Client, form: TokenForm, *, client_ip: str | None, jkt: str | None
    ) -> TokenResponse:
        if not form.refresh_token:
            raise invalid_request("refresh_token is required")
        old_hash = self._refresh_hash(form.refresh_token)
        narrowed: tuple[str, ...] | None = None
        if form.scope is not None or client.is_public:
            current = await self.repository.find_refresh_token(old_hash)
            if current is None or current.client_id != client.client_id:
                raise invalid_grant()
            # Checked before rotating: a thief without the key must not spend the token
            # (which would make the rightful client's next refresh look like reuse).
            if current.dpop_jkt is not None and current.dpop_jkt != jkt:
                self._audit("oidc.token", "failure", client, client_ip=client_ip, grant_type="refresh_token")
                raise OAuthError("invalid_dpop_proof", "This refresh token is bound to another DPoP key")
            if form.scope is not None:
                narrowed = parse_scope(form.scope)
                if narrowed is None or not set(narrowed) <= set(current.scope.split()):
                    raise invalid_scope()
        new_token = self._new_refresh_token()
        # A token grant: its audit row commits with the rotation, or neither does.
        async with self.repository.transaction() as tx:
            grant = await self.repository.rotate_refresh_token(
                tx,
                old_hash=old_hash,
                client_id=client.client_id,
                new_hash=self._refresh_hash(new_token),
                idle_ttl_s=self.settings.refresh_idle_ttl_s,
            )
            if grant is not None:
                event = self._event(
                    "oidc.token",
                    "success",
                    client,
                    client_ip=client_ip,
                    grant_type="refresh_token",
                    grant_id=grant.grant_id,
                    subject_id=grant.account_id,
                )
                await write_audit(tx, [event])
        if grant is None:
            spent = await self.repository.find_refresh_token(old_hash)
            if spent is not None and spent.rotated and spent.client_id == client.client_id:
                await self._revoke_grant(
                    spent.grant_id, reason="refresh_reuse", client_id=client.client_id, client_ip=client_ip
                )
            else:
                self._audit("oidc.token", "failure", client, client_ip=client_ip, grant_type="refresh_token")
            raise invalid_grant()
        scope = " ".join(narrowed) if narrowed else grant.scope
        return self._respond(
            client,
            grant_id=grant.grant_id,
            account_id=grant.account_id,
            scope=scope,
            acr=grant.acr,
            amr=grant.amr,
            auth_time=grant.auth_time,
            nonce=None,
            released=None,
            refresh=new_token,
            jkt=jkt,
        )

    # introspection and revocation ---------------------------------------------------------

    async def _verified_access(self, token: str) -> AccessClaims | None:
        try:
            claims = await self.tokens.verify(token, audience=API_AUDIENCE)
        except Unauthorized:
            return None
        revoked = await self.revocations.is_revoked(
            (ACCESS_TOKENS, claims.jti), (GRANTS, claims.sid), (CLIENTS, claims.client_id)
        )
        return None if revoked else claims

    def _credentials(self, form: IntrospectForm, authorization: str | None) -> ClientCredentials:
        return ClientCredentials.from_request(
            authorization,
            client_id=form.client_id,
            client_secret=form.client_secret,
            assertion_type=form.client_assertion_type,
            assertion=form.client_assertion,
        )

    async def introspect(self, form: IntrospectForm, *, authorization: str | None) -> IntrospectionResponse:
        """RFC 7662. A client learns about its own tokens only; anything else is inactive."""
        client = await self.registry.authenticate(
            self._credentials(form, authorization), endpoint_url=self._introspection_url, allow_public=False
        )
        inactive = IntrospectionResponse(active=False)
        token = form.token
        if token.startswith(REFRESH_PREFIX):
            state = await self.repository.find_refresh_token(self._refresh_hash(token))
            if state is None or not state.active or state.client_id != client.client_id:
                return inactive
            return IntrospectionResponse(
                active=True,
                scope=state.scope,
                client_id=client.client_id,
                sub=self._subject(client, state.account_id),
                iat=state.iat,
                exp=state.exp,
                iss=self.issuer,
                acr=state.acr,
            )
        if token.count(".") != 2:
            return inactive
        claims = await self._verified_access(token)
        if claims is None or claims.client_id != client.client_id:
            return inactive
        return IntrospectionResponse(
            active=True,
            scope=claims.scope,
            client_id=claims.client_id,
            # RFC 9449 section 6.2: a bound token's type and key, for the resource to check.
            token_type="DPoP" if claims.jkt else "Bearer",
            cnf={"jkt": claims.jkt} if claims.jkt else None,
            exp=claims.exp,
            iat=claims.iat,
            sub=claims.sub,
            aud=claims.aud,
            iss=claims.iss,
            jti=claims.jti,
            acr=claims.acr,
        )

    async def revoke(self, form: RevokeForm, *, authorization: str | None, client_ip: str | None) -> None:
        """RFC 7009. Unknown tokens and other clients' tokens are a silent no-op (200)."""
        client = await self.registry.authenticate(
            self._credentials(form, authorization), endpoint_url=self._revocation_url, allow_public=True
        )
        token = form.token
        if token.startswith(REFRESH_PREFIX):
            state = await self.repository.find_refresh_token(self._refresh_hash(token))
            if state is not None and state.client_id == client.client_id:
                # RFC 7009 section 2.1: revoking a refresh token ends its grant's access tokens too.
                async with self.repository.transaction() as tx:
                    await self.repository.revoke_grant(tx, state.grant_id, reason="revoked_by_client")
                    await write_audit(
                        tx,
                        [
                            AuditEvent(
                                action="oidc.revoke",
                                outcome="success",
                                actor_type="partner",
                                actor_id=client.client_id,
                                subject_id=state.account_id,
                                client_ip=client_ip,
                                details={"token_type": "refresh_token", "grant_id": state.grant_id},
                            )
                        ],
                    )
                await self.revocations.revoke(GRANTS, [state.grant_id])
            return
        if token.count(".") != 2:
            return
        try:
            claims = await self.tokens.verify(token, audience=API_AUDIENCE)
        except Unauthorized:
            return
        if claims.client_id != client.client_id:
            return
        async with self.repository.transaction() as tx:
            await self.repository.insert_revoked_token(
                tx, jti=claims.jti, client_id=client.client_id, expires_at=claims.exp
            )
            await write_audit(
                tx,
                [
                    AuditEvent(
                        action="oidc.revoke",
                        outcome="success",
                        actor_type="partner",
                        actor_id=client.client_id,
                        client_ip=client_ip,
                        details={"token_type": "access_token", "jti": claims.jti},
                    )
                ],
            )
        await self.revocations.revoke(ACCESS_TOKENS, [claims.jti], expires_at=claims.exp)

    # userinfo -----------------------------------------------------------------------------

    async def userinfo(
        self,
        token: str,
        *,
        client_ip: str | None,
        scheme: str = "bearer",
        dpop_proofs: Sequence[str] = (),
        method: str = "GET",
    ) -> dict[str, Any]:
        """OIDC Core section 5.3: the consented claims of the token's citizen.

        A DPoP-bound token needs the ``DPoP`` scheme and a proof by its key (RFC 9449 section 7).

        Raises:
            OAuthError: ``invalid_token`` / ``invalid_dpop_proof`` (401) or ``insufficient_scope`` (403).
        """
        if token.count(".") != 2:
            raise invalid_token()
        claims = await self._verified_access(token)
        if claims is None or claims.sid is None:
            raise invalid_token()
        try:
            await self.dpop.check_presentation(
                scheme=scheme,
                token=token,
                jkt=claims.jkt,
                proofs=dpop_proofs,
                method=method,
                url=self._userinfo_url,
            )
        except PresentationError as exc:
            raise OAuthError(exc.error, exc.description, status=401, headers=exc.headers) from None
        if "openid" not in claims.scopes:
            raise insufficient_scope("openid")
        grant = await self.repository.grant_with_account(claims.sid)
        client = await self.registry.get(claims.client_id)
        if grant is None or client is None or grant.client_id != claims.client_id:
            raise invalid_token()
        subject = self._subject(client, grant.account_id)
        if not hmac.compare_digest(subject, claims.sub):
            raise invalid_token()
        granted = set(grant.scope.split()) & claims.scopes
        released = release_claims(
            scopes=granted,
            options=grant.claims,
            vault=self.vault,
            level=grant.level,
            phone_enc=grant.phone_enc,
            name_enc=grant.name_enc,
        )
        self._audit(
            "oidc.userinfo",
            "success",
            client,
            client_ip=client_ip,
            subject_id=grant.account_id,
            claims=sorted(released),
        )
        return {"sub": subject, **released}
