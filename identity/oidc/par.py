"""Pushed Authorization Requests (RFC 9126), the FAPI 2.0 way to start an authorization.

The client posts its authorization request to ``POST /oauth/par``, authenticated like at the
token endpoint, and gets a ``request_uri`` (``urn:ietf:params:oauth:request_uri:…``, 256
random bits). The browser (``GET /oauth/authorize``) or the app (``POST /oauth/authorize``)
then carries only ``client_id`` + ``request_uri``: the request itself never passes through
the front channel, where it could be read or altered.

A ``request_uri`` lives ``par_ttl_s`` (60 s by default), works once (Redis ``GETDEL``), and
only with the ``client_id`` that pushed it. Stored under a hash of the URI, so a Redis dump
does not hand out usable request URIs. Clients registered with ``require_par`` may start an
authorization in no other way; for the others PAR is optional
(``require_pushed_authorization_requests`` is ``false`` in discovery).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping, Sequence

import msgspec

from core.redis import Redis
from identity.oidc.authorization import Authorizer, RedirectableError, UnsafeAuthorizationRequest
from identity.oidc.clients import ClientCredentials, ClientRegistry
from identity.oidc.dpop import DPoPError, DPoPVerifier, dpop_error
from identity.oidc.errors import OAuthError, invalid_request
from identity.oidc.schemas import ParForm, ParResponse
from identity.oidc.settings import OidcSettings

__all__ = ["AUTHORIZATION_PARAMS", "JKT_PATTERN", "REQUEST_URI_PREFIX", "PushedRequest", "PushedRequests"]

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
#: An RFC 7638 SHA-256 JWK thumbprint, base64url (``dpop_jkt``).
JKT_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")
#: The authorization request parameters a pushed request may carry (and the browser reads).
AUTHORIZATION_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
)


class PushedRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A stored pushed request: the client that pushed it and its parameters."""

    client_id: str
    params: dict[str, str]
    dpop_jkt: str | None = None


