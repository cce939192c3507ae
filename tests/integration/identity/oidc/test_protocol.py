"""Discovery, the OAuth error format, userinfo, consents and the authorization endpoint's edges."""

from __future__ import annotations

import re

import httpx
import jwt
from httpx import AsyncClient as AsyncTestClient

from core.crypto import Vault
from core.db import Pool
from identity.seed import seed_demo_citizens
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
from tests.support.asgi import running_app
from tests.support.citizens import bearer, latest_otp

_HIDDEN = re.compile(r'name="tx" value="([^"]+)"')


async def test_discovery_is_complete_and_truthful(client: AsyncTestClient) -> None:
    response = await client.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    doc = response.json()
    assert doc["issuer"] == ISSUER
    for name, path in {
        "authorization_endpoint": "/oauth/authorize",
        "token_endpoint": "/oauth/token",
        "userinfo_endpoint": "/oauth/userinfo",
        "jwks_uri": "/.well-known/jwks.json",
        "introspection_endpoint": "/oauth/introspect",
        "revocation_endpoint": "/oauth/revoke",
    }.items():
        assert doc[name] == ISSUER + path
    assert doc["response_types_supported"] == ["code"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["grant_types_supported"] == ["authorization_code", "refresh_token", "client_credentials"]
    assert doc["subject_types_supported"] == ["pairwise"]
    assert doc["id_token_signing_alg_values_supported"] == ["EdDSA"]
    assert set(doc["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "none",
    }
    assert {"openid", "profile", "phone", "identity.level", "codes:verify"} <= set(doc["scopes_supported"])
    assert {"sub", "nonce", "acr", "amr", "auth_time", "at_hash", "name", "phone_number"} <= set(
        doc["claims_supported"]
    )
    assert doc["acr_values_supported"] == ["L2", "L3", "L4"]
    # The JWKS it points to publishes the key the ID tokens are signed with.
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert any(k["kid"].startswith("token-") and k["alg"] == "EdDSA" for k in jwks["keys"])


async def test_token_endpoint_errors_are_oauth_json(client: AsyncTestClient, hospital: Partner) -> None:
    auth = (hospital.client_id, hospital.secret or "")
    unsupported = await client.post("/oauth/token", data={"grant_type": "password"}, auth=auth)
    assert unsupported.status_code == 400 and unsupported.json()["error"] == "unsupported_grant_type"
    missing = await client.post("/oauth/token", data={}, auth=auth)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    repeated = await client.post(
        "/oauth/token",
        content="grant_type=client_credentials&grant_type=client_credentials",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=auth,
    )
    assert repeated.status_code == 400 and repeated.json()["error"] == "invalid_request"
    as_json = await client.post("/oauth/token", json={"grant_type": "client_credentials"}, auth=auth)
    assert as_json.status_code == 415
    ignored_extra = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials", "audience": "x", "resource": "y"}, auth=auth
    )
    assert ignored_extra.status_code == 200  # RFC 6749 3.2: unknown parameters are ignored
    assert ignored_extra.headers["cache-control"] == "no-store"
    assert ignored_extra.headers["pragma"] == "no-cache"
    bad_basic = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": "Basic !!!"}
    )
    assert bad_basic.status_code == 401 and bad_basic.json()["error"] == "invalid_client"


async def test_basic_credentials_are_form_urlencoded(client: AsyncTestClient, hospital: Partner) -> None:
    """RFC 6749 2.3.1: id and secret are form-urlencoded before Basic encoding."""
    secret = hospital.secret or ""
    encoded = httpx.BasicAuth(hospital.client_id, secret.replace("-", "%2D"))
    response = await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=encoded)
    assert response.status_code == 200


async def test_userinfo_accepts_the_token_in_the_form_body(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner
) -> None:
    token = await citizen(client, sms)
    code, verifier = await code_for(client, token, hospital, scope="openid")
    access = (await exchange(client, hospital, code, verifier)).json()["access_token"]
    posted = await client.post("/oauth/userinfo", data={"access_token": access})
    assert posted.status_code == 200 and set(posted.json()) == {"sub"}
    both = await client.post("/oauth/userinfo", data={"access_token": access}, headers=bearer(access))
    assert both.status_code == 400
    nothing = await client.get("/oauth/userinfo")
    assert nothing.status_code == 401 and nothing.headers["www-authenticate"].startswith("Bearer")


