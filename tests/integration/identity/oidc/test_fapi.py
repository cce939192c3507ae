"""FAPI 2.0 for partners (issue 11): pushed authorization requests (RFC 9126) and DPoP (RFC 9449)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import jwt
import pytest
from httpx import AsyncClient as AsyncTestClient

from bff.cli import main as onecity
from bff.settings import Settings
from core.redis import Redis
from identity.oidc import ClientAdmin
from services.departments.sms import SmsGateway
from tests.integration.identity.oidc.conftest import (
    ISSUER,
    METRO_REDIRECT,
    Partner,
    citizen,
    code_for,
    exchange,
    pkce,
    query_of,
)
from tests.support.citizens import bearer, latest_otp
from tests.support.dpop import DPoPKey, post_with_nonce

TOKEN_URL = f"{ISSUER}/oauth/token"
PAR_URL = f"{ISSUER}/oauth/par"
VERIFY_URL = f"{ISSUER}/v1/codes/verify"
USERINFO_URL = f"{ISSUER}/oauth/userinfo"


def _push_form(partner: Partner, challenge: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": partner.client_id,
        "redirect_uri": partner.redirect_uri,
        "scope": "openid profile",
        "state": "st-par",
        "nonce": "n-par",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


async def _push(client: AsyncTestClient, partner: Partner, challenge: str, **extra: str) -> Any:
    auth = (partner.client_id, partner.secret) if partner.secret else None
    return await client.post("/oauth/par", data=_push_form(partner, challenge, **extra), auth=auth)


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


# discovery --------------------------------------------------------------------------------


async def test_discovery_advertises_par_and_dpop(client: AsyncTestClient) -> None:
    metadata = (await client.get("/.well-known/openid-configuration")).json()
    assert metadata["pushed_authorization_request_endpoint"] == PAR_URL
    assert metadata["require_pushed_authorization_requests"] is False
    assert metadata["dpop_signing_alg_values_supported"] == ["EdDSA", "Ed25519", "ES256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert metadata["code_challenge_methods_supported"] == ["S256"]


# PAR --------------------------------------------------------------------------------------


async def test_pushed_request_then_app_authorizes_with_request_uri_once(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner, redis: Redis
) -> None:
    verifier, challenge = pkce()
    pushed = await _push(client, hospital, challenge)
    assert pushed.status_code == 201, pushed.text
    body = pushed.json()
    assert body["expires_in"] == 60
    assert body["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    assert pushed.headers["cache-control"] == "no-store"

    token = await citizen(client, sms)
    preview = await client.get(
        "/oauth/authorize/preview",
        params={"client_id": "hospital", "request_uri": body["request_uri"]},
        headers=bearer(token),
    )
    assert preview.status_code == 200, preview.text
    assert [s["scope"] for s in preview.json()["scopes"]] == ["openid", "profile"]

    approved = await client.post(
        "/oauth/authorize", json={"client_id": "hospital", "request_uri": body["request_uri"]}, headers=bearer(token)
    )
    assert approved.status_code == 200, approved.text
    returned = query_of(approved.json()["redirect_to"])
    assert returned["state"] == "st-par" and returned["iss"] == ISSUER
    tokens = await exchange(client, hospital, returned["code"], verifier)
    assert tokens.status_code == 200, tokens.text
    assert _claims(tokens.json()["id_token"])["nonce"] == "n-par"

    again = await client.post(
        "/oauth/authorize", json={"client_id": "hospital", "request_uri": body["request_uri"]}, headers=bearer(token)
    )
    assert again.status_code == 400
    assert again.json()["type"].endswith("/bad-request") and again.json()["error"] == "invalid_request"


async def test_request_uri_is_bound_to_the_client_that_pushed_it(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner, library: Partner
) -> None:
    _, challenge = pkce()
    request_uri = (await _push(client, hospital, challenge)).json()["request_uri"]
    token = await citizen(client, sms)
    stolen = await client.post(
        "/oauth/authorize", json={"client_id": "library", "request_uri": request_uri}, headers=bearer(token)
    )
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_request"
    browser = await client.get("/oauth/authorize", params={"client_id": "library", "request_uri": request_uri})
    assert browser.status_code == 400 and "text/html" in browser.headers["content-type"]


async def test_browser_accepts_client_id_and_request_uri_once(client: AsyncTestClient, hospital: Partner) -> None:
    _, challenge = pkce()
    request_uri = (await _push(client, hospital, challenge)).json()["request_uri"]
    first = await client.get("/oauth/authorize", params={"client_id": "hospital", "request_uri": request_uri})
    assert first.status_code == 200, first.text
    assert 'name="tx"' in first.text  # the login page of this pushed request
    second = await client.get("/oauth/authorize", params={"client_id": "hospital", "request_uri": request_uri})
    assert second.status_code == 400 and "text/html" in second.headers["content-type"]


async def test_request_uri_is_short_lived(client: AsyncTestClient, hospital: Partner, redis: Redis) -> None:
    _, challenge = pkce()
    await _push(client, hospital, challenge)
    keys = [k async for k in redis.scan_iter(match="oc:oidc:par:*")]
    assert len(keys) == 1
    assert 0 < await redis.ttl(keys[0]) <= 60
    assert b"urn:ietf" not in b"".join(keys)  # stored under a hash, not the URI itself


async def test_pushed_requests_are_validated_and_authenticated(client: AsyncTestClient, hospital: Partner) -> None:
    _, challenge = pkce()
    bad_scope = await _push(client, hospital, challenge, scope="openid codes:everything")
    assert bad_scope.status_code == 400 and bad_scope.json()["error"] == "invalid_scope"
    bad_redirect = await _push(client, hospital, challenge, redirect_uri="https://evil.example/cb")
    assert bad_redirect.status_code == 400 and bad_redirect.json()["error"] == "invalid_request"
    plain = await _push(client, hospital, challenge, code_challenge_method="plain")
    assert plain.status_code == 400 and plain.json()["error"] == "invalid_request"
    nested = await _push(client, hospital, challenge, request_uri="urn:ietf:params:oauth:request_uri:x")
    assert nested.status_code == 400 and nested.json()["error"] == "invalid_request"
    anonymous = await client.post("/oauth/par", data=_push_form(hospital, challenge))
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
    wrong = await client.post("/oauth/par", data=_push_form(hospital, challenge), auth=("hospital", "nope"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"


async def test_client_that_requires_par_cannot_use_the_front_channel(
    client: AsyncTestClient, sms: SmsGateway, admin: ClientAdmin
) -> None:
    created = await admin.add(
        "bank", redirect_uris=["https://bank.example/cb"], scopes=["openid", "profile"], require_par=True
    )
    assert created is not None and created.client.require_par
    bank = Partner("bank", created.secret, "https://bank.example/cb")
    token = await citizen(client, sms)
    verifier, challenge = pkce()
    front = await client.post(
        "/oauth/authorize",
        json={
            "client_id": "bank",
            "redirect_uri": bank.redirect_uri,
            "scope": "openid",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
        headers=bearer(token),
    )
    assert front.status_code == 400 and front.json()["error"] == "invalid_request"
    browser = await client.get(
        "/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": "bank",
            "redirect_uri": bank.redirect_uri,
            "scope": "openid",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert browser.status_code == 400 and "PAR" in browser.text
    request_uri = (await _push(client, bank, challenge)).json()["request_uri"]
    ok = await client.post(
        "/oauth/authorize", json={"client_id": "bank", "request_uri": request_uri}, headers=bearer(token)
    )
    assert ok.status_code == 200, ok.text
    code = query_of(ok.json()["redirect_to"])["code"]
    assert (await exchange(client, bank, code, verifier)).status_code == 200


# DPoP: client credentials and code verification ---------------------------------------------


async def _dpop_machine_token(client: AsyncTestClient, partner: Partner, key: DPoPKey) -> str:
    assert partner.secret is not None
    response = await post_with_nonce(
        client,
        TOKEN_URL,
        key,
        data={"grant_type": "client_credentials", "scope": "codes:verify"},
        auth=(partner.client_id, partner.secret),
    )
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"
    token: str = response.json()["access_token"]
    return token


async def test_token_endpoint_asks_for_a_server_nonce(client: AsyncTestClient, hospital: Partner) -> None:
    assert hospital.secret is not None
    key = DPoPKey()
    first = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "codes:verify"},
        auth=(hospital.client_id, hospital.secret),
        headers={"DPoP": key.proof("POST", TOKEN_URL)},
    )
    assert first.status_code == 400 and first.json()["error"] == "use_dpop_nonce"
    assert len(first.headers["dpop-nonce"]) == 32
    stale = key.proof("POST", TOKEN_URL, nonce="A" * 32)
    refused = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "codes:verify"},
        auth=(hospital.client_id, hospital.secret),
        headers={"DPoP": stale},
    )
    assert refused.status_code == 400 and refused.json()["error"] == "use_dpop_nonce"


@pytest.mark.parametrize("alg", ["EdDSA", "Ed25519", "ES256"])
async def test_dpop_bound_machine_token_at_codes_verify(client: AsyncTestClient, hospital: Partner, alg: str) -> None:
    key = DPoPKey(alg)
    token = await _dpop_machine_token(client, hospital, key)
    assert _claims(token)["cnf"] == {"jkt": key.jkt}

    def proof(k: DPoPKey = key) -> dict[str, str]:
        return {"Authorization": f"DPoP {token}", "DPoP": k.proof("POST", VERIFY_URL, access_token=token)}

    ok = await client.post("/v1/codes/verify", json={"payload": "not-a-code"}, headers=proof())
    assert ok.status_code == 200, ok.text
    assert ok.json()["valid"] is False and ok.json()["reason"] == "malformed"
    # Cached partner: a second request still needs its own fresh proof.
    assert (await client.post("/v1/codes/verify", json={"payload": "x"}, headers=proof())).status_code == 200

    as_bearer = await client.post("/v1/codes/verify", json={"payload": "x"}, headers=bearer(token))
    assert as_bearer.status_code == 401
    assert as_bearer.json()["type"].endswith("/unauthorized")
    assert as_bearer.headers["www-authenticate"].startswith('DPoP error="invalid_token"')

    other = await client.post("/v1/codes/verify", json={"payload": "x"}, headers=proof(DPoPKey()))
    assert other.status_code == 401
    assert other.headers["www-authenticate"].startswith('DPoP error="invalid_dpop_proof"')

    headers = proof()
    assert (await client.post("/v1/codes/verify", json={"payload": "x"}, headers=headers)).status_code == 200
    replayed = await client.post("/v1/codes/verify", json={"payload": "x"}, headers=headers)
    assert replayed.status_code == 401 and 'error="invalid_dpop_proof"' in replayed.headers["www-authenticate"]

    no_proof = await client.post("/v1/codes/verify", json={"payload": "x"}, headers={"Authorization": f"DPoP {token}"})
    assert no_proof.status_code == 401 and 'error="invalid_dpop_proof"' in no_proof.headers["www-authenticate"]

    wrong_ath = {"Authorization": f"DPoP {token}", "DPoP": key.proof("POST", VERIFY_URL, access_token="other")}
    refused = await client.post("/v1/codes/verify", json={"payload": "x"}, headers=wrong_ath)
    assert refused.status_code == 401 and 'error="invalid_dpop_proof"' in refused.headers["www-authenticate"]

    introspected = await client.post(
        "/oauth/introspect", data={"token": token}, auth=(hospital.client_id, hospital.secret or "")
    )
    assert introspected.json()["active"] is True
    assert introspected.json()["token_type"] == "DPoP"
    assert introspected.json()["cnf"] == {"jkt": key.jkt}


async def test_unbound_token_keeps_working_as_bearer(client: AsyncTestClient, hospital: Partner) -> None:
    assert hospital.secret is not None
    response = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(hospital.client_id, hospital.secret)
    )
    token = response.json()["access_token"]
    assert response.json()["token_type"] == "Bearer" and "cnf" not in _claims(token)
    assert (await client.post("/v1/codes/verify", json={"payload": "x"}, headers=bearer(token))).status_code == 200
    introspected = await client.post(
        "/oauth/introspect", data={"token": token}, auth=(hospital.client_id, hospital.secret)
    )
    assert "cnf" not in introspected.json() and introspected.json()["token_type"] == "Bearer"


@pytest.mark.parametrize(
    ("header", "claims", "iat_shift"),
    [
        ({"typ": "JWT"}, {}, 0),
        ({"jwk": {"kty": "oct", "k": "c2VjcmV0"}}, {}, 0),
        ({}, {"htm": "GET"}, 0),
        ({}, {"htu": "https://evil.example/oauth/token"}, 0),
        ({}, {}, -600),
        ({}, {}, 600),
    ],
)
async def test_bad_proofs_are_refused_at_the_token_endpoint(
    client: AsyncTestClient, hospital: Partner, header: dict[str, Any], claims: dict[str, Any], iat_shift: int
) -> None:
    import time

    assert hospital.secret is not None
    key = DPoPKey()
    nonce = (
        await client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(hospital.client_id, hospital.secret),
            headers={"DPoP": key.proof("POST", TOKEN_URL)},
        )
    ).headers["dpop-nonce"]
    bad = key.proof("POST", TOKEN_URL, nonce=nonce, header=header, claims=claims, iat=int(time.time()) + iat_shift)
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(hospital.client_id, hospital.secret),
        headers={"DPoP": bad},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_dpop_proof"


async def test_private_key_in_proof_and_hmac_are_refused(client: AsyncTestClient, hospital: Partner) -> None:
    assert hospital.secret is not None
    key = DPoPKey()
    leaked = key.proof("POST", TOKEN_URL, header={"jwk": {**key.jwk, "d": "AAAA"}})
    hmac_proof = jwt.encode(
        {"jti": "j", "htm": "POST", "htu": TOKEN_URL, "iat": 1},
        "secret-secret-secret-secret-secret!",
        algorithm="HS256",
        headers={"typ": "dpop+jwt", "jwk": key.jwk},
    )
    for proof in (leaked, hmac_proof, "garbage"):
        response = await client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(hospital.client_id, hospital.secret),
            headers={"DPoP": proof},
        )
        assert response.status_code == 400 and response.json()["error"] == "invalid_dpop_proof"


async def test_dpop_bound_client_gets_no_token_without_a_proof(client: AsyncTestClient, admin: ClientAdmin) -> None:
    created = await admin.add("gate-fapi", scopes=["codes:verify"], dpop_bound=True)
    assert created is not None and created.secret is not None
    auth = ("gate-fapi", created.secret)
    refused = await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=auth)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_dpop_proof"
    assert "dpop-nonce" in refused.headers
    key = DPoPKey()
    ok = await post_with_nonce(client, TOKEN_URL, key, data={"grant_type": "client_credentials"}, auth=auth)
    assert ok.status_code == 200 and ok.json()["token_type"] == "DPoP"


# DPoP: citizen grants -----------------------------------------------------------------------


async def test_dpop_bound_userinfo(client: AsyncTestClient, sms: SmsGateway, hospital: Partner) -> None:
    token = await citizen(client, sms)
    code, verifier = await code_for(client, token, hospital)
    key = DPoPKey()
    response = await post_with_nonce(
        client,
        TOKEN_URL,
        key,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": hospital.redirect_uri,
            "code_verifier": verifier,
            "client_id": hospital.client_id,
            "client_secret": hospital.secret or "",
        },
    )
    assert response.status_code == 200, response.text
    access = response.json()["access_token"]
    assert response.json()["token_type"] == "DPoP" and _claims(access)["cnf"]["jkt"] == key.jkt

    ok = await client.get(
        "/oauth/userinfo",
        headers={"Authorization": f"DPoP {access}", "DPoP": key.proof("GET", USERINFO_URL, access_token=access)},
    )
    assert ok.status_code == 200, ok.text
    as_bearer = await client.get("/oauth/userinfo", headers=bearer(access))
    assert as_bearer.status_code == 401 and as_bearer.json()["error"] == "invalid_token"
    assert as_bearer.headers["www-authenticate"].startswith('DPoP error="invalid_token"')
    stranger = DPoPKey()
    other = await client.get(
        "/oauth/userinfo",
        headers={"Authorization": f"DPoP {access}", "DPoP": stranger.proof("GET", USERINFO_URL, access_token=access)},
    )
    assert other.status_code == 401 and other.json()["error"] == "invalid_dpop_proof"
    assert "dpop-nonce" in other.headers


async def test_public_client_refresh_token_is_bound_to_its_key(
    client: AsyncTestClient, sms: SmsGateway, metro: Partner
) -> None:
    token = await citizen(client, sms)
    code, verifier = await code_for(client, token, metro, scope="openid")
    key = DPoPKey()
    first = await post_with_nonce(
        client,
        TOKEN_URL,
        key,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": METRO_REDIRECT,
            "code_verifier": verifier,
            "client_id": metro.client_id,
        },
    )
    assert first.status_code == 200, first.text
    refresh = first.json()["refresh_token"]
    form = {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": metro.client_id}

    thief = await post_with_nonce(client, TOKEN_URL, DPoPKey(), data=form)
    assert thief.status_code == 400 and thief.json()["error"] == "invalid_dpop_proof"
    bare = await client.post("/oauth/token", data=form)
    assert bare.status_code == 400 and bare.json()["error"] == "invalid_dpop_proof"
    # The thief's attempts did not spend the token: the holder of the key refreshes.
    owner = await post_with_nonce(client, TOKEN_URL, key, data=form)
    assert owner.status_code == 200, owner.text
    assert owner.json()["token_type"] == "DPoP"


async def test_pushed_request_with_dpop_binds_the_code(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner
) -> None:
    key = DPoPKey()
    token = await citizen(client, sms)

    async def pushed_code() -> tuple[str, str]:
        verifier, challenge = pkce()
        pushed = await post_with_nonce(
            client, PAR_URL, key, data=_push_form(hospital, challenge), auth=(hospital.client_id, hospital.secret or "")
        )
        assert pushed.status_code == 201, pushed.text
        approved = await client.post(
            "/oauth/authorize",
            json={"client_id": "hospital", "request_uri": pushed.json()["request_uri"]},
            headers=bearer(token),
        )
        assert approved.status_code == 200, approved.text
        return query_of(approved.json()["redirect_to"])["code"], verifier

    def redeem(code: str, verifier: str) -> dict[str, str]:
        return {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": hospital.redirect_uri,
            "code_verifier": verifier,
        }

    auth = (hospital.client_id, hospital.secret or "")
    code, verifier = await pushed_code()
    other_key = await post_with_nonce(client, TOKEN_URL, DPoPKey(), data=redeem(code, verifier), auth=auth)
    assert other_key.status_code == 400 and other_key.json()["error"] == "invalid_grant"
    code, verifier = await pushed_code()
    without = await client.post("/oauth/token", data=redeem(code, verifier), auth=auth)
    assert without.status_code == 400 and without.json()["error"] == "invalid_grant"
    code, verifier = await pushed_code()
    ok = await post_with_nonce(client, TOKEN_URL, key, data=redeem(code, verifier), auth=auth)
    assert ok.status_code == 200 and ok.json()["token_type"] == "DPoP"


# the command line ---------------------------------------------------------------------------


async def test_clients_add_fapi_options(
    client: AsyncTestClient, settings: Settings, admin: ClientAdmin, capsys: pytest.CaptureFixture[str]
) -> None:
    async def cli(*argv: str) -> int:
        return await asyncio.to_thread(onecity, ["clients", *argv], settings=settings)

    assert await cli("add", "bank", "--redirect-uri", "https://bank.example/cb", "--fapi") == 0
    assert "require_par, dpop_bound" in capsys.readouterr().out
    assert await cli("add", "gate2", "--scope", "codes:verify", "--dpop-bound") == 0
    assert await cli("add", "shop", "--redirect-uri", "https://shop.example/cb", "--require-par") == 0
    assert await cli("list") == 0
    listed = capsys.readouterr().out
    assert "require_par=true\tdpop_bound=true" in next(line for line in listed.splitlines() if line.startswith("bank"))
    assert "require_par=false\tdpop_bound=true" in next(
        line for line in listed.splitlines() if line.startswith("gate2")
    )
    assert "require_par=true\tdpop_bound=false" in next(line for line in listed.splitlines() if line.startswith("shop"))
    clients = {c.client_id: c for c in await admin.list()}
    assert clients["bank"].require_par and clients["bank"].dpop_bound
    assert await cli("add", "nope", "--scope", "codes:verify", "--require-par") == 2


async def test_pushed_dpop_jkt_must_be_a_thumbprint_and_binds_the_code(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner
) -> None:
    _, challenge = pkce()
    bad = await _push(client, hospital, challenge, dpop_jkt="not a thumbprint")
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"
    key = DPoPKey()
    verifier, challenge = pkce()
    pushed = await _push(client, hospital, challenge, dpop_jkt=key.jkt)
    assert pushed.status_code == 201
    token = await citizen(client, sms)
    approved = await client.post(
        "/oauth/authorize",
        json={"client_id": "hospital", "request_uri": pushed.json()["request_uri"]},
        headers=bearer(token),
    )
    code = query_of(approved.json()["redirect_to"])["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": hospital.redirect_uri}
    ok = await post_with_nonce(
        client,
        TOKEN_URL,
        key,
        data={**form, "code_verifier": verifier},
        auth=(hospital.client_id, hospital.secret or ""),
    )
    assert ok.status_code == 200 and ok.json()["token_type"] == "DPoP"


async def test_browser_flow_of_a_pushed_dpop_request_binds_the_code(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner
) -> None:
    key = DPoPKey()
    verifier, challenge = pkce()
    auth = (hospital.client_id, hospital.secret or "")
    pushed = await post_with_nonce(client, PAR_URL, key, data=_push_form(hospital, challenge), auth=auth)
    assert pushed.status_code == 201, pushed.text
    login_page = await client.get(
        "/oauth/authorize", params={"client_id": "hospital", "request_uri": pushed.json()["request_uri"]}
    )
    assert login_page.status_code == 200, login_page.text
    tx = re.search(r'name="tx" value="([^"]+)"', login_page.text)
    assert tx is not None
    assert (await client.post("/oauth/authorize/otp", data={"tx": tx[1], "phone": "13900000009"})).status_code == 200
    otp = await latest_otp(sms, "13900000009")
    consent = await client.post("/oauth/authorize/login", data={"tx": tx[1], "otp": otp})
    assert consent.status_code == 200, consent.text
    done = await client.post("/oauth/authorize/consent", data={"tx": tx[1], "decision": "approve"})
    assert done.status_code == 303
    returned = query_of(done.headers["location"])
    assert returned["state"] == "st-par" and returned["iss"] == ISSUER
    form = {
        "grant_type": "authorization_code",
        "code": returned["code"],
        "redirect_uri": hospital.redirect_uri,
        "code_verifier": verifier,
    }
    stolen = await client.post("/oauth/token", data=form, auth=auth)  # the code, without the key
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"


async def test_front_channel_dpop_jkt_must_be_a_thumbprint(client: AsyncTestClient, hospital: Partner) -> None:
    _, challenge = pkce()
    response = await client.get(
        "/oauth/authorize",
        params={**_push_form(hospital, challenge), "dpop_jkt": "x"},
        follow_redirects=False,
    )
    assert response.status_code == 302
    assert query_of(response.headers["location"])["error"] == "invalid_request"
