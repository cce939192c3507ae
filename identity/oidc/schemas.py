"""Request and response bodies of the OpenID Connect provider.

The OAuth endpoints' form bodies (token, introspection, revocation, userinfo) do *not*
forbid unknown fields: RFC 6749 section 3.2 says the server MUST ignore unrecognised
parameters, and client libraries send extras. Every field is still typed and bounded, and a
repeated parameter (which the RFC forbids) fails validation as ``invalid_request``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from core.structs import FrozenStruct, Request, text, whole

__all__ = [
    "AppAuthorizeRequest",
    "AuthorizePreview",
    "AuthorizeRedirect",
    "BrowserConsentForm",
    "BrowserOtpForm",
    "BrowserPhoneForm",
    "ClientSummary",
    "ConsentInfo",
    "ConsentList",
    "IntrospectForm",
    "IntrospectionResponse",
    "ParForm",
    "ParResponse",
    "ProviderMetadata",
    "RevokeForm",
    "ScopeDescription",
    "TokenForm",
    "TokenResponse",
    "UserinfoForm",
]

ClientId = Annotated[str, text(64, nfc=False, examples=["demo-partner"])]
Uri = Annotated[str, text(512, nfc=False)]
ScopeText = Annotated[str, text(512, min_length=0, nfc=False, examples=["openid profile"])]
State = Annotated[str, text(512, min_length=0, nfc=False)]
CodeChallenge = Annotated[
    str,
    msgspec.Meta(
        pattern=whole(r"[A-Za-z0-9_-]{43}"), description="BASE64URL(SHA256(code_verifier)), RFC 7636 (S256 only)"
    ),
]
Param = Annotated[str, text(512, min_length=0, nfc=False)]
TokenText = Annotated[str, text(8192, min_length=0, nfc=False)]


RequestUri = Annotated[
    str,
    msgspec.Meta(
        max_length=128,
        pattern=whole(r"urn:ietf:params:oauth:request_uri:[A-Za-z0-9_-]{1,90}"),
        description="From POST /oauth/par (RFC 9126)",
    ),
]


class AppAuthorizeRequest(Request):
    """The app approves a partner for the signed-in citizen (authorization code with PKCE).

    Either the whole request (``redirect_uri``, ``scope``, ``code_challenge``,
    ``code_challenge_method``, ``state``, ``nonce``) or, for a pushed request (RFC 9126),
    only ``client_id`` + ``request_uri`` (anything else sent with it is ignored).

    ``share_full_name``: with the ``profile`` scope, the citizen chose to share the full
    name rather than the masked one (``张*``).
    """

    client_id: ClientId
    redirect_uri: Uri | None = None
    scope: ScopeText | None = None
    code_challenge: CodeChallenge | None = None
    code_challenge_method: Literal["S256"] | None = None
    state: State | None = None
    nonce: State | None = None
    response_type: Literal["code"] = "code"
    share_full_name: bool = False
    request_uri: RequestUri | None = None


class AuthorizeRedirect(FrozenStruct, frozen=True):
    """Where to send the citizen: the partner's redirect URI with ``code``, ``state`` and ``iss``."""

    redirect_to: str


class ScopeDescription(FrozenStruct, frozen=True):
    """One requested scope, as the consent screen shows it."""

    scope: str
    description: str
    description_zh: str
    consented: bool


class ClientSummary(FrozenStruct, frozen=True):
    """The public face of a client."""

    client_id: str
    name: str


class AuthorizePreview(FrozenStruct, frozen=True):
    """What the app shows on its consent screen before calling ``POST /oauth/authorize``."""

    client: ClientSummary
    scopes: list[ScopeDescription]
    consent_required: bool


class TokenForm(msgspec.Struct, kw_only=True):
    """``POST /oauth/token`` (``application/x-www-form-urlencoded``)."""

    grant_type: Annotated[str, text(128, min_length=0, nfc=False)]
    code: Param | None = None
    redirect_uri: Uri | None = None
    code_verifier: Param | None = None
    refresh_token: Param | None = None
    scope: ScopeText | None = None
    client_id: ClientId | None = None
    client_secret: Param | None = None
    client_assertion_type: Param | None = None
    client_assertion: TokenText | None = None


class ParForm(msgspec.Struct, kw_only=True):
    """``POST /oauth/par`` (RFC 9126): an authorization request plus client authentication."""

    response_type: Param | None = None
    client_id: ClientId | None = None
    redirect_uri: Uri | None = None
    scope: ScopeText | None = None
    state: State | None = None
    nonce: State | None = None
    code_challenge: Param | None = None
    code_challenge_method: Param | None = None
    prompt: Param | None = None
    max_age: Param | None = None
    request: TokenText | None = None
    request_uri: Param | None = None
    dpop_jkt: Param | None = None
    client_secret: Param | None = None
    client_assertion_type: Param | None = None
    client_assertion: TokenText | None = None


