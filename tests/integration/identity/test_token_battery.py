"""Every forged, mangled or misplaced credential is a 401 at /v1/me, and says which.

A presented token that fails is RFC 6750's ``invalid_token`` (``WWW-Authenticate: Bearer
error="invalid_token"``); a request with no bearer credentials at all gets the bare challenge
with no error code (RFC 6750 section 3.1). Both are the ``unauthorized`` problem.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from httpx import AsyncClient as AsyncTestClient
from httpx import Response

from core.keys import KeyStore
from core.problem import PROBLEM_MEDIA_TYPE, TYPE_BASE
from services.departments.sms import SmsGateway
from tests.support.citizens import bearer, login


def assert_invalid_token(response: Response, detail: str = "The access token is invalid") -> None:
    """The exact refusal of a presented token that does not verify."""
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer "), challenge
    assert 'error="invalid_token"' in challenge, challenge
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    body = response.json()
    assert body["type"] == TYPE_BASE + "unauthorized"
    assert body["status"] == 401
    assert body["detail"] == detail


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _valid(client: AsyncTestClient, sms: SmsGateway) -> tuple[str, dict[str, Any], dict[str, Any]]:
    token = (await login(client, sms, "13500000001"))["access_token"]
    return token, jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


async def test_the_valid_token_itself_is_accepted(client: AsyncTestClient, sms: SmsGateway) -> None:
    token, _, _ = await _valid(client, sms)
    assert (await client.get("/v1/me", headers=bearer(token))).status_code == 200


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
async def test_alg_none_in_every_casing(client: AsyncTestClient, sms: SmsGateway, alg: str) -> None:
    _, header, claims = await _valid(client, sms)
    forged = f"{_b64({**header, 'alg': alg})}.{_b64(claims)}."
    assert_invalid_token(await client.get("/v1/me", headers=bearer(forged)))


async def test_hs256_signed_with_the_published_public_key(
    client: AsyncTestClient, sms: SmsGateway, key_store: KeyStore
) -> None:
    _, header, claims = await _valid(client, sms)
    jwks = (await client.get("/.well-known/jwks.json")).json()["keys"]
    public = next(k for k in jwks if k["kid"] == header["kid"])
    raw = base64.urlsafe_b64decode(public["x"] + "==")
    # Built by hand: PyJWT itself refuses to use a public key as an HMAC secret.
    signing_input = f"{_b64({'alg': 'HS256', 'kid': header['kid'], 'typ': 'at+jwt'})}.{_b64(claims)}"
    for secret in (public["x"].encode(), raw, json.dumps(public).encode()):
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        forged = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
        assert_invalid_token(await client.get("/v1/me", headers=bearer(forged)))


async def test_token_from_an_unknown_key(client: AsyncTestClient, sms: SmsGateway) -> None:
    _, header, claims = await _valid(client, sms)
    stranger = Ed25519PrivateKey.generate()
    for kid in (header["kid"], "token-20260101-0badc0de"):
        forged = jwt.encode(claims, stranger, algorithm="EdDSA", headers={"kid": kid, "typ": "at+jwt"})
        assert_invalid_token(await client.get("/v1/me", headers=bearer(forged)))


async def test_tampered_payload(client: AsyncTestClient, sms: SmsGateway) -> None:
    token, _, claims = await _valid(client, sms)
    head, _, signature = token.split(".")
    forged = f"{head}.{_b64({**claims, 'acr': 'L4'})}.{signature}"
    assert_invalid_token(await client.get("/v1/me", headers=bearer(forged)))


_INVALID = "The access token is invalid"


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"aud": "someone-else"}, _INVALID),
        ({"iss": "https://evil.example"}, _INVALID),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 4200}, "The access token has expired"),
        ({"iat": int(time.time()) + 3600, "exp": int(time.time()) + 4200}, _INVALID),
        ({"nbf": int(time.time()) + 3600}, _INVALID),
        ({"jti": None}, _INVALID),
        ({"acr": 3}, _INVALID),
        # Well signed for this audience, but no session: a client_credentials token, not the app's.
        ({"sid": None}, "This token is not a citizen app token"),
        ({"client_id": "a-partner"}, "This token is not a citizen app token"),
    ],
    ids=[
        "wrong-aud",
        "wrong-iss",
        "expired",
        "issued-in-future",
        "not-yet-valid",
        "no-jti",
        "acr-not-a-string",
        "no-sid",
        "partner-client",
    ],
)
async def test_claims_that_must_fail(
    client: AsyncTestClient, sms: SmsGateway, key_store: KeyStore, change: dict[str, Any], detail: str
) -> None:
    _, _header, claims = await _valid(client, sms)
    signer = (await key_store.load()).signer("token")
    forged_claims = {k: v for k, v in {**claims, **change}.items() if v is not None}
    forged = signer.sign(forged_claims, typ="at+jwt")
    assert_invalid_token(await client.get("/v1/me", headers=bearer(forged)), detail)


async def test_a_token_of_an_ended_session(client: AsyncTestClient, sms: SmsGateway) -> None:
    token, _, _ = await _valid(client, sms)
    assert (await client.post("/v1/auth/logout", headers=bearer(token))).status_code == 204
    assert_invalid_token(await client.get("/v1/me", headers=bearer(token)), "The session has ended")


@pytest.mark.parametrize(
    "extra", [{"jku": "https://evil.example/jwks"}, {"x5u": "https://evil.example/c"}, {"jwk": {}}]
)
async def test_key_location_headers_are_refused(
    client: AsyncTestClient, sms: SmsGateway, key_store: KeyStore, extra: dict[str, Any]
) -> None:
    _, _header, claims = await _valid(client, sms)
    signer = (await key_store.load()).signer("token")
    if "jwk" in extra:
        raw = signer.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        extra = {"jwk": {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}}
    forged = jwt.encode(
        claims, signer.private_key, algorithm="EdDSA", headers={"kid": signer.kid, "typ": "at+jwt", **extra}
    )
    assert_invalid_token(await client.get("/v1/me", headers=bearer(forged)))


@pytest.mark.parametrize("kid", ["../../etc/passwd", "token' OR '1'='1", "token-20260101-deadbeef; DROP TABLE x", ""])
async def test_kid_with_path_or_sql_characters(
    client: AsyncTestClient, sms: SmsGateway, key_store: KeyStore, kid: str
) -> None:
    _, _, claims = await _valid(client, sms)
    signer = (await key_store.load()).signer("token")
    forged = jwt.encode(claims, signer.private_key, algorithm="EdDSA", headers={"kid": kid, "typ": "at+jwt"})
    assert_invalid_token(await client.get("/v1/me", headers=bearer(forged)))


async def test_wrong_typ_such_as_an_id_token(client: AsyncTestClient, sms: SmsGateway, key_store: KeyStore) -> None:
    _, _, claims = await _valid(client, sms)
    signer = (await key_store.load()).signer("token")
    for typ in ("JWT", "id_token", "oc1"):
        assert_invalid_token(await client.get("/v1/me", headers=bearer(signer.sign(claims, typ=typ))))


async def test_a_code_payload_is_not_an_access_token(
    client: AsyncTestClient, sms: SmsGateway, key_store: KeyStore
) -> None:
    _, _, claims = await _valid(client, sms)
    code_signer = (await key_store.load()).signer("code")
    code = code_signer.sign(claims, typ="at+jwt")  # even dressed as an access token
    for presented in (code, "OC1:" + code):
        assert_invalid_token(await client.get("/v1/me", headers=bearer(presented)))


@pytest.mark.parametrize("value", ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz"])
async def test_no_bearer_credentials_get_the_bare_challenge(client: AsyncTestClient, value: str) -> None:
    response = await client.get("/v1/me", headers={"Authorization": value} if value else {})
    assert response.status_code == 401
    # No error code when the request carries no token at all (RFC 6750 section 3.1).
    assert response.headers["www-authenticate"] == 'Bearer realm="onecity"'
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    assert response.json()["type"] == TYPE_BASE + "unauthorized"
    assert response.json()["detail"] == "A bearer access token is required"


@pytest.mark.parametrize("token", ["a.b", "a" * 5000, "a.b.c", "...."])
async def test_malformed_bearer_tokens(client: AsyncTestClient, token: str) -> None:
    assert_invalid_token(await client.get("/v1/me", headers=bearer(token)))
