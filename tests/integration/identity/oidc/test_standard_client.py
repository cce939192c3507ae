"""Full flows driven by a standard OIDC client library (Authlib), not hand-built requests.

discovery → authorize → token → ID token verified against the JWKS → userinfo →
introspect → revoke → introspect inactive; the browser flow (login and consent pages);
refresh; client_credentials; private_key_jwt.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
from authlib.integrations.base_client.errors import OAuthError as AuthlibOAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from httpx import AsyncClient as AsyncTestClient
from joserfc.jwk import OKPKey

from core.crypto import Vault
from core.db import Pool
from core.signing import b64url_encode
from identity.oidc import ClientAdmin
from identity.seed import seed_demo_citizens
from services.departments.sms import SmsGateway
from tests.integration.identity.oidc.conftest import ISSUER, Partner, citizen, query_of
from tests.integration.identity.oidc.rp import relying_party
from tests.support.citizens import bearer, latest_otp

_HIDDEN = re.compile(r'name="tx" value="([^"]+)"')


def transport(client: AsyncTestClient) -> httpx.AsyncBaseTransport:
    """The test client's ASGI transport: the RP talks to the same in-process app."""
    return client._transport


async def _app_approves(client: AsyncTestClient, token: str, url: str, **extra: Any) -> str:
    """The citizen's app approves the authorization URL Authlib built; returns the callback."""
    params = query_of(url)
    assert params["response_type"] == "code"
    assert params["code_challenge_method"] == "S256"
    body = {k: params[k] for k in ("client_id", "redirect_uri", "scope", "state", "code_challenge", "nonce")}
    body["code_challenge_method"] = "S256"
    response = await client.post("/oauth/authorize", json={**body, **extra}, headers=bearer(token))
    assert response.status_code == 200, response.text
    redirect_to: str = response.json()["redirect_to"]
    return redirect_to


async def test_discovery_authorize_token_id_token_userinfo_introspect_revoke(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner, pool: Pool, vault: Vault
) -> None:
    await seed_demo_citizens(pool, vault)  # 张三, real-name level L3
    token = await citizen(client, sms, "13800000001")
    rp = relying_party(transport(client), hospital.client_id, hospital.secret, scope="openid profile identity.level")

    # discovery → authorization URL (Authlib makes state, nonce and the PKCE verifier)
    request = await rp.create_authorization_url(redirect_uri=hospital.redirect_uri)
    assert request["url"].startswith(f"{ISSUER}/oauth/authorize?")
    callback = await _app_approves(client, token, request["url"])
    returned = query_of(callback)
    assert callback.startswith(hospital.redirect_uri + "?")
    assert returned["state"] == request["state"]
    assert returned["iss"] == ISSUER

    # token (client_secret_basic) → ID token verified against the JWKS, nonce and at_hash checked
    tokens = await rp.fetch_access_token(
        redirect_uri=hospital.redirect_uri, code=returned["code"], code_verifier=request["code_verifier"]
    )
    assert tokens["token_type"] == "Bearer"
    assert tokens["refresh_token"].startswith("ort.")
    assert tokens["scope"] == "openid profile identity.level"
    id_token = await rp.parse_id_token(tokens, nonce=request["nonce"])
    assert id_token["iss"] == ISSUER and id_token["aud"] == "hospital"
    assert id_token["acr"] == "L3" and id_token["amr"] == ["otp", "sms"]
    assert abs(id_token["auth_time"] - time.time()) < 60
    assert id_token["name"] == "张*"  # masked: the citizen did not choose to share the full name
    assert id_token["identity_level"] == "L3"
    assert "phone_number" not in id_token  # not consented, not released

    # userinfo with the bearer token
    info = await rp.userinfo(token=tokens)
    assert info["sub"] == id_token["sub"]
    assert info == {"sub": id_token["sub"], "name": "张*", "identity_level": "L3"}

    # introspect → active; revoke → introspect inactive; userinfo refused
    async with rp._get_oauth_client(**await rp.load_server_metadata()) as oauth:
        metadata = await rp.load_server_metadata()
        active = (await oauth.introspect_token(metadata["introspection_endpoint"], token=tokens["access_token"])).json()
        assert active["active"] is True
        assert active["client_id"] == "hospital" and active["sub"] == id_token["sub"]
        assert active["scope"] == "openid profile identity.level"
        revoked = await oauth.revoke_token(metadata["revocation_endpoint"], token=tokens["access_token"])
        assert revoked.status_code == 200
        gone = (await oauth.introspect_token(metadata["introspection_endpoint"], token=tokens["access_token"])).json()
        assert gone == {"active": False}
        refresh = (
            await oauth.introspect_token(metadata["introspection_endpoint"], token=tokens["refresh_token"])
        ).json()
        assert refresh["active"] is True and refresh["sub"] == id_token["sub"]
    userinfo = await client.get("/oauth/userinfo", headers=bearer(tokens["access_token"]))
    assert userinfo.status_code == 401
    assert userinfo.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in userinfo.headers["www-authenticate"]