async def test_claims_follow_consent_only(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner, pool: Pool, vault: Vault
) -> None:
    await seed_demo_citizens(pool, vault)
    token = await citizen(client, sms, "13800000002")  # 李四, L3
    for scope, expected in (
        ("openid", {"sub"}),
        ("openid phone", {"sub", "phone_number", "phone_number_verified"}),
        ("openid identity.level", {"sub", "identity_level"}),
    ):
        code, verifier = await code_for(client, token, hospital, scope=scope)
        tokens = (await exchange(client, hospital, code, verifier)).json()
        info = (await client.get("/oauth/userinfo", headers=bearer(tokens["access_token"]))).json()
        assert set(info) == expected, scope
        id_claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
        assert set(id_claims) & {"name", "phone_number", "identity_level"} == expected - {
            "sub",
            "phone_number_verified",
        }
    code, verifier = await code_for(client, token, hospital, scope="openid profile", share_full_name=True)
    tokens = (await exchange(client, hospital, code, verifier)).json()
    assert (await client.get("/oauth/userinfo", headers=bearer(tokens["access_token"]))).json()["name"] == "李四"


async def test_an_l2_citizen_has_no_name_to_release(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner
) -> None:
    token = await citizen(client, sms)
    code, verifier = await code_for(client, token, hospital, scope="openid profile identity.level")
    tokens = (await exchange(client, hospital, code, verifier)).json()
    info = (await client.get("/oauth/userinfo", headers=bearer(tokens["access_token"]))).json()
    assert "name" not in info and info["identity_level"] == "L2"


async def test_consents_are_listed_and_withdrawn(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner, library: Partner, pool: Pool
) -> None:
    token = await citizen(client, sms)
    assert (await client.get("/v1/me/consents", headers=bearer(token))).json() == {"consents": []}
    code, verifier = await code_for(client, token, hospital, scope="openid profile phone")
    tokens = (await exchange(client, hospital, code, verifier)).json()
    await code_for(client, token, library, scope="openid")
    listed = (await client.get("/v1/me/consents", headers=bearer(token))).json()["consents"]
    by_client = {c["client_id"]: c for c in listed}
    assert by_client["hospital"]["scopes"] == ["openid", "phone", "profile"]
    assert by_client["hospital"]["client_name"] == "City Hospital" and by_client["hospital"]["full_name"] is False
    assert by_client["library"]["scopes"] == ["openid"]

    withdrawn = await client.delete("/v1/me/consents/hospital", headers=bearer(token))
    assert withdrawn.status_code == 204
    assert [
        c["client_id"] for c in (await client.get("/v1/me/consents", headers=bearer(token))).json()["consents"]
    ] == ["library"]
    # Every token the hospital held for this citizen is dead.
    assert (await client.get("/oauth/userinfo", headers=bearer(tokens["access_token"]))).status_code == 401
    refresh = await client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(hospital.client_id, hospital.secret or ""),
    )
    assert refresh.json()["error"] == "invalid_grant"
    again = await client.delete("/v1/me/consents/hospital", headers=bearer(token))
    assert again.status_code == 404
    actions = {r["action"] for r in await pool.fetch("SELECT action FROM audit_log WHERE action LIKE 'oidc.consent%'")}
    assert actions == {"oidc.consent.granted", "oidc.consent.withdrawn"}


async def test_consent_endpoints_need_a_citizen_app_token(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner
) -> None:
    assert (await client.get("/v1/me/consents")).status_code == 401
    token = await citizen(client, sms)
    code, verifier = await code_for(client, token, hospital)
    partner_token = (await exchange(client, hospital, code, verifier)).json()["access_token"]
    assert (await client.get("/v1/me/consents", headers=bearer(partner_token))).status_code == 401
    assert (await client.delete("/v1/me/consents/hospital", headers=bearer(partner_token))).status_code == 401


