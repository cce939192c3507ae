"""The OpenID Connect provider, assembled: one object per process, built from shared resources.

:class:`OidcProvider` holds the parts (client registry, authorizer, browser flow, token
endpoint, consents, revocations) and implements what sits between them: the discovery
document and the app's authorization (``POST /oauth/authorize``), which turns a citizen's
app session into a code for a partner.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

import msgspec

from core.audit import AuditBatcher
from core.crypto import Vault
from core.db import Pool
from core.errors import BadRequest, Unauthorized
from core.keys import KeyManager
from core.levels import LEVELS
from core.redis import Redis
from identity.oidc.authorization import (
    AMR_OF_METHOD,
    AuthorizationParams,
    Authorizer,
    RedirectableError,
    UnsafeAuthorizationRequest,
)
from identity.oidc.browser import BrowserFlow
from identity.oidc.clients import ASSERTION_ALGORITHMS, ClientRegistry, SecretHasher
from identity.oidc.consent import Consents
from identity.oidc.dpop import DPOP_ALGORITHMS, DPoPVerifier
from identity.oidc.grants import TokenEndpoint
from identity.oidc.id_tokens import IdTokens
from identity.oidc.pairwise import PairwiseSubjects
from identity.oidc.par import PushedRequests
from identity.oidc.repository import OidcRepository
from identity.oidc.schemas import (
    AppAuthorizeRequest,
    AuthorizePreview,
    AuthorizeRedirect,
    ClientSummary,
    ProviderMetadata,
    ScopeDescription,
)
from identity.oidc.scopes import SCOPES, claims_supported
from identity.oidc.settings import OidcSettings
from identity.principal import Principal
from identity.revocation import RevocationSet
from identity.service import IdentityService
from identity.tokens import AccessTokens

__all__ = ["OidcProvider"]

log = logging.getLogger("onecity.oidc")


class OidcProvider:
    """Everything the OIDC endpoints need.

    Args:
        pool: PostgreSQL.
        redis: Redis.
        vault: Keyed hashes, pairwise key, decryption of released claims.
        keys: Signing keys (``token`` purpose for ID tokens).
        tokens: Access token issuer/verifier (shared with citizen identity).
        identity: Citizen identity (OTP login in the browser, sessions).
        settings: Lifetimes and caches.
        issuer: The issuer URL (``settings.identity.issuer``: the public URL).
        revocations: The shared revocation set (also used by staff and partner APIs).
        audit: The process's batched audit writer, for the high-volume events (machine
            grants, userinfo reads); security events are written in their transaction.
    """

    def __init__(
        self,
        *,
        pool: Pool,
        redis: Redis,
        vault: Vault,
        keys: KeyManager,
        tokens: AccessTokens,
        identity: IdentityService,
        settings: OidcSettings,
        issuer: str,
        revocations: RevocationSet,
        audit: AuditBatcher,
    ) -> None:
        self.settings = settings
        self.issuer = issuer.rstrip("/")
        self.repository = OidcRepository(pool)
        self.hasher = SecretHasher(vault)
        self.revocations = revocations
        self.registry = ClientRegistry(
            self.repository,
            redis,
            self.hasher,
            issuer=self.issuer,
            cache_ttl_s=settings.client_cache_ttl_s,
            assertion_max_lifetime_s=settings.assertion_max_lifetime_s,
            clock_skew_s=settings.clock_skew_s,
        )
        self.pairwise = PairwiseSubjects(vault)
        self.audit = audit
        self.authorizer = Authorizer(
            repository=self.repository, registry=self.registry, vault=vault, settings=settings, issuer=self.issuer
        )
        self.dpop = DPoPVerifier(
            redis, vault, max_age_s=settings.dpop_proof_max_age_s, clock_skew_s=settings.clock_skew_s
        )
        self.par = PushedRequests(
            redis=redis, registry=self.registry, authorizer=self.authorizer, dpop=self.dpop, settings=settings
        )
        self.browser = BrowserFlow(
            authorizer=self.authorizer, pushed=self.par, identity=identity, redis=redis, settings=settings
        )
        self.endpoint = TokenEndpoint(
            repository=self.repository,
            registry=self.registry,
            tokens=tokens,
            id_tokens=IdTokens(keys, issuer=self.issuer, ttl_s=settings.id_token_ttl_s),
            pairwise=self.pairwise,
            revocations=revocations,
            vault=vault,
            audit=self.audit,
            settings=settings,
            issuer=self.issuer,
            dpop=self.dpop,
        )
        self.consents = Consents(self.repository, revocations)

    # discovery ---------------------------------------------------------------------------

    async def client_names(self, client_ids: Collection[str]) -> dict[str, str]:
        """The display names of registered partners by client id, for screens that show who
        acted (the citizen's data-access ledger); ids of unknown clients are left out."""
        if not client_ids:
            return {}
        return await self.repository.client_names(sorted(client_ids))

    def metadata(self) -> ProviderMetadata:
        """The discovery document: every value here is what the endpoints actually do."""
        iss = self.issuer
        auth_methods = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
        algs = list(ASSERTION_ALGORITHMS)
        return ProviderMetadata(
            issuer=iss,
            authorization_endpoint=f"{iss}/oauth/authorize",
            token_endpoint=f"{iss}/oauth/token",
            userinfo_endpoint=f"{iss}/oauth/userinfo",
            jwks_uri=f"{iss}/.well-known/jwks.json",
            introspection_endpoint=f"{iss}/oauth/introspect",
            revocation_endpoint=f"{iss}/oauth/revoke",
            scopes_supported=list(SCOPES),
            response_types_supported=["code"],
            response_modes_supported=["query"],
            grant_types_supported=["authorization_code", "refresh_token", "client_credentials"],
            subject_types_supported=["pairwise"],
            id_token_signing_alg_values_supported=["EdDSA"],
            token_endpoint_auth_methods_supported=[*auth_methods, "none"],
            token_endpoint_auth_signing_alg_values_supported=algs,
            introspection_endpoint_auth_methods_supported=auth_methods,
            introspection_endpoint_auth_signing_alg_values_supported=algs,
            revocation_endpoint_auth_methods_supported=[*auth_methods, "none"],
            revocation_endpoint_auth_signing_alg_values_supported=algs,
            code_challenge_methods_supported=["S256"],
            claims_supported=claims_supported(),
            acr_values_supported=list(LEVELS),
            prompt_values_supported=["none", "login", "consent", "select_account"],
            claims_parameter_supported=False,
            request_parameter_supported=False,
            request_uri_parameter_supported=False,
            require_request_uri_registration=False,
            authorization_response_iss_parameter_supported=True,
            ui_locales_supported=["zh-CN", "en"],
            pushed_authorization_request_endpoint=f"{iss}/oauth/par",
            require_pushed_authorization_requests=False,  # per client: ``clients add --require-par``
            dpop_signing_alg_values_supported=list(DPOP_ALGORITHMS),
        )

    # the app's authorization --------------------------------------------------------------

    async def _validated(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        scope: str,
        code_challenge: str,
        state: str | None = None,
        nonce: str | None = None,
        pushed: bool = False,
    ) -> AuthorizationParams:
        try:
            if not pushed:
                await self.par.require_push(client_id)
            client = await self.authorizer.client_and_redirect(client_id, redirect_uri)
        except UnsafeAuthorizationRequest as exc:
            raise BadRequest(exc.message, extensions={"error": "invalid_request"}) from None
        try:
            return self.authorizer.validate(
                client,
                redirect_uri,
                response_type="code",
                scope=scope,
                code_challenge=code_challenge,
                code_challenge_method="S256",
                state=state,
                nonce=nonce,
            )
        except RedirectableError as exc:
            # The app decides: show the error, or forward it to the partner with redirect_to.
            raise BadRequest(
                exc.description,
                extensions={
                    "error": exc.error,
                    "redirect_to": self.authorizer.error_redirect(redirect_uri, state, exc.error, exc.description),
                },
            ) from None

    async def _pushed(self, client_id: str, request_uri: str, *, consume: bool) -> tuple[dict[str, str], str | None]:
        try:
            record = await self.par.redeem(client_id, request_uri, consume=consume)
        except UnsafeAuthorizationRequest as exc:
            raise BadRequest(exc.message, extensions={"error": "invalid_request"}) from None
        return record.params, record.dpop_jkt

    async def preview(
        self,
        principal: Principal,
        *,
        client_id: str,
        redirect_uri: str | None,
        scope: str | None,
        request_uri: str | None = None,
    ) -> AuthorizePreview:
        """What the app's consent screen shows for a partner's request (pushed or not).

        A pushed request is only looked at here: ``POST /oauth/authorize`` uses it up.
        """
        if request_uri is not None:
            pushed, _ = await self._pushed(client_id, request_uri, consume=False)
            redirect_uri, scope = pushed.get("redirect_uri"), pushed.get("scope")
        if not redirect_uri or scope is None:
            raise BadRequest(
                "redirect_uri and scope (or request_uri) are required", extensions={"error": "invalid_request"}
            )
        params = await self._validated(
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=scope,
            code_challenge="A" * 43,
            pushed=request_uri is not None,
        )
        existing = await self.authorizer.consents(principal.account_id, params.client.client_id)
        return AuthorizePreview(
            client=ClientSummary(client_id=params.client.client_id, name=params.client.name),
            scopes=[
                ScopeDescription(scope=s, description=en, description_zh=zh, consented=s in existing)
                for s, en, zh in self.authorizer.describe(params.scopes)
            ],
            consent_required=bool(self.authorizer.missing_consent(params, existing)),
        )

    async def app_authorize(
        self, principal: Principal, request: AppAuthorizeRequest, *, client_ip: str | None
    ) -> AuthorizeRedirect:
        """The citizen approved the partner in the app: record consent, issue a code.

        With ``request_uri`` the pushed request (RFC 9126) is used up and is the whole request.
        """
        dpop_jkt: str | None = None
        if request.request_uri is not None:
            pushed, dpop_jkt = await self._pushed(request.client_id, request.request_uri, consume=True)
            if pushed.get("code_challenge_method") != "S256":
                raise BadRequest("code_challenge_method must be S256", extensions={"error": "invalid_request"})
            params = await self._validated(
                client_id=request.client_id,
                redirect_uri=pushed["redirect_uri"],
                scope=pushed.get("scope", ""),
                code_challenge=pushed.get("code_challenge", ""),
                state=pushed.get("state"),
                nonce=pushed.get("nonce"),
                pushed=True,
            )
            params = msgspec.structs.replace(params, dpop_jkt=dpop_jkt)
        else:
            if not request.redirect_uri or request.scope is None or request.code_challenge is None:
                raise BadRequest(
                    "redirect_uri, scope and code_challenge (or request_uri) are required",
                    extensions={"error": "invalid_request"},
                )
            if request.code_challenge_method != "S256":
                raise BadRequest("code_challenge_method must be S256", extensions={"error": "invalid_request"})
            params = await self._validated(
                client_id=request.client_id,
                redirect_uri=request.redirect_uri,
                scope=request.scope,
                code_challenge=request.code_challenge,
                state=request.state,
                nonce=request.nonce,
            )
        context = await self.repository.session_context(principal.session_id, principal.account_id)
        if context is None:
            raise Unauthorized("The session has ended", error="invalid_token")
        location = await self.authorizer.complete(
            params,
            account_id=principal.account_id,
            acr=context.level,
            amr=AMR_OF_METHOD.get(context.auth_method, ("otp",)),
            auth_time=context.auth_time,
            share_full_name=request.share_full_name if "profile" in params.scopes else None,
            channel="app",
            client_ip=client_ip,
        )
        return AuthorizeRedirect(redirect_to=location)