async def test_refresh_with_authlib_rotates_and_keeps_the_subject(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner
) -> None:
    token = await citizen(client, sms)
    rp = relying_party(transport(client), hospital.client_id, hospital.secret)
    request = await rp.create_authorization_url(redirect_uri=hospital.redirect_uri)
    callback = await _app_approves(client, token, request["url"])
    first = await rp.fetch_access_token(
        redirect_uri=hospital.redirect_uri, code=query_of(callback)["code"], code_verifier=request["code_verifier"]
    )
    metadata = await rp.load_server_metadata()
    async with rp._get_oauth_client(**metadata) as oauth:
        second = await oauth.refresh_token(metadata["token_endpoint"], refresh_token=first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    before = (await rp.userinfo(token=first))["sub"]
    after = (await rp.userinfo(token=second))["sub"]
    assert before == after


async def test_browser_flow_with_login_and_consent_pages(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner, pool: Pool, vault: Vault
) -> None:
    """The partner's web page sends the browser to the authorization URL Authlib built."""
    await seed_demo_citizens(pool, vault)
    rp = relying_party(
        transport(client),
        hospital.client_id,
        hospital.secret,
        scope="openid profile phone",
        auth_method="client_secret_post",
    )
    request = await rp.create_authorization_url(redirect_uri=hospital.redirect_uri)
    browser = client  # the test client keeps cookies like a browser

    login_page = await browser.get(request["url"])
    assert login_page.status_code == 200
    assert login_page.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in login_page.headers["content-security-policy"]
    assert "City Hospital" in login_page.text
    tx = _HIDDEN.search(login_page.text)
    assert tx is not None

    otp_page = await browser.post("/oauth/authorize/otp", data={"tx": tx.group(1), "phone": "13800000001"})
    assert otp_page.status_code == 200, otp_page.text
    assert "138****0001" in otp_page.text and "13800000001" not in otp_page.text
    code = await latest_otp(sms, "13800000001")
    consent_page = await browser.post("/oauth/authorize/login", data={"tx": tx.group(1), "otp": code})
    assert consent_page.status_code == 200, consent_page.text
    assert "share_full_name" in consent_page.text

    done = await browser.post(
        "/oauth/authorize/consent", data={"tx": tx.group(1), "decision": "approve", "share_full_name": "on"}
    )
    assert done.status_code == 303
    callback = done.headers["location"]
    assert callback.startswith(hospital.redirect_uri + "?")
    assert query_of(callback)["state"] == request["state"]

    tokens = await rp.fetch_access_token(
        redirect_uri=hospital.redirect_uri, code=query_of(callback)["code"], code_verifier=request["code_verifier"]
    )
    id_token = await rp.parse_id_token(tokens, nonce=request["nonce"])
    assert id_token["name"] == "张三"  # the citizen chose to share the full name
    assert id_token["phone_number"] == "+8613800000001" and id_token["phone_number_verified"] is True
    login = await pool.fetchrow("SELECT details, client_ip FROM audit_log WHERE action = 'auth.login'")
    assert login["details"] == {"method": "oidc-browser", "client_id": "hospital"}

    # Single sign-on: the next authorization in this browser needs no login and, consent
    # being on record, no page at all.
    again = await rp.create_authorization_url(redirect_uri=hospital.redirect_uri)
    straight = await browser.get(again["url"])
    assert straight.status_code == 302
    assert "code" in query_of(straight.headers["location"])
    # ...unless the partner asks for a fresh login.
    fresh = await browser.get(again["url"] + "&prompt=login")
    assert fresh.status_code == 200 and "phone" in fresh.text


async def test_denying_in_the_browser_returns_access_denied(
    client: AsyncTestClient, sms: SmsGateway, library: Partner, pool: Pool
) -> None:
    rp = relying_party(transport(client), library.client_id, library.secret)
    request = await rp.create_authorization_url(redirect_uri=library.redirect_uri)
    page = await client.get(request["url"])
    tx = _HIDDEN.search(page.text)
    assert tx is not None
    await client.post("/oauth/authorize/otp", data={"tx": tx.group(1), "phone": "13900000009"})
    code = await latest_otp(sms, "13900000009")
    await client.post("/oauth/authorize/login", data={"tx": tx.group(1), "otp": code})
    denied = await client.post("/oauth/authorize/consent", data={"tx": tx.group(1), "decision": "deny"})
    assert denied.status_code == 303
    answer = query_of(denied.headers["location"])
    assert answer["error"] == "access_denied" and answer["state"] == request["state"]
    assert "code" not in answer
    denial = await pool.fetchrow(
        "SELECT actor_type, details FROM audit_log WHERE action = 'oidc.authorize' AND outcome = 'denied'"
    )
    assert denial is not None and denial["actor_type"] == "citizen"
    assert denial["details"] == {"client_id": library.client_id, "channel": "browser"}
    replay = await client.post("/oauth/authorize/consent", data={"tx": tx.group(1), "decision": "approve"})
    assert replay.status_code == 400  # the transaction was single-use


async def test_client_credentials_with_authlib(client: AsyncTestClient, hospital: Partner) -> None:
    rp = relying_party(transport(client), hospital.client_id, hospital.secret, scope="codes:verify")
    metadata = await rp.load_server_metadata()
    async with rp._get_oauth_client(**metadata) as oauth:
        token = await oauth.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert token["scope"] == "codes:verify" and "refresh_token" not in token and "id_token" not in token
    check = await client.post(
        "/oauth/introspect", data={"token": token["access_token"]}, auth=(hospital.client_id, hospital.secret or "")
    )
    assert check.json()["active"] is True and check.json()["sub"] == "hospital"


def _ed25519_jwk(key: Ed25519PrivateKey, kid: str) -> dict[str, str]:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw), "kid": kid, "alg": "EdDSA", "use": "sig"}


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):  # type: ignore[misc]
    """Authlib's private_key_jwt with a fresh jti and a 60-second exp on every assertion."""

    def sign(self, auth: Any, token_endpoint: str) -> Any:
        self.claims = {"exp": int(time.time()) + 60}
        return super().sign(auth, token_endpoint)