async def test_app_authorize_errors_carry_a_redirect_for_the_partner(
    client: AsyncTestClient, sms: SmsGateway, library: Partner
) -> None:
    token = await citizen(client, sms)
    response, _ = await authorize(client, token, library, scope="openid phone", state="xyz")
    body = response.json()
    assert response.status_code == 400 and body["error"] == "invalid_scope"
    answer = query_of(body["redirect_to"])
    assert answer["error"] == "invalid_scope" and answer["state"] == "xyz" and answer["iss"] == ISSUER
    assert (await client.post("/oauth/authorize", json={})).status_code == 401


async def test_preview_for_the_app_consent_screen(client: AsyncTestClient, sms: SmsGateway, hospital: Partner) -> None:
    token = await citizen(client, sms)
    params = {"client_id": "hospital", "redirect_uri": hospital.redirect_uri, "scope": "openid phone"}
    before = (await client.get("/oauth/authorize/preview", params=params, headers=bearer(token))).json()
    assert before["client"] == {"client_id": "hospital", "name": "City Hospital"}
    assert before["consent_required"] is True and [s["scope"] for s in before["scopes"]] == ["openid", "phone"]
    await code_for(client, token, hospital, scope="openid phone")
    after = (await client.get("/oauth/authorize/preview", params=params, headers=bearer(token))).json()
    assert after["consent_required"] is False and all(s["consented"] for s in after["scopes"])


async def test_prompt_none_without_a_browser_session(client: AsyncTestClient, hospital: Partner) -> None:
    _, challenge = pkce()
    response = await client.get(
        "/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": "hospital",
            "redirect_uri": hospital.redirect_uri,
            "scope": "openid",
            "state": "s1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "prompt": "none",
        },
    )
    assert response.status_code == 302
    assert query_of(response.headers["location"])["error"] == "login_required"


async def test_a_sign_in_started_in_one_browser_cannot_be_finished_in_another(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner
) -> None:
    _, challenge = pkce()
    page = await client.get(
        "/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": "hospital",
            "redirect_uri": hospital.redirect_uri,
            "scope": "openid",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    tx = _HIDDEN.search(page.text)
    assert tx is not None
    before = len((await sms.outbox("13900000077")).messages)
    # The attacker's browser: same app, no cookies.
    async with httpx.AsyncClient(transport=client._transport, base_url=ISSUER) as other:
        stolen = await other.post("/oauth/authorize/otp", data={"tx": tx.group(1), "phone": "13900000077"})
    assert stolen.status_code == 400
    assert len((await sms.outbox("13900000077")).messages) == before  # nothing was sent for the attacker
    ok = await client.post("/oauth/authorize/otp", data={"tx": tx.group(1), "phone": "13900000002"})
    assert ok.status_code == 200
    wrong = await client.post("/oauth/authorize/login", data={"tx": tx.group(1), "otp": "000000"})
    assert wrong.status_code == 400 and "138" not in wrong.text
    code = await latest_otp(sms, "13900000002")
    signed_in = await client.post("/oauth/authorize/login", data={"tx": tx.group(1), "otp": code})
    assert signed_in.status_code == 200 and "decision" in signed_in.text


async def test_browser_form_garbage_is_a_page_not_a_crash(client: AsyncTestClient) -> None:
    for path, data in (
        ("/oauth/authorize/otp", {"tx": "short"}),
        ("/oauth/authorize/login", {}),
        ("/oauth/authorize/consent", {"tx": "x" * 20, "decision": "maybe"}),
        ("/oauth/authorize/consent", {"tx": "x" * 20, "decision": "approve"}),
    ):
        response = await client.post(path, data=data)
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("text/html")
    weird = await client.get("/oauth/authorize", params={"client_id": ["a", "b"], "redirect_uri": "x"})
    assert weird.status_code == 400


async def test_client_records_are_cached_briefly(settings: object, clean: None, pool: Pool, vault: Vault) -> None:
    """With the default cache, a disabled client keeps working until the cache expires."""
    import msgspec

    from bff.app import create_app
    from bff.settings import Settings
    from identity.oidc import ClientAdmin

    assert isinstance(settings, Settings)
    cached = msgspec.structs.replace(settings, oidc=msgspec.structs.replace(settings.oidc, client_cache_ttl_s=60))
    admin = ClientAdmin(pool, vault)
    created = await admin.add("cached", scopes=["codes:verify"])
    assert created is not None and created.secret is not None
    async with running_app(create_app(cached)) as app_client:
        auth = ("cached", created.secret)
        first = await app_client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=auth)
        assert first.status_code == 200
        await pool.execute("UPDATE oauth_clients SET name = 'changed'")
        await pool.execute("ALTER TABLE oauth_clients RENAME TO oauth_clients_away")
        try:
            # No database round trip: the record comes from the in-process cache.
            second = await app_client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=auth)
            assert second.status_code == 200
        finally:
            await pool.execute("ALTER TABLE oauth_clients_away RENAME TO oauth_clients")


