"""Attacks on the authorization code flow and the token endpoint: each must fail, cleanly."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from httpx import AsyncClient as AsyncTestClient

from core.db import Pool
from core.signing import b64url_encode
from identity.oidc import ClientAdmin
from services.departments.sms import SmsGateway
from tests.integration.identity.oidc.conftest import (
    ISSUER,
    Partner,
    authorize,
    citizen,
    code_for,
    exchange,
    pkce,
    query_of,
)
from tests.support.citizens import bearer

PROBLEM = "application/problem+json"


def _oauth_error(response: object, status: int, error: str) -> None:
    assert getattr(response, "status_code") == status, getattr(response, "text")  # noqa: B009
    body = response.json()  # type: ignore[attr-defined]
    assert body["error"] == error, body
    assert set(body) == {"error", "error_description"}
    assert response.headers["cache-control"] == "no-store"  # type: ignore[attr-defined]


# redirect URIs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/callback",
        "https://hospital.example/callback.evil.example",
        "https://hospital.example/callbackx",
        "https://hospital.example/callback/",
        "https://hospital.example/callback/../evil",
        "https://hospital.example/callback?next=https://evil.example",
        "https://hospital.example/callback#frag",
        "https://hospital.example.evil.example/callback",
        "HTTPS://hospital.example/callback",
        "http://hospital.example/callback",
        "https://hospital.example:443/callback",
    ],
)
async def test_redirect_uri_mismatch_or_prefix_trick_is_shown_not_redirected(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner, redirect_uri: str
) -> None:
    token = await citizen(client, sms)
    response, _ = await authorize(client, token, Partner(hospital.client_id, None, redirect_uri))
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(PROBLEM)
    assert "redirect_to" not in response.json()
    _, challenge = pkce()
    page = await client.get(
        "/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": hospital.client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid",
            "state": "s",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert page.status_code == 400
    assert "location" not in page.headers
    assert page.headers["content-type"].startswith("text/html")


async def test_unknown_client_is_shown_not_redirected(client: AsyncTestClient) -> None:
    page = await client.get(
        "/oauth/authorize",
        params={"response_type": "code", "client_id": "nobody", "redirect_uri": "https://evil.example/cb"},
    )
    assert page.status_code == 400 and "location" not in page.headers


# PKCE -------------------------------------------------------------------------------------


async def test_missing_pkce(client: AsyncTestClient, sms: SmsGateway, hospital: Partner) -> None:
    token = await citizen(client, sms)
    body = {"client_id": "hospital", "redirect_uri": hospital.redirect_uri, "scope": "openid", "state": "s"}
    response = await client.post("/oauth/authorize", json=body, headers=bearer(token))
    assert response.status_code == 400
    assert response.json()["field"] in {"code_challenge", "code_challenge_method"}
    browser = await client.get("/oauth/authorize", params={"response_type": "code", **body}, follow_redirects=False)
    assert browser.status_code == 302
    answer = query_of(browser.headers["location"])
    assert answer["error"] == "invalid_request" and answer["state"] == "s" and "code" not in answer


async def test_plain_pkce_is_refused(client: AsyncTestClient, sms: SmsGateway, hospital: Partner) -> None:
    token = await citizen(client, sms)
    verifier = "v" * 43
    response, _ = await authorize(client, token, hospital, code_challenge=verifier, code_challenge_method="plain")
    assert response.status_code == 400
    browser = await client.get(
        "/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": "hospital",
            "redirect_uri": hospital.redirect_uri,
            "scope": "openid",
            "state": "s",
            "code_challenge": verifier,
            "code_challenge_method": "plain",
        },
    )
    assert query_of(browser.headers["location"])["error"] == "invalid_request"


async def test_wrong_verifier_fails_and_burns_the_code(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner
) -> None:
    token = await citizen(client, sms)
    code, verifier = await code_for(client, token, hospital)
    wrong, _ = pkce()
    _oauth_error(await exchange(client, hospital, code, wrong), 400, "invalid_grant")
    _oauth_error(await exchange(client, hospital, code, verifier), 400, "invalid_grant")


async def test_missing_verifier_at_the_token_endpoint(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner
) -> None:
    token = await citizen(client, sms)
    code, _ = await code_for(client, token, hospital)
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": hospital.redirect_uri},
        auth=(hospital.client_id, hospital.secret or ""),
    )
    _oauth_error(response, 400, "invalid_request")


# codes ------------------------------------------------------------------------------------


async def test_code_reuse_fails_and_revokes_every_token_of_the_first_use(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner, pool: Pool
) -> None:
    token = await citizen(client, sms)
    code, verifier = await code_for(client, token, hospital)
    first = await exchange(client, hospital, code, verifier)
    assert first.status_code == 200
    tokens = first.json()
    assert (await client.get("/oauth/userinfo", headers=bearer(tokens["access_token"]))).status_code == 200

    _oauth_error(await exchange(client, hospital, code, verifier), 400, "invalid_grant")

    assert (await client.get("/oauth/userinfo", headers=bearer(tokens["access_token"]))).status_code == 401
    auth = (hospital.client_id, hospital.secret or "")
    introspected = await client.post("/oauth/introspect", data={"token": tokens["access_token"]}, auth=auth)
    assert introspected.json() == {"active": False}
    refreshed = await client.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}, auth=auth
    )
    _oauth_error(refreshed, 400, "invalid_grant")
    assert await pool.fetchval("SELECT revoke_reason FROM oauth_grants") == "code_reuse"
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'oidc.code_reuse'") == 1


async def test_code_used_by_another_client(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner, library: Partner
) -> None:
    token = await citizen(client, sms)
    code, verifier = await code_for(client, token, hospital)
    stolen = await exchange(client, Partner(library.client_id, library.secret, hospital.redirect_uri), code, verifier)
    _oauth_error(stolen, 400, "invalid_grant")
    # The code died with the attempt: the rightful client cannot use it either.
    _oauth_error(await exchange(client, hospital, code, verifier), 400, "invalid_grant")


async def test_expired_code(client: AsyncTestClient, sms: SmsGateway, hospital: Partner, pool: Pool) -> None:
    token = await citizen(client, sms)
    code, verifier = await code_for(client, token, hospital)
    lifetime = await pool.fetchval("SELECT EXTRACT(EPOCH FROM expires_at - created_at) FROM oauth_codes")
    assert 0 < lifetime <= 60
    await pool.execute("UPDATE oauth_codes SET expires_at = now() - interval '1 second'")
    _oauth_error(await exchange(client, hospital, code, verifier), 400, "invalid_grant")


async def test_redirect_uri_must_match_at_the_token_endpoint(
    client: AsyncTestClient, sms: SmsGateway, admin: ClientAdmin
) -> None:
    created = await admin.add("two-uris", redirect_uris=["https://a.example/cb", "https://b.example/cb"])
    assert created is not None
    partner = Partner("two-uris", created.secret, "https://a.example/cb")
    token = await citizen(client, sms)
    code, verifier = await code_for(client, token, partner)
    other = Partner("two-uris", created.secret, "https://b.example/cb")
    _oauth_error(await exchange(client, other, code, verifier), 400, "invalid_grant")


async def test_unknown_and_garbage_codes(client: AsyncTestClient, hospital: Partner) -> None:
    verifier, _ = pkce()
    for code in ("nope", "x" * 129, ""):
        response = await exchange(client, hospital, code, verifier)
        assert response.status_code == 400
        assert response.json()["error"] in {"invalid_grant", "invalid_request"}


# client authentication --------------------------------------------------------------------


async def test_wrong_client_secret(client: AsyncTestClient, sms: SmsGateway, hospital: Partner) -> None:
    token = await citizen(client, sms)
    code, verifier = await code_for(client, token, hospital)
    response = await exchange(client, Partner("hospital", "wrong-secret", hospital.redirect_uri), code, verifier)
    _oauth_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic")
    basic = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=("hospital", "wrong-secret")
    )
    _oauth_error(basic, 401, "invalid_client")
    unknown = await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("nobody", "x"))
    _oauth_error(unknown, 401, "invalid_client")
    assert unknown.json() == basic.json()  # unknown client and wrong secret look the same


async def test_two_authentication_methods_at_once(client: AsyncTestClient, hospital: Partner) -> None:
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "hospital", "client_secret": hospital.secret or ""},
        auth=("hospital", hospital.secret or ""),
    )
    _oauth_error(response, 400, "invalid_request")


def _assertion(key: Ed25519PrivateKey, *, exp_in: int, jti: str, aud: str = ISSUER) -> str:
    now = int(time.time())
    claims = {"iss": "gate", "sub": "gate", "aud": aud, "iat": now, "exp": now + exp_in, "jti": jti}
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": "k1"})


async def _gate(admin: ClientAdmin) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw), "kid": "k1"}
    await admin.add("gate", auth_method="private_key_jwt", jwks={"keys": [jwk]}, scopes=["codes:verify"])
    return key


async def _with_assertion(client: AsyncTestClient, assertion: str) -> object:
    return await client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )


async def test_assertion_replay_and_lifetime(client: AsyncTestClient, admin: ClientAdmin) -> None:
    key = await _gate(admin)
    assertion = _assertion(key, exp_in=60, jti="once")
    ok = await _with_assertion(client, assertion)
    assert getattr(ok, "status_code") == 200  # noqa: B009
    _oauth_error(await _with_assertion(client, assertion), 401, "invalid_client")  # replay
    _oauth_error(await _with_assertion(client, _assertion(key, exp_in=3600, jti="long")), 401, "invalid_client")
    _oauth_error(await _with_assertion(client, _assertion(key, exp_in=-120, jti="old")), 401, "invalid_client")
    _oauth_error(
        await _with_assertion(client, _assertion(key, exp_in=60, jti="aud", aud="https://evil.example/token")),
        401,
        "invalid_client",
    )
    stranger = Ed25519PrivateKey.generate()
    _oauth_error(await _with_assertion(client, _assertion(stranger, exp_in=60, jti="forged")), 401, "invalid_client")
    hmac_forgery = jwt.encode(
        {"iss": "gate", "sub": "gate", "aud": f"{ISSUER}/oauth/token", "exp": int(time.time()) + 60, "jti": "h"},
        "secret",
        algorithm="HS256",
    )
    _oauth_error(await _with_assertion(client, hmac_forgery), 401, "invalid_client")


# grants and scopes ------------------------------------------------------------------------


async def test_refresh_reuse_revokes_the_family(client: AsyncTestClient, sms: SmsGateway, hospital: Partner) -> None:
    token = await citizen(client, sms)
    code, verifier = await code_for(client, token, hospital)
    first = (await exchange(client, hospital, code, verifier)).json()
    auth = (hospital.client_id, hospital.secret or "")
    rotated = await client.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}, auth=auth
    )
    assert rotated.status_code == 200
    second = rotated.json()
    assert "id_token" not in second
    reuse = await client.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}, auth=auth
    )
    _oauth_error(reuse, 400, "invalid_grant")
    # The whole family is dead: the newest refresh token and every access token.
    newest = await client.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": second["refresh_token"]}, auth=auth
    )
    _oauth_error(newest, 400, "invalid_grant")
    for access in (first["access_token"], second["access_token"]):
        assert (await client.get("/oauth/userinfo", headers=bearer(access))).status_code == 401


async def test_refresh_token_of_another_client(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner, library: Partner
) -> None:
    token = await citizen(client, sms)
    code, verifier = await code_for(client, token, hospital)
    tokens = (await exchange(client, hospital, code, verifier)).json()
    stolen = await client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(library.client_id, library.secret or ""),
    )
    _oauth_error(stolen, 400, "invalid_grant")
    still = await client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(hospital.client_id, hospital.secret or ""),
    )
    assert still.status_code == 200


async def test_refresh_may_narrow_the_scope_but_never_widen_it(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner
) -> None:
    token = await citizen(client, sms)
    code, verifier = await code_for(client, token, hospital, scope="openid profile")
    tokens = (await exchange(client, hospital, code, verifier)).json()
    auth = (hospital.client_id, hospital.secret or "")
    wider = await client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "scope": "openid phone"},
        auth=auth,
    )
    _oauth_error(wider, 400, "invalid_scope")
    narrower = await client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "scope": "openid"},
        auth=auth,
    )
    assert narrower.status_code == 200 and narrower.json()["scope"] == "openid"
    info = await client.get("/oauth/userinfo", headers=bearer(narrower.json()["access_token"]))
    assert "name" not in info.json()


async def test_public_client_cannot_use_client_credentials(client: AsyncTestClient, metro: Partner) -> None:
    response = await client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "metro-mp"})
    _oauth_error(response, 400, "unauthorized_client")


async def test_public_client_flow_with_pkce(client: AsyncTestClient, sms: SmsGateway, metro: Partner) -> None:
    token = await citizen(client, sms)
    code, verifier = await code_for(client, token, metro, scope="openid")
    response = await exchange(client, metro, code, verifier)
    assert response.status_code == 200, response.text
    assert "id_token" in response.json()
    # A public client cannot introspect (it has nothing to authenticate with).
    introspect = await client.post(
        "/oauth/introspect", data={"token": response.json()["access_token"], "client_id": "metro-mp"}
    )
    _oauth_error(introspect, 401, "invalid_client")


@pytest.mark.parametrize("scope", ["openid phone", "openid codes:verify", "openid admin", "", "openid\x01"])
async def test_scopes_beyond_the_client_allowance(
    client: AsyncTestClient, sms: SmsGateway, library: Partner, scope: str
) -> None:
    token = await citizen(client, sms)
    response, _ = await authorize(client, token, library, scope=scope)
    assert response.status_code == 400
    body = response.json()
    assert body.get("error") == "invalid_scope" or body.get("field") == "scope"
    if "redirect_to" in body:
        assert "code=" not in body["redirect_to"]


async def test_machine_scopes_beyond_the_client_allowance(client: AsyncTestClient, hospital: Partner) -> None:
    auth = (hospital.client_id, hospital.secret or "")
    for scope in ("venues:write", "openid", "codes:verify profile"):
        response = await client.post(
            "/oauth/token", data={"grant_type": "client_credentials", "scope": scope}, auth=auth
        )
        _oauth_error(response, 400, "invalid_scope")


async def test_library_without_machine_scopes_gets_no_machine_token(client: AsyncTestClient, library: Partner) -> None:
    response = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(library.client_id, library.secret or "")
    )
    _oauth_error(response, 400, "unauthorized_client")


# subjects and token confusion --------------------------------------------------------------


async def test_pairwise_sub_differs_between_clients_and_is_stable_per_client(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner, library: Partner
) -> None:
    token = await citizen(client, sms)

    async def subject(partner: Partner) -> str:
        code, verifier = await code_for(client, token, partner)
        tokens = (await exchange(client, partner, code, verifier)).json()
        claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
        info = (await client.get("/oauth/userinfo", headers=bearer(tokens["access_token"]))).json()
        assert info["sub"] == claims["sub"]
        sub: str = claims["sub"]
        return sub

    hospital_sub, library_sub = await subject(hospital), await subject(library)
    assert hospital_sub != library_sub
    assert await subject(hospital) == hospital_sub
    me = (await client.get("/v1/me", headers=bearer(token))).json()
    assert me["id"] not in (hospital_sub, library_sub)


async def test_tokens_are_not_interchangeable(client: AsyncTestClient, sms: SmsGateway, hospital: Partner) -> None:
    token = await citizen(client, sms)
    code, verifier = await code_for(client, token, hospital)
    tokens = (await exchange(client, hospital, code, verifier)).json()
    # A partner's access token is not a citizen app token, nor is an ID token anything.
    assert (await client.get("/v1/me", headers=bearer(tokens["access_token"]))).status_code == 401
    assert (await client.get("/v1/me", headers=bearer(tokens["id_token"]))).status_code == 401
    assert (await client.get("/oauth/userinfo", headers=bearer(tokens["id_token"]))).status_code == 401
    # The citizen's app token is not a partner token either.
    assert (await client.get("/oauth/userinfo", headers=bearer(token))).status_code == 401
    header = jwt.get_unverified_header(tokens["id_token"])
    assert header["typ"] == "JWT" and header["alg"] == "EdDSA"
    assert jwt.get_unverified_header(tokens["access_token"])["typ"] == "at+jwt"


async def test_machine_token_cannot_read_userinfo(client: AsyncTestClient, hospital: Partner) -> None:
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "codes:verify"},
        auth=(hospital.client_id, hospital.secret or ""),
    )
    userinfo = await client.get("/oauth/userinfo", headers=bearer(response.json()["access_token"]))
    assert userinfo.status_code == 401


async def test_introspection_and_revocation_never_reveal_other_clients_tokens(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner, library: Partner
) -> None:
    token = await citizen(client, sms)
    code, verifier = await code_for(client, token, hospital)
    tokens = (await exchange(client, hospital, code, verifier)).json()
    other = (library.client_id, library.secret or "")
    for value in (tokens["access_token"], tokens["refresh_token"], "no-such-token", "a.b.c"):
        response = await client.post("/oauth/introspect", data={"token": value}, auth=other)
        assert response.status_code == 200 and response.json() == {"active": False}
        revoke = await client.post("/oauth/revoke", data={"token": value}, auth=other)
        assert revoke.status_code == 200 and revoke.content in (b"", b"null")
    # Nothing happened to the hospital's tokens.
    assert (await client.get("/oauth/userinfo", headers=bearer(tokens["access_token"]))).status_code == 200
    mine = await client.post(
        "/oauth/introspect", data={"token": tokens["refresh_token"]}, auth=(hospital.client_id, hospital.secret or "")
    )
    assert mine.json()["active"] is True


async def test_revoking_a_refresh_token_ends_the_grant(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner
) -> None:
    token = await citizen(client, sms)
    code, verifier = await code_for(client, token, hospital)
    tokens = (await exchange(client, hospital, code, verifier)).json()
    auth = (hospital.client_id, hospital.secret or "")
    revoke = await client.post(
        "/oauth/revoke", data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"}, auth=auth
    )
    assert revoke.status_code == 200
    assert (await client.get("/oauth/userinfo", headers=bearer(tokens["access_token"]))).status_code == 401
    introspected = await client.post("/oauth/introspect", data={"token": tokens["refresh_token"]}, auth=auth)
    assert introspected.json() == {"active": False}


async def test_endpoints_require_client_authentication(client: AsyncTestClient) -> None:
    for path in ("/oauth/introspect", "/oauth/revoke"):
        response = await client.post(path, data={"token": "whatever"})
        _oauth_error(response, 401, "invalid_client")
