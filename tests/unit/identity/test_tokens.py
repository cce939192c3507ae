"""Access tokens: the exact claims minted, and every way verification refuses (real keys)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.errors import Unauthorized
from core.keys import KeyManager
from identity.settings import IdentitySettings
from identity.tokens import ACCESS_TOKEN_TYP, API_AUDIENCE, AccessClaims, AccessTokens

_INVALID = "The access token is invalid"


@pytest.fixture
def tokens(keys: KeyManager, identity_settings: IdentitySettings) -> AccessTokens:
    return AccessTokens(keys, identity_settings)


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": "https://city.example",
        "aud": "onecity-app",
        "sub": "acc-1",
        "client_id": "onecity-app",
        "iat": now,
        "exp": now + 600,
        "jti": "j-1",
        "sid": "sid-1",
        "acr": "L3",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(keys: KeyManager, claims: dict[str, Any], **header: Any) -> str:
    signer = keys.signer("token")
    return jwt.encode(claims, signer.private_key, algorithm="EdDSA", headers={"kid": signer.kid, **header})


async def _refused(tokens: AccessTokens, token: str, detail: str = _INVALID, **kwargs: Any) -> None:
    with pytest.raises(Unauthorized) as refused:
        await tokens.verify(token, **kwargs)
    assert type(refused.value) is Unauthorized
    assert refused.value.detail == detail
    assert refused.value.headers == {"WWW-Authenticate": 'Bearer error="invalid_token"'}


def test_issue_mints_exactly_the_documented_claims(tokens: AccessTokens, keys: KeyManager) -> None:
    token, ttl = tokens.issue(subject="acc-1", session_id="sid-1", level="L3", now=1_767_225_600)
    signer = keys.signer("token")
    assert ttl == 600
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": signer.kid, "typ": ACCESS_TOKEN_TYP}
    claims = jwt.decode(
        token, signer.public_key, algorithms=["EdDSA"], options={"verify_exp": False}, audience="onecity-app"
    )
    jti = claims.pop("jti")
    assert claims == {
        "iss": "https://city.example",
        "aud": "onecity-app",
        "sub": "acc-1",
        "client_id": "onecity-app",
        "iat": 1_767_225_600,
        "exp": 1_767_225_600 + 600,
        "sid": "sid-1",
        "acr": "L3",
    }
    assert len(base64.urlsafe_b64decode(jti + "==")) == 12  # 96 random bits, fresh per token
    assert (
        jti
        != jwt.decode(tokens.issue(subject="acc-1", now=1_767_225_600)[0], options={"verify_signature": False})["jti"]
    )


def test_issue_for_a_partner_with_scope_extra_claims_and_lifetime(tokens: AccessTokens, keys: KeyManager) -> None:
    token, ttl = tokens.issue(
        subject="acc-1",
        session_id="grant-1",
        client_id="hospital",
        audience=API_AUDIENCE,
        scope="openid profile",
        extra={"roles": ["clerk"], "sub": "someone-else", "iss": "https://evil.example"},
        ttl_s=60,
        now=1_767_225_600,
    )
    assert ttl == 60
    claims = jwt.decode(token, options={"verify_signature": False})
    del claims["jti"]
    # Extra claims add to the standard ones and never replace them.
    assert claims == {
        "roles": ["clerk"],
        "iss": "https://city.example",
        "aud": API_AUDIENCE,
        "sub": "acc-1",
        "client_id": "hospital",
        "iat": 1_767_225_600,
        "exp": 1_767_225_660,
        "sid": "grant-1",
        "scope": "openid profile",
    }


def test_a_client_credentials_token_has_no_session_level_or_empty_scope(tokens: AccessTokens) -> None:
    token, _ = tokens.issue(subject="hospital", client_id="hospital", audience=API_AUDIENCE)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert set(claims) == {"iss", "aud", "sub", "client_id", "iat", "exp", "jti"}


async def test_verify_returns_the_claims_it_was_issued_with(tokens: AccessTokens) -> None:
    now = int(time.time())
    token, _ = tokens.issue(subject="acc-1", session_id="sid-1", level="L4", scope="a b", now=now)
    claims = await tokens.verify(token)
    assert claims == AccessClaims(
        iss="https://city.example",
        aud="onecity-app",
        sub="acc-1",
        iat=now,
        exp=now + 600,
        jti=claims.jti,
        client_id="onecity-app",
        sid="sid-1",
        acr="L4",
        scope="a b",
    )
    assert claims.scopes == frozenset({"a", "b"})
    assert claims.jkt is None
    assert claims.reverify is False


async def test_verify_for_the_api_audience_and_the_dpop_thumbprint(tokens: AccessTokens, keys: KeyManager) -> None:
    token = _sign(keys, _claims(aud=API_AUDIENCE, cnf={"jkt": "thumb"}), typ="at+jwt")
    claims = await tokens.verify(token, audience=API_AUDIENCE)
    assert claims.jkt == "thumb"
    # A partner token is not an app token, and the other way round.
    await _refused(tokens, token)
    await _refused(tokens, _sign(keys, _claims(), typ="at+jwt"), audience=API_AUDIENCE)


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT"])
async def test_both_spellings_of_the_media_type_in_any_case(tokens: AccessTokens, keys: KeyManager, typ: str) -> None:
    assert (await tokens.verify(_sign(keys, _claims(), typ=typ))).sub == "acc-1"


async def test_expiry_and_issue_time_allow_the_clock_skew(tokens: AccessTokens, keys: KeyManager) -> None:
    now = int(time.time())
    # 30 s of skew: just expired or issued a little "in the future" by a fast clock still passes.
    assert (await tokens.verify(_sign(keys, _claims(exp=now - 10), typ="at+jwt"))).exp == now - 10
    assert (await tokens.verify(_sign(keys, _claims(iat=now + 10), typ="at+jwt"))).iat == now + 10


async def test_an_expired_token_says_so(tokens: AccessTokens, keys: KeyManager) -> None:
    now = int(time.time())
    expired = _sign(keys, _claims(iat=now - 4000, exp=now - 3600), typ="at+jwt")
    await _refused(tokens, expired, "The access token has expired")


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "someone-else"},
        {"iss": "https://evil.example"},
        {"iat": int(time.time()) + 3600, "exp": int(time.time()) + 4200},
        {"nbf": int(time.time()) + 3600},
        {"jti": None},
        {"client_id": None},
        {"sub": None},
        {"acr": 3},
        {"scope": ["a"]},
    ],
    ids=["aud", "iss", "iat-in-future", "nbf", "no-jti", "no-client_id", "no-sub", "acr-type", "scope-type"],
)
async def test_claims_that_are_refused(tokens: AccessTokens, keys: KeyManager, changes: dict[str, Any]) -> None:
    await _refused(tokens, _sign(keys, _claims(**changes), typ="at+jwt"))


@pytest.mark.parametrize(
    "header",
    [
        {"typ": "JWT"},
        {"typ": "id_token"},
        {},
        {"typ": "at+jwt", "jku": "https://evil.example/jwks"},
        {"typ": "at+jwt", "x5u": "https://evil.example/cert"},
        {"typ": "at+jwt", "x5c": ["MIIB"]},
        {"typ": "at+jwt", "jwk": {"kty": "OKP"}},
        {"typ": "at+jwt", "crit": ["exp"]},
        {"typ": "at+jwt", "kid": "../../etc/passwd"},
        {"typ": "at+jwt", "kid": "code-20260101-0badc0de"},
    ],
    ids=["typ-JWT", "typ-id_token", "no-typ", "jku", "x5u", "x5c", "jwk", "crit", "kid-path", "kid-code"],
)
async def test_headers_that_are_refused(tokens: AccessTokens, keys: KeyManager, header: dict[str, Any]) -> None:
    await _refused(tokens, _sign(keys, _claims(), **header))


async def test_a_kid_that_is_not_a_string(tokens: AccessTokens, keys: KeyManager) -> None:
    # PyJWT will not encode such a header; signed by hand with the real token key.
    signing_input = f"{_b64({'alg': 'EdDSA', 'typ': 'at+jwt', 'kid': 7})}.{_b64(_claims())}"
    signature = keys.signer("token").private_key.sign(signing_input.encode())
    await _refused(tokens, f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}")


async def test_a_well_formed_but_unknown_kid_or_a_stranger_key(tokens: AccessTokens, keys: KeyManager) -> None:
    stranger = Ed25519PrivateKey.generate()
    for kid in ("token-20260101-0badc0de", keys.signer("token").kid):
        forged = jwt.encode(_claims(), stranger, algorithm="EdDSA", headers={"kid": kid, "typ": "at+jwt"})
        await _refused(tokens, forged)


async def test_the_code_key_cannot_sign_access_tokens(tokens: AccessTokens, keys: KeyManager) -> None:
    code = keys.signer("code")
    # A code kid dressed as a token kid: the key is looked up in the token purpose only.
    forged = jwt.encode(
        _claims(), code.private_key, algorithm="EdDSA", headers={"kid": "token" + code.kid[4:], "typ": "at+jwt"}
    )
    await _refused(tokens, forged)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        "x" * 4097,
        "%%%.%%%.%%%",
        f"{_b64({'alg': 'none', 'typ': 'at+jwt', 'kid': 'token-20260101-0badc0de'})}.{_b64(_claims())}.",
        f"{_b64({'alg': 'HS256', 'typ': 'at+jwt', 'kid': 'token-20260101-0badc0de'})}.{_b64(_claims())}.c2ln",
    ],
    ids=["empty", "two-parts", "four-parts", "too-long", "not-base64", "alg-none", "alg-hs256"],
)
async def test_malformed_tokens(tokens: AccessTokens, token: str) -> None:
    await _refused(tokens, token)


async def test_a_tampered_payload(tokens: AccessTokens) -> None:
    token, _ = tokens.issue(subject="acc-1", session_id="sid-1", level="L2")
    head, _, signature = token.split(".")
    await _refused(tokens, f"{head}.{_b64(_claims(acr='L4'))}.{signature}")