async def test_withdrawing_consent_kills_a_code_not_yet_redeemed(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner
) -> None:
    token = await citizen(client, sms)
    code, verifier = await code_for(client, token, hospital)
    assert (await client.delete("/v1/me/consents/hospital", headers=bearer(token))).status_code == 204
    response = await exchange(client, hospital, code, verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_grants_and_sign_ins_are_audited(
    client: AsyncTestClient, sms: SmsGateway, hospital: Partner, pool: Pool
) -> None:
    import asyncio

    token = await citizen(client, sms)
    code, verifier = await code_for(client, token, hospital)
    assert (await exchange(client, hospital, code, verifier)).status_code == 200
    await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(hospital.client_id, hospital.secret or "")
    )
    await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(hospital.client_id, "wrong"))
    wanted = {("oidc.authorize", "success"), ("oidc.token", "success"), ("oidc.token", "failure")}
    rows: set[tuple[str, str]] = set()
    for _ in range(50):  # machine grants are written by the batched audit writer
        rows = {(r["action"], r["outcome"]) for r in await pool.fetch("SELECT action, outcome FROM audit_log")}
        if wanted <= rows:
            break
        await asyncio.sleep(0.1)
    assert wanted <= rows
    grants = await pool.fetch("SELECT details FROM audit_log WHERE action = 'oidc.token' AND outcome = 'success'")
    assert {g["details"]["grant_type"] for g in grants} == {"authorization_code", "client_credentials"}
    text = str([dict(r) for r in await pool.fetch("SELECT * FROM audit_log")])
    assert hospital.secret not in text and code not in text and verifier not in text


async def test_hostile_input_is_refused_cleanly(client: AsyncTestClient, sms: SmsGateway, hospital: Partner) -> None:
    """NUL bytes, control characters and oversized values: refused or inactive, never a 500."""
    token = await citizen(client, sms)
    auth = (hospital.client_id, hospital.secret or "")
    responses = [
        await client.delete("/v1/me/consents/%00", headers=bearer(token)),
        await client.delete("/v1/me/consents/" + "a" * 300, headers=bearer(token)),
        await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("bad\x00id", "x")),
        await client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "\x00"}),
        await client.post("/oauth/token", data={"grant_type": "authorization_code", "code": "\x00", **{}}, auth=auth),
        await client.post("/oauth/introspect", data={"token": "\x00.\x00.\x00"}, auth=auth),
        await client.post("/oauth/revoke", data={"token": "ort.\x00"}, auth=auth),
        await client.get("/oauth/userinfo", headers={"Authorization": "Bearer \x01.\x02.\x03"}),
        await client.get("/oauth/authorize", params={"client_id": "\x00", "redirect_uri": "\x00"}),
        (await authorize(client, token, hospital, nonce="a\x00b"))[0],
        (await authorize(client, token, hospital, state="\x1b[31m"))[0],
        await client.get(
            "/oauth/authorize/preview",
            params={"client_id": "\x00", "redirect_uri": "x", "scope": "openid"},
            headers=bearer(token),
        ),
    ]
    for response in responses:
        assert response.status_code < 500, (response.request.url, response.status_code, response.text)
        assert response.status_code >= 400 or response.content in (b"", b'{"active":false}')
