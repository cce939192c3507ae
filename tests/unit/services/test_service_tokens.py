"""Service tokens: what the minter writes and everything the verifier must refuse."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from core.signing import Ed25519Signer, b64url_encode
from services.tokens import (
    InvalidServiceToken,
    ServiceTokenMinter,
    ServiceTokenVerifier,
    StaticJwks,
    UrlJwks,
)

ID_NUMBER = "110101199003070011"


@pytest.fixture(scope="module")
def signer() -> Ed25519Signer:
    return Ed25519Signer("svc-1", Ed25519PrivateKey.generate())


@pytest.fixture(scope="module")
def verifier(signer: Ed25519Signer) -> ServiceTokenVerifier:
    return ServiceTokenVerifier("health", StaticJwks({"keys": [signer.jwk()]}))


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": "onecity",
        "aud": "health",
        "sub": ID_NUMBER,
        "scope": "health:tests",
        "purpose": "home-screen",
        "iat": now,
        "exp": now + 60,
        "jti": "j-1",
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return b64url_encode(json.dumps(value, separators=(",", ":")).encode())

    return f"{part(header)}.{part(payload)}"


def test_minter_writes_every_claim_and_the_header(signer: Ed25519Signer) -> None:
    calls = 0

    def provider() -> Ed25519Signer:
        nonlocal calls
        calls += 1
        return signer

    minter = ServiceTokenMinter(provider)
    token = minter.mint(audience="health", subject=ID_NUMBER, scope="health:tests", purpose="home-screen")
    second = minter.mint(audience="health", subject=ID_NUMBER, scope="health:tests", purpose="home-screen")
    assert calls == 2  # asked for the current key every time: keys rotate

    header = jwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "kid": "svc-1", "typ": "svc+jwt"}
    payload = jwt.decode(token, signer.public_key, algorithms=["EdDSA"], audience="health")
    assert set(payload) == {"iss", "aud", "sub", "scope", "purpose", "iat", "exp", "jti"}
    assert payload["iss"] == "onecity"
    assert payload["sub"] == ID_NUMBER
    assert payload["scope"] == "health:tests"
    assert payload["purpose"] == "home-screen"
    assert 0 < payload["exp"] - payload["iat"] <= 60
    assert abs(payload["iat"] - time.time()) < 5
    assert payload["jti"] != jwt.decode(second, options={"verify_signature": False})["jti"]


def test_minter_refuses_lifetimes_over_a_minute(signer: Ed25519Signer) -> None:
    with pytest.raises(ValueError, match="lifetime"):
        ServiceTokenMinter(lambda: signer, lifetime_s=61)


async def test_verifier_accepts_a_minted_token(signer: Ed25519Signer, verifier: ServiceTokenVerifier) -> None:
    token = ServiceTokenMinter(lambda: signer).mint(
        audience="health", subject=ID_NUMBER, scope="health:tests", purpose="home-screen"
    )
    verified = await verifier.verify(f"Bearer {token}")
    assert verified.subject == ID_NUMBER
    assert verified.scope == "health:tests"
    assert verified.purpose == "home-screen"
    assert verified.jti


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "Token abc"])
async def test_missing_or_non_bearer_header(verifier: ServiceTokenVerifier, header: str | None) -> None:
    with pytest.raises(InvalidServiceToken) as caught:
        await verifier.verify(header)
    assert caught.value.reason == "missing"


async def test_garbage_is_malformed(verifier: ServiceTokenVerifier) -> None:
    with pytest.raises(InvalidServiceToken) as caught:
        await verifier.verify("Bearer not.a.jwt")
    assert caught.value.reason == "malformed"


async def test_alg_none(verifier: ServiceTokenVerifier) -> None:
    token = unsigned({"alg": "none", "kid": "svc-1", "typ": "svc+jwt"}, claims()) + "."
    with pytest.raises(InvalidServiceToken) as caught:
        await verifier.verify(f"Bearer {token}")
    assert caught.value.reason == "bad_algorithm"


async def test_hs256_signed_with_the_public_key_bytes(signer: Ed25519Signer, verifier: ServiceTokenVerifier) -> None:
    # The classic key-confusion attack: HMAC keyed with the (public) verification key.
    public_raw = signer.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    signing_input = unsigned({"alg": "HS256", "kid": "svc-1", "typ": "svc+jwt"}, claims())
    mac = hmac.new(public_raw, signing_input.encode(), hashlib.sha256).digest()
    with pytest.raises(InvalidServiceToken) as caught:
        await verifier.verify(f"Bearer {signing_input}.{b64url_encode(mac)}")
    assert caught.value.reason == "bad_algorithm"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": "transport"}, "wrong_audience"),
        ({"aud": ["health", "transport"]}, "wrong_audience"),
        ({"iss": "someone-else"}, "wrong_issuer"),
        # Times are offsets from "now", applied when the test runs (not at collection).
        ({"iat": -200, "exp": -140}, "expired"),
        ({"exp": +120}, "lifetime_too_long"),
        ({"iat": +120, "exp": +150}, "not_yet_valid"),
        ({"jti": None}, "missing_claim"),
        ({"purpose": None}, "missing_claim"),
        ({"scope": None}, "missing_claim"),
        ({"sub": None}, "missing_claim"),
        ({"purpose": ""}, "missing_claim"),
    ],
)
async def test_bad_claims(
    signer: Ed25519Signer, verifier: ServiceTokenVerifier, overrides: dict[str, Any], reason: str
) -> None:
    now = int(time.time())
    resolved = {k: now + v if k in ("iat", "exp") else v for k, v in overrides.items()}
    token = signer.sign(claims(**resolved), typ="svc+jwt")
    with pytest.raises(InvalidServiceToken) as caught:
        await verifier.verify(f"Bearer {token}")
    assert caught.value.reason == reason


async def test_wrong_typ(signer: Ed25519Signer, verifier: ServiceTokenVerifier) -> None:
    for typ in ("at+jwt", "oc1", "JWT"):
        with pytest.raises(InvalidServiceToken) as caught:
            await verifier.verify(f"Bearer {signer.sign(claims(), typ=typ)}")
        assert caught.value.reason == "wrong_type"


async def test_unknown_kid(verifier: ServiceTokenVerifier) -> None:
    stranger = Ed25519Signer("svc-unknown", Ed25519PrivateKey.generate())
    with pytest.raises(InvalidServiceToken) as caught:
        await verifier.verify(f"Bearer {stranger.sign(claims(), typ='svc+jwt')}")
    assert caught.value.reason == "unknown_key"


async def test_forged_signature_under_a_known_kid(verifier: ServiceTokenVerifier) -> None:
    forger = Ed25519Signer("svc-1", Ed25519PrivateKey.generate())  # same kid, different key
    with pytest.raises(InvalidServiceToken) as caught:
        await verifier.verify(f"Bearer {forger.sign(claims(), typ='svc+jwt')}")
    assert caught.value.reason == "bad_signature"


async def test_tampered_payload(signer: Ed25519Signer, verifier: ServiceTokenVerifier) -> None:
    header, _, signature = signer.sign(claims(), typ="svc+jwt").split(".")
    other_payload = unsigned({}, claims(sub="110101198512120019")).split(".")[1]
    with pytest.raises(InvalidServiceToken) as caught:
        await verifier.verify(f"Bearer {header}.{other_payload}.{signature}")
    assert caught.value.reason == "bad_signature"


async def test_error_message_never_carries_the_token(signer: Ed25519Signer, verifier: ServiceTokenVerifier) -> None:
    token = signer.sign(claims(aud="sms"), typ="svc+jwt")
    with pytest.raises(InvalidServiceToken) as caught:
        await verifier.verify(f"Bearer {token}")
    assert token not in str(caught.value)
    assert ID_NUMBER not in str(caught.value)


async def test_url_jwks_fetches_lazily_caches_and_survives_failures(signer: Ed25519Signer) -> None:
    fetches = 0
    serving: dict[str, Any] = {"fail": True}

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal fetches
        fetches += 1
        if serving["fail"]:
            return httpx.Response(500)
        return httpx.Response(200, json={"keys": [signer.jwk(), {"kty": "RSA", "kid": "rsa-1"}]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        jwks = UrlJwks("http://bff/.well-known/jwks.json", http, min_refetch_s=0.05)
        assert fetches == 0  # lazy
        assert await jwks.key("svc-1") is None  # fetch failed: unknown, no crash
        assert fetches == 1
        assert await jwks.key("svc-1") is None  # too soon to try again
        assert fetches == 1
        serving["fail"] = False
        await asyncio.sleep(0.06)
        assert await jwks.key("svc-1") is not None
        assert fetches == 2
        assert await jwks.key("svc-1") is not None  # cached
        await asyncio.sleep(0.06)
        assert await jwks.key("rsa-1") is None  # not an Ed25519 key
        assert fetches == 3  # unknown kid triggers a (rate-limited) refetch
        assert await jwks.key("nope") is None
        assert fetches == 3  # within min_refetch_s: no new fetch


async def test_url_jwks_connection_error_means_unknown_key() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        assert await UrlJwks("http://bff/jwks", http).key("svc-1") is None


async def test_url_jwks_callers_during_the_first_fetch_wait_for_it(signer: Ed25519Signer) -> None:
    fetches = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal fetches
        fetches += 1
        await asyncio.sleep(0.05)  # a slow first fetch, as under load right after start
        return httpx.Response(200, json={"keys": [signer.jwk()]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        jwks = UrlJwks("http://bff/.well-known/jwks.json", http)
        keys = await asyncio.gather(*(jwks.key("svc-1") for _ in range(5)))
    assert all(key is not None for key in keys)
    assert fetches == 1
