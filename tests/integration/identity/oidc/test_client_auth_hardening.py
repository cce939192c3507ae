"""Issue 11, partners: code replay by another client, assertion audience, Ed25519, challenges."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from httpx import AsyncClient as AsyncTestClient

from core.db import Pool
from core.signing import b64url_encode
from identity.oidc import ClientAdmin
from services.departments.sms import SmsGateway
from tests.integration.identity.oidc.conftest import ISSUER, Partner, citizen, code_for, exchange
from tests.support.citizens import bearer

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


async def test_replaying_another_partners_code_does_not_revoke_its_grant(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner, library: Partner, pool: Pool
) -> None:
    token = await citizen(client, sms)
    code, verifier = await code_for(client, token, hospital)
    first = await exchange(client, hospital, code, verifier)
    assert first.status_code == 200
    access = first.json()["access_token"]

    # The library got hold of the hospital's (already redeemed) code and replays it.
    stolen = await exchange(client, Partner(library.client_id, library.secret, hospital.redirect_uri), code, verifier)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"

    # The hospital's grant lives on.
    assert (await client.get("/oauth/userinfo", headers=bearer(access))).status_code == 200
    assert await pool.fetchval("SELECT revoked_at IS NULL FROM oauth_grants") is True
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'oidc.code_reuse'") == 0


async def _gate(admin: ClientAdmin, *, alg: str | None = None) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    jwk: dict[str, Any] = {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw), "kid": "k1"}
    if alg is not None:
        jwk["alg"] = alg
    await admin.add("gate", auth_method="private_key_jwt", jwks={"keys": [jwk]}, scopes=["codes:verify"])
    return key


def _assertion(key: Ed25519PrivateKey, *, aud: Any = ISSUER, alg: str = "EdDSA", jti: str | None = None) -> str:
    now = int(time.time())
    claims = {
        "iss": "gate",
        "sub": "gate",
        "aud": aud,
        "iat": now,
        "exp": now + 60,
        "jti": jti or f"j-{time.time_ns()}",
    }
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": "k1", "alg": alg})


async def _token(client: AsyncTestClient, assertion: str, **extra: str) -> Any:
    return await client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
            **extra,
        },
    )


@pytest.mark.parametrize(
    "aud",
    [f"{ISSUER}/oauth/token", [ISSUER], [ISSUER, f"{ISSUER}/oauth/token"], f"{ISSUER}/", f"{ISSUER}/oauth/introspect"],
)
async def test_assertion_audience_must_be_the_issuer_string(
    client: AsyncTestClient, admin: ClientAdmin, aud: Any
) -> None:
    key = await _gate(admin)
    refused = await _token(client, _assertion(key, aud=aud))
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert (await _token(client, _assertion(key))).status_code == 200


async def test_assertion_audience_is_the_issuer_at_introspection_too(
    client: AsyncTestClient, admin: ClientAdmin
) -> None:
    key = await _gate(admin)
    issued = await _token(client, _assertion(key))
    access = issued.json()["access_token"]
    form = {"token": access, "client_assertion_type": ASSERTION_TYPE}
    wrong = await client.post(
        "/oauth/introspect", data={**form, "client_assertion": _assertion(key, aud=f"{ISSUER}/oauth/introspect")}
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    right = await client.post("/oauth/introspect", data={**form, "client_assertion": _assertion(key)})
    assert right.status_code == 200 and right.json()["active"] is True


@pytest.mark.parametrize("jwk_alg", [None, "EdDSA", "Ed25519"])
async def test_fully_specified_ed25519_algorithm_is_accepted(
    client: AsyncTestClient, admin: ClientAdmin, jwk_alg: str | None
) -> None:
    key = await _gate(admin, alg=jwk_alg)
    response = await _token(client, _assertion(key, alg="Ed25519"))
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "codes:verify"
    metadata = (await client.get("/.well-known/openid-configuration")).json()
    for field in (
        "token_endpoint_auth_signing_alg_values_supported",
        "introspection_endpoint_auth_signing_alg_values_supported",
        "revocation_endpoint_auth_signing_alg_values_supported",
    ):
        assert {"EdDSA", "Ed25519"} <= set(metadata[field])


async def test_failed_assertion_gets_no_basic_challenge(client: AsyncTestClient, admin: ClientAdmin) -> None:
    key = await _gate(admin)
    for bad in (
        _assertion(Ed25519PrivateKey.generate()),  # forged
        _assertion(key, aud=f"{ISSUER}/oauth/token"),  # wrong audience
        "not.a.jwt",
    ):
        response = await _token(client, bad)
        assert response.status_code == 401 and response.json()["error"] == "invalid_client"
        assert "basic" not in response.headers.get("www-authenticate", "").lower()
    # Only the assertion type, without an assertion: still an assertion attempt.
    response = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE}
    )
    assert response.status_code == 401 and "basic" not in response.headers.get("www-authenticate", "").lower()
    # A wrong secret keeps its Basic challenge (RFC 6749 section 5.2).
    secret = await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("gate", "wrong"))
    assert secret.status_code == 401 and secret.headers["www-authenticate"].startswith("Basic")
