"""HTTP endpoints of the OpenID Connect provider: thin, each decodes a Struct and calls one service.

Handlers receive the service they call by name from :data:`~identity.oidc.dependencies.OIDC_DEPENDENCIES`
(``token_endpoint``, ``pushed_requests``, ``browser_flow``, ``consents``, or ``oidc`` for
discovery and the app's authorization).

- ``DiscoveryController``: ``/.well-known/openid-configuration``.
- ``OAuthController``: token, introspection, revocation, userinfo. Form bodies, OAuth error
  JSON (its own exception handlers), ``Cache-Control: no-store``.
- ``AuthorizeController``: ``/oauth/authorize`` for the app (JSON, citizen bearer token)
  and for browsers (HTML pages posting forms to ``/oauth/authorize/{otp,login,consent}``).
- ``ConsentController``: the citizen lists and withdraws consents (``/v1/me/consents``).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.enums import MediaType, RequestEncodingType
from litestar.exceptions import ValidationException
from litestar.openapi import ResponseSpec
from litestar.params import Body, FromPath, JSONBody, Parameter
from litestar.response import Redirect
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT
from litestar.types import ExceptionHandlersMap

from core.http import BEARER, error_responses
from identity.dependencies import client_ip, presented_token
from identity.oidc.browser import BrowserFlow, BrowserResult
from identity.oidc.consent import Consents
from identity.oidc.dependencies import OIDC_DEPENDENCIES
from identity.oidc.errors import NO_STORE, invalid_request, oauth_exception_handlers
from identity.oidc.grants import TokenEndpoint
from identity.oidc.pages import PAGE_HEADERS, error_page
from identity.oidc.par import PushedRequests
from identity.oidc.schemas import (
    AppAuthorizeRequest,
    AuthorizePreview,
    AuthorizeRedirect,
    BrowserConsentForm,
    BrowserOtpForm,
    BrowserPhoneForm,
    ConsentList,
    IntrospectForm,
    IntrospectionResponse,
    ParForm,
    ParResponse,
    ProviderMetadata,
    RevokeForm,
    TokenForm,
    TokenResponse,
    UserinfoForm,
)
from identity.oidc.service import OidcProvider
from identity.principal import Principal

__all__ = ["AuthorizeController", "ConsentController", "DiscoveryController", "OAuthController"]

FORM: dict[str, Any] = {"content_types": ("application/x-www-form-urlencoded",)}


def _oauth_errors(*statuses: int) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(
            data_container=dict[str, str],
            description="OAuth error: {error, error_description} (RFC 6749 section 5.2)",
        )
        for status in sorted({400, *statuses})
    }


class DiscoveryController(Controller):
    """OpenID Provider Metadata."""

    path = "/.well-known"
    tags = ["openid-connect"]
    dependencies = OIDC_DEPENDENCIES

    @get("/openid-configuration", summary="OpenID Connect discovery document", cache_control=None)
    async def configuration(self, oidc: NamedDependency[OidcProvider]) -> Response[ProviderMetadata]:
        """Issuer, endpoints, and what each supports (OpenID Connect Discovery 1.0)."""
        return Response(oidc.metadata(), headers={"Cache-Control": "public, max-age=300"})


class OAuthController(Controller):
    """The OAuth 2.0 endpoints partners' client libraries call."""

    path = "/oauth"
    tags = ["openid-connect"]
    dependencies = OIDC_DEPENDENCIES
    exception_handlers: ExceptionHandlersMap = oauth_exception_handlers()

    @post("/token", status_code=HTTP_200_OK, opt=FORM, responses=_oauth_errors(401))
    async def token(
        self,
        data: Annotated[TokenForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        token_endpoint: NamedDependency[TokenEndpoint],
        request: Request[Any, Any, Any],
    ) -> Response[TokenResponse]:
        """Token endpoint: ``authorization_code`` (PKCE S256), ``refresh_token``, ``client_credentials``.

        Client authentication: ``client_secret_basic``, ``client_secret_post``,
        ``private_key_jwt``, or ``none`` for public clients (codes and refresh tokens only).
        """
        result = await token_endpoint.token(
            data,
            authorization=request.headers.get("authorization"),
            client_ip=client_ip(request),
            dpop_proofs=request.headers.getall("dpop", []),
        )
        return Response(result, headers=NO_STORE)

    @post("/par", status_code=HTTP_201_CREATED, opt=FORM, responses=_oauth_errors(401))
    async def par(
        self,
        data: Annotated[ParForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        pushed_requests: NamedDependency[PushedRequests],
        request: Request[Any, Any, Any],
    ) -> Response[ParResponse]:
        """Pushed Authorization Request (RFC 9126): the authorization request, authenticated
        like a token request, in exchange for a single-use ``request_uri``.

        A ``DPoP`` proof sent here binds the authorization code to its key (RFC 9449 section 10).
        """
        result = await pushed_requests.push(
            data,
            authorization=request.headers.get("authorization"),
            dpop_proofs=request.headers.getall("dpop", []),
        )
        return Response(result, status_code=HTTP_201_CREATED, headers=NO_STORE)

    @post("/introspect", status_code=HTTP_200_OK, opt=FORM, responses=_oauth_errors(401))
    async def introspect(
        self,
        data: Annotated[IntrospectForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        token_endpoint: NamedDependency[TokenEndpoint],
        request: Request[Any, Any, Any],
    ) -> Response[IntrospectionResponse]:
        """RFC 7662 introspection of the calling client's own tokens (others: inactive)."""
        result = await token_endpoint.introspect(data, authorization=request.headers.get("authorization"))
        return Response(result, headers=NO_STORE)

    @post("/revoke", status_code=HTTP_200_OK, opt=FORM, responses=_oauth_errors(401))
    async def revoke(
        self,
        data: Annotated[RevokeForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        token_endpoint: NamedDependency[TokenEndpoint],
        request: Request[Any, Any, Any],
    ) -> Response[bytes]:
        """RFC 7009 revocation. Always 200 (empty body) for an authenticated client, whatever the token."""
        await token_endpoint.revoke(
            data, authorization=request.headers.get("authorization"), client_ip=client_ip(request)
        )
        return Response(b"", media_type=MediaType.TEXT, headers=NO_STORE)

    @get("/userinfo", security=BEARER, responses=_oauth_errors(401, 403))
    async def userinfo(
        self, token_endpoint: NamedDependency[TokenEndpoint], request: Request[Any, Any, Any]
    ) -> Response[dict[str, Any]]:
        """The consented claims of the citizen behind the access token (Bearer, or DPoP with a proof)."""
        scheme, token = presented_token(request)
        claims = await token_endpoint.userinfo(
            token,
            client_ip=client_ip(request),
            scheme=scheme,
            dpop_proofs=request.headers.getall("dpop", []),
            method="GET",
        )
        return Response(claims, headers=NO_STORE)

    @post("/userinfo", status_code=HTTP_200_OK, opt=FORM, security=BEARER, responses=_oauth_errors(401, 403))
    async def userinfo_post(
        self,
        data: Annotated[UserinfoForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        token_endpoint: NamedDependency[TokenEndpoint],
        request: Request[Any, Any, Any],
    ) -> Response[dict[str, Any]]:
        """Userinfo with the token in the header or in the form body (RFC 6750 section 2.2)."""
        in_header = request.headers.get("authorization")
        if in_header and data.access_token:
            raise invalid_request("Send the access token once")
        scheme, token = ("bearer", data.access_token) if data.access_token else presented_token(request)
        claims = await token_endpoint.userinfo(
            token,
            client_ip=client_ip(request),
            scheme=scheme,
            dpop_proofs=request.headers.getall("dpop", []),
            method="POST",
        )
        return Response(claims, headers=NO_STORE)


def _browser_response(result: BrowserResult, *, secure: bool) -> Response[Any]:
    cookies = [
        Cookie(
            key=c.name,
            value=c.value,
            max_age=c.max_age,
            path="/oauth/authorize",
            httponly=True,
            secure=secure,
            samesite="lax",
        )
        for c in result.cookies
    ]
    if result.location is not None:
        return Redirect(
            result.location,
            status_code=303 if result.status == 303 else 302,
            cookies=cookies,
            headers={"Cache-Control": "no-store"},
        )
    return Response(
        result.html or "",
        status_code=result.status,
        media_type=MediaType.HTML,
        headers=dict(PAGE_HEADERS),
        cookies=cookies,
    )


def _on_bad_form(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    return Response(
        error_page("请求无效 · The form was not valid."),
        status_code=400,
        media_type=MediaType.HTML,
        headers=dict(PAGE_HEADERS),
    )


_BROWSER_ERRORS: ExceptionHandlersMap = {ValidationException: _on_bad_form}

# The browser flow's other answers: a redirect (to the partner, with a code or an OAuth error),
# an HTML error page when the request cannot be answered by a redirect (unknown client, a
# redirect URI not registered), and the service-wide 503 when storage is down.
_BROWSER_START_RESPONSES: dict[int, ResponseSpec] = {
    302: ResponseSpec(None, description="Redirect to the partner's redirect URI (code or error)"),
    400: ResponseSpec(
        str, description="Error page: the request cannot be sent back to the partner", media_type=MediaType.HTML
    ),
    503: error_responses()[503],
}


class AuthorizeController(Controller):
    """The authorization endpoint, for the app and for browsers."""

    path = "/oauth/authorize"
    tags = ["openid-connect"]
    dependencies = OIDC_DEPENDENCIES

    @post("/", status_code=HTTP_200_OK, security=BEARER, responses=error_responses(401))
    async def app_authorize(
        self,
        data: JSONBody[AppAuthorizeRequest],
        principal: NamedDependency[Principal],
        oidc: NamedDependency[OidcProvider],
        request: Request[Any, Any, Any],
    ) -> AuthorizeRedirect:
        """The app, for its signed-in citizen, approves a partner: consent is recorded and
        the answer is the partner's redirect URI with ``code``, ``state`` and ``iss``.

        Errors in the client or redirect URI are 400 problems; other errors are 400
        problems with ``error`` and a ``redirect_to`` carrying the error for the partner.
        """
        if data.request_uri is None:
            # Without a pushed request the whole request is in the body: a missing member is
            # the same validation error it was before PAR made these members optional.
            for name in ("redirect_uri", "scope", "code_challenge", "code_challenge_method"):
                if getattr(data, name) is None:
                    raise ValidationException(
                        f"Object missing required field `{name}`",
                        extra=[{"message": f"Object missing required field `{name}`", "key": name, "source": "body"}],
                    )
        return await oidc.app_authorize(principal, data, client_ip=client_ip(request))

    @get("/preview", security=BEARER, responses=error_responses(401))
    async def preview(
        self,
        principal: NamedDependency[Principal],
        oidc: NamedDependency[OidcProvider],
        client_id: Annotated[str, Parameter(query="client_id", max_length=64)],
        redirect_uri: Annotated[str | None, Parameter(query="redirect_uri", max_length=512)] = None,
        # ``scope`` is a name Litestar reserves for the ASGI scope: read it under an alias.
        requested_scope: Annotated[str | None, Parameter(query="scope", max_length=512)] = None,
        request_uri: Annotated[str | None, Parameter(query="request_uri", max_length=128)] = None,
    ) -> AuthorizePreview:
        """What the app's consent screen should show for a partner's request: ``redirect_uri``
        and ``scope``, or the ``request_uri`` of a pushed request (looked at, not used up)."""
        return await oidc.preview(
            principal,
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=requested_scope,
            request_uri=request_uri,
        )

    @get(
        "/",
        media_type=MediaType.HTML,
        include_in_schema=True,
        summary="Browser authorization (login and consent pages)",
        exception_handlers=_BROWSER_ERRORS,
        responses=_BROWSER_START_RESPONSES,
    )
    async def browser_start(
        self, browser_flow: NamedDependency[BrowserFlow], request: Request[Any, Any, Any]
    ) -> Response[Any]:
        """Authorization code request from a partner's web page (``response_type=code``,
        PKCE S256 required). Shows the login page, then the consent page, then redirects."""
        query = {key: request.query_params.getall(key) for key in request.query_params}
        result = await browser_flow.start(query, request.cookies, client_ip=client_ip(request))
        return _browser_response(result, secure=browser_flow.secure_cookies)

    @post("/otp", opt=FORM, media_type=MediaType.HTML, include_in_schema=False, exception_handlers=_BROWSER_ERRORS)
    async def browser_otp(
        self,
        data: Annotated[BrowserPhoneForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        browser_flow: NamedDependency[BrowserFlow],
        request: Request[Any, Any, Any],
    ) -> Response[Any]:
        """Login page: send the one-time code."""
        result = await browser_flow.send_code(data, request.cookies, client_ip=client_ip(request))
        return _browser_response(result, secure=browser_flow.secure_cookies)

    @post("/login", opt=FORM, media_type=MediaType.HTML, include_in_schema=False, exception_handlers=_BROWSER_ERRORS)
    async def browser_login(
        self,
        data: Annotated[BrowserOtpForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        browser_flow: NamedDependency[BrowserFlow],
        request: Request[Any, Any, Any],
    ) -> Response[Any]:
        """Code page: sign in."""
        result = await browser_flow.login(data, request.cookies, client_ip=client_ip(request))
        return _browser_response(result, secure=browser_flow.secure_cookies)

    @post("/consent", opt=FORM, media_type=MediaType.HTML, include_in_schema=False, exception_handlers=_BROWSER_ERRORS)
    async def browser_consent(
        self,
        data: Annotated[BrowserConsentForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        browser_flow: NamedDependency[BrowserFlow],
        request: Request[Any, Any, Any],
    ) -> Response[Any]:
        """Consent page: approve or deny."""
        result = await browser_flow.consent(data, request.cookies, client_ip=client_ip(request))
        return _browser_response(result, secure=browser_flow.secure_cookies)


class ConsentController(Controller):
    """What the signed-in citizen shares with partners."""

    path = "/v1/me/consents"
    tags = ["openid-connect"]
    security = BEARER
    dependencies = OIDC_DEPENDENCIES

    @get("/", responses=error_responses(401))
    async def list_consents(
        self, principal: NamedDependency[Principal], consents: NamedDependency[Consents]
    ) -> ConsentList:
        """Every partner the citizen shares something with, and what."""
        return await consents.list(principal.account_id)

    @delete("/{client_id:str}", status_code=HTTP_204_NO_CONTENT, responses=error_responses(401, 404))
    async def withdraw(
        self,
        client_id: FromPath[str],
        principal: NamedDependency[Principal],
        consents: NamedDependency[Consents],
        request: Request[Any, Any, Any],
    ) -> None:
        """Withdraw consent: the partner's refresh and access tokens for this citizen stop working."""
        await consents.withdraw(principal.account_id, client_id, client_ip=client_ip(request))