class ParResponse(FrozenStruct, frozen=True):
    """RFC 9126 section 2.2: the ``request_uri`` to send to the authorization endpoint."""

    request_uri: str
    expires_in: int


class TokenResponse(FrozenStruct, frozen=True, omit_defaults=True):
    """RFC 6749 section 5.1 (plus ``id_token`` for OpenID Connect)."""

    access_token: str
    token_type: str  # "Bearer", or "DPoP" when bound to a key (required: omit_defaults would drop a default)
    expires_in: int
    scope: str
    refresh_token: str | None = None
    id_token: str | None = None


class IntrospectForm(msgspec.Struct, kw_only=True):
    """``POST /oauth/introspect`` (RFC 7662)."""

    token: TokenText
    token_type_hint: Param | None = None
    client_id: ClientId | None = None
    client_secret: Param | None = None
    client_assertion_type: Param | None = None
    client_assertion: TokenText | None = None


class RevokeForm(IntrospectForm, kw_only=True):
    """``POST /oauth/revoke`` (RFC 7009)."""


class UserinfoForm(msgspec.Struct, kw_only=True):
    """``POST /oauth/userinfo``: the token may travel in the body (RFC 6750 section 2.2)."""

    access_token: TokenText | None = None


class IntrospectionResponse(FrozenStruct, frozen=True, omit_defaults=True):
    """RFC 7662 section 2.2. Inactive (or not the caller's) tokens are just ``{"active": false}``."""

    active: bool
    scope: str | None = None
    client_id: str | None = None
    token_type: str | None = None
    exp: int | None = None
    iat: int | None = None
    sub: str | None = None
    aud: str | list[str] | None = None
    iss: str | None = None
    jti: str | None = None
    acr: str | None = None
    cnf: dict[str, str] | None = None  # RFC 9449 section 6.2: {"jkt": ...} for DPoP-bound tokens


class ConsentInfo(FrozenStruct, frozen=True):
    """What the citizen shares with one client."""

    client_id: str
    client_name: str
    scopes: list[str]
    full_name: bool
    granted_at: datetime


class ConsentList(FrozenStruct, frozen=True):
    """Every client the citizen shares something with."""

    consents: list[ConsentInfo]


class BrowserPhoneForm(msgspec.Struct, kw_only=True):
    """The login page: which phone to send the code to."""

    tx: Annotated[str, text(64, min_length=16, nfc=False)]
    phone: Annotated[str, text(32, min_length=0, nfc=False)] = ""


class BrowserOtpForm(msgspec.Struct, kw_only=True):
    """The code page."""

    tx: Annotated[str, text(64, min_length=16, nfc=False)]
    otp: Annotated[str, text(16, min_length=0, nfc=False)] = ""


class BrowserConsentForm(msgspec.Struct, kw_only=True):
    """The consent page; ``share_full_name`` is a checkbox (``on`` when ticked)."""

    tx: Annotated[str, text(64, min_length=16, nfc=False)]
    decision: Literal["approve", "deny"]
    share_full_name: Annotated[str, text(8, min_length=0, nfc=False)] | None = None


class ProviderMetadata(FrozenStruct, frozen=True):
    """OpenID Provider Metadata (OpenID Connect Discovery 1.0, RFC 8414)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str
    introspection_endpoint: str
    revocation_endpoint: str
    scopes_supported: list[str]
    response_types_supported: list[str]
    response_modes_supported: list[str]
    grant_types_supported: list[str]
    subject_types_supported: list[str]
    id_token_signing_alg_values_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    token_endpoint_auth_signing_alg_values_supported: list[str]
    introspection_endpoint_auth_methods_supported: list[str]
    introspection_endpoint_auth_signing_alg_values_supported: list[str]
    revocation_endpoint_auth_methods_supported: list[str]
    revocation_endpoint_auth_signing_alg_values_supported: list[str]
    code_challenge_methods_supported: list[str]
    claims_supported: list[str]
    acr_values_supported: list[str]
    prompt_values_supported: list[str]
    claims_parameter_supported: bool
    request_parameter_supported: bool
    request_uri_parameter_supported: bool
    require_request_uri_registration: bool
    authorization_response_iss_parameter_supported: bool
    ui_locales_supported: list[str]
    pushed_authorization_request_endpoint: str
    require_pushed_authorization_requests: bool
    dpop_signing_alg_values_supported: list[str]