class PushedRequests:
    """Accepts pushed requests and redeems their ``request_uri`` once.

    Args:
        redis: Storage of pushed requests.
        registry: Client authentication and look-up.
        authorizer: The authorization request rules (the same as the front channel's).
        dpop: Checks a ``DPoP`` proof sent with the push.
        settings: ``par_ttl_s``.
    """

    def __init__(
        self,
        *,
        redis: Redis,
        registry: ClientRegistry,
        authorizer: Authorizer,
        dpop: DPoPVerifier,
        settings: OidcSettings,
    ) -> None:
        self._redis = redis
        self._registry = registry
        self._authorizer = authorizer
        self._dpop = dpop
        self._ttl = settings.par_ttl_s
        # The URL clients push to: DPoP proofs name it (``htu``), so it is the public one.
        self._push_url = f"{authorizer.issuer}/oauth/par"

    @staticmethod
    def _key(request_uri: str) -> str:
        return "oc:oidc:par:" + hashlib.sha256(request_uri.encode()).hexdigest()

    async def push(self, form: ParForm, *, authorization: str | None, dpop_proofs: Sequence[str]) -> ParResponse:
        """``POST /oauth/par``: authenticate the client, validate and store the request.

        Raises:
            OAuthError: ``invalid_client`` (401), ``invalid_request`` and the authorization
                request's own errors (400), ``invalid_dpop_proof``/``use_dpop_nonce`` (400).
        """
        credentials = ClientCredentials.from_request(
            authorization,
            client_id=form.client_id,
            client_secret=form.client_secret,
            assertion_type=form.client_assertion_type,
            assertion=form.client_assertion,
        )
        client = await self._registry.authenticate(credentials, endpoint_url=self._push_url, allow_public=True)
        if form.client_id is not None and form.client_id != client.client_id:
            raise invalid_request("client_id does not match the authenticated client")
        if form.request_uri is not None:
            raise invalid_request("request_uri may not be pushed")
        try:
            client = await self._authorizer.client_and_redirect(client.client_id, form.redirect_uri)
            params = self._authorizer.validate(
                client,
                form.redirect_uri or "",
                response_type=form.response_type,
                scope=form.scope,
                code_challenge=form.code_challenge,
                code_challenge_method=form.code_challenge_method,
                state=form.state,
                nonce=form.nonce,
                prompt=form.prompt,
                max_age=form.max_age,
                request_object=form.request is not None,
            )
        except UnsafeAuthorizationRequest as exc:
            raise invalid_request(exc.message) from None
        except RedirectableError as exc:
            raise OAuthError(exc.error, exc.description) from None
        if form.dpop_jkt is not None and not JKT_PATTERN.fullmatch(form.dpop_jkt):
            raise invalid_request("dpop_jkt must be a base64url SHA-256 JWK thumbprint")
        jkt: str | None = None
        if dpop_proofs:
            try:
                proof = await self._dpop.verify(dpop_proofs, method="POST", url=self._push_url, require_nonce=True)
            except DPoPError as exc:
                raise dpop_error(exc, self._dpop.nonce()) from None
            jkt = proof.jkt
        if form.dpop_jkt is not None and jkt is not None and form.dpop_jkt != jkt:
            raise OAuthError("invalid_dpop_proof", "dpop_jkt does not match the DPoP proof's key")
        jkt = jkt or form.dpop_jkt
        stored = {name: value for name in AUTHORIZATION_PARAMS if isinstance(value := getattr(form, name, None), str)}
        stored["client_id"] = client.client_id
        stored["redirect_uri"] = params.redirect_uri
        request_uri = REQUEST_URI_PREFIX + secrets.token_urlsafe(32)
        record = PushedRequest(client_id=client.client_id, params=stored, dpop_jkt=jkt)
        await self._redis.set(self._key(request_uri), msgspec.json.encode(record), ex=self._ttl)
        return ParResponse(request_uri=request_uri, expires_in=self._ttl)

    async def redeem(self, client_id: str | None, request_uri: str, *, consume: bool = True) -> PushedRequest:
        """The pushed request behind ``request_uri``, for the client that pushed it.

        Args:
            client_id: The ``client_id`` the front channel carried (required).
            request_uri: The URI the push returned.
            consume: Use it up (the authorization itself) or only look (the app's preview).

        Raises:
            UnsafeAuthorizationRequest: unknown, expired, used, or another client's.
        """
        if not client_id or not request_uri.startswith(REQUEST_URI_PREFIX) or len(request_uri) > 128:
            raise UnsafeAuthorizationRequest("The request_uri is not valid.")
        key = self._key(request_uri)
        raw = await (self._redis.getdel(key) if consume else self._redis.get(key))
        if raw is None:
            raise UnsafeAuthorizationRequest("The request_uri has expired or was already used.")
        record = msgspec.json.decode(raw, type=PushedRequest)
        if record.client_id != client_id:
            raise UnsafeAuthorizationRequest("The request_uri belongs to another client.")
        return record

    async def front_channel_query(self, query: Mapping[str, list[str]]) -> dict[str, list[str]]:
        """The browser's ``GET /oauth/authorize`` query, with a pushed request resolved.

        Raises:
            UnsafeAuthorizationRequest: a bad ``request_uri``, or no ``request_uri`` from a
                client that must push its requests (shown, never redirected).
        """
        client_ids = query.get("client_id", [])
        request_uris = query.get("request_uri", [])
        if not request_uris:
            if len(client_ids) == 1:
                await self.require_push(client_ids[0])
            return dict(query)
        if len(request_uris) > 1 or len(client_ids) != 1:
            raise UnsafeAuthorizationRequest("client_id and request_uri must appear once.")
        record = await self.redeem(client_ids[0], request_uris[0])
        # RFC 9126 section 4: only the pushed parameters count; front-channel extras are ignored.
        pushed = {name: [value] for name, value in record.params.items()}
        if record.dpop_jkt is not None:
            pushed["dpop_jkt"] = [record.dpop_jkt]
        return pushed

    async def require_push(self, client_id: str) -> None:
        """Refuse a front-channel request from a client registered with ``require_par``.

        Raises:
            UnsafeAuthorizationRequest: the client must use PAR.
        """
        client = await self._registry.get(client_id) if len(client_id) <= 64 else None
        if client is not None and client.require_par:
            raise UnsafeAuthorizationRequest("This client must use pushed authorization requests (PAR).")