async def test_private_key_jwt_and_assertion_replay(client: AsyncTestClient, admin: ClientAdmin) -> None:
    key = Ed25519PrivateKey.generate()
    jwk = _ed25519_jwk(key, "gate-1")
    await admin.add(
        "gate-operator",
        auth_method="private_key_jwt",
        jwks={"keys": [jwk]},
        scopes=["codes:verify"],
    )
    token_endpoint = f"{ISSUER}/oauth/token"
    # The issuer identifier is the only accepted audience (Authlib defaults to the token endpoint).
    audience = ISSUER
    private = OKPKey.import_key({**jwk, "d": b64url_encode(key.private_bytes_raw())})
    rp = relying_party(transport(client), "gate-operator", private, scope="codes:verify", auth_method="private_key_jwt")
    metadata = await rp.load_server_metadata()
    async with rp._get_oauth_client(**metadata) as oauth:
        oauth.register_client_auth_method(ShortLivedPrivateKeyJWT(audience, alg="EdDSA", headers={"kid": "gate-1"}))
        token = await oauth.fetch_token(token_endpoint, grant_type="client_credentials")
        assert token["scope"] == "codes:verify"
        # Replay: the same assertion (same jti) presented again is refused.
        replayed: list[str] = []

        async def capture(request: httpx.Request) -> None:
            replayed.append(request.content.decode())

        oauth.event_hooks["request"].append(capture)
        await oauth.fetch_token(token_endpoint, grant_type="client_credentials")
    assertion = query_of("?" + replayed[-1])["client_assertion"]
    again = await client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )
    assert again.status_code == 401
    assert again.json()["error"] == "invalid_client"


async def test_authlib_reports_oauth_errors(client: AsyncTestClient, hospital: Partner) -> None:
    rp = relying_party(transport(client), hospital.client_id, "wrong-secret", scope="codes:verify")
    metadata = await rp.load_server_metadata()
    async with rp._get_oauth_client(**metadata) as oauth:
        with pytest.raises(AuthlibOAuthError) as info:
            await oauth.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert info.value.error == "invalid_client"
