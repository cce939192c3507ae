"""The OIDC browser login checks codes through the same identity function as the app (issue 11):
same delays per phone and address, same ``auth.login`` / ``auth.lockout`` audit events."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any

import msgspec
from httpx import AsyncClient as AsyncTestClient

from bff.app import create_app
from bff.settings import Settings, with_derived
from core.crypto import Vault
from core.db import Pool
from identity.oidc import ClientAdmin
from identity.seed import DEMO_CITIZENS, seed_demo_citizens
from services.departments.sms import SmsGateway
from tests.support.asgi import running_app
from tests.support.citizens import latest_otp

ISSUER = "http://testserver.local"
REDIRECT = "https://hospital.example/callback"
_HIDDEN = re.compile(r'name="tx" value="([^"]+)"')


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def _lockouts(pool: Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT details FROM audit_log WHERE action = 'auth.lockout' ORDER BY id")
    return [r["details"] if isinstance(r["details"], dict) else msgspec.json.decode(r["details"]) for r in rows]


async def test_browser_login_failures_are_delayed_and_audited_like_the_app(
    settings: Settings, clean: None, sms: SmsGateway, pool: Pool, vault: Vault
) -> None:
    identity = msgspec.structs.replace(settings.identity, lockout_threshold=2)
    app = create_app(with_derived(msgspec.structs.replace(settings, public_url=ISSUER, identity=identity)))
    async with running_app(app) as client:
        assert await ClientAdmin(pool, vault).add(
            "hospital", name="City Hospital", redirect_uris=[REDIRECT], scopes=["openid"]
        )
        phone = "13700000091"
        tx = await _start(client)
        sent = await client.post("/oauth/authorize/otp", data={"tx": tx, "phone": phone})
        assert sent.status_code == 200
        code = await latest_otp(sms, phone)
        first = await client.post("/oauth/authorize/login", data={"tx": tx, "otp": _wrong(code)})
        assert first.status_code == 400
        # The 2nd failure (threshold 2) makes this address wait: the successor of the lockout.
        second = await client.post("/oauth/authorize/login", data={"tx": tx, "otp": _wrong(code)})
        assert second.status_code == 400
    lockouts = await _lockouts(pool)
    assert len(lockouts) == 1
    assert lockouts[0]["method"] == "oidc-browser" and lockouts[0]["delay_s"] == 1
    assert lockouts[0]["scope"] == "phone+address"
    failures = await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'auth.login' AND outcome = 'failure'")
    assert failures == 2


async def test_app_and_browser_logins_write_the_same_lockout_and_failure_events(
    settings: Settings, clean: None, sms: SmsGateway, pool: Pool, vault: Vault
) -> None:
    # One entry point (IdentityService.login_with_otp): two failures through each channel
    # leave the same events, told apart only by the method.
    identity = msgspec.structs.replace(settings.identity, lockout_threshold=2)
    app = create_app(with_derived(msgspec.structs.replace(settings, public_url=ISSUER, identity=identity)))
    device = {"id": "device-1", "name": "Test phone", "platform": "ios"}
    async with running_app(app) as client:
        assert await ClientAdmin(pool, vault).add(
            "hospital", name="City Hospital", redirect_uris=[REDIRECT], scopes=["openid"]
        )
        app_phone, browser_phone = "13700000092", "13700000093"
        assert (await client.post("/v1/auth/otp", json={"phone": app_phone})).status_code == 202
        app_code = await latest_otp(sms, app_phone)
        for _ in range(2):
            wrong = await client.post(
                "/v1/auth/login", json={"phone": app_phone, "otp": _wrong(app_code), "device": device}
            )
            assert wrong.status_code == 401
        tx = await _start(client)
        assert (await client.post("/oauth/authorize/otp", data={"tx": tx, "phone": browser_phone})).status_code == 200
        browser_code = await latest_otp(sms, browser_phone)
        for _ in range(2):
            wrong = await client.post("/oauth/authorize/login", data={"tx": tx, "otp": _wrong(browser_code)})
            assert wrong.status_code == 400
    lockouts = await _lockouts(pool)
    assert lockouts == [
        {"scope": "phone+address", "delay_s": 1, "method": "otp"},
        {"scope": "phone+address", "delay_s": 1, "method": "oidc-browser"},
    ]
    rows = await pool.fetch("SELECT outcome, details FROM audit_log WHERE action = 'auth.login' ORDER BY id")
    details = [r["details"] if isinstance(r["details"], dict) else msgspec.json.decode(r["details"]) for r in rows]
    assert [r["outcome"] for r in rows] == ["failure"] * 4
    assert details == [{"reason": "wrong"}] * 2 + [{"reason": "wrong", "method": "oidc-browser"}] * 2


async def _start(client: AsyncTestClient) -> str:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    page = await client.get(
        "/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": "hospital",
            "redirect_uri": REDIRECT,
            "scope": "openid",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    found = _HIDDEN.search(page.text)
    assert found is not None, page.text
    return found.group(1)


async def test_a_recycled_number_cannot_sign_in_to_a_partner_in_the_browser(
    settings: Settings, clean: None, sms: SmsGateway, pool: Pool, vault: Vault, redis: Any
) -> None:
    # A dormant account bound to a person (L3), reached from a browser: the new holder of a
    # re-issued number must not release the old owner's claims to a partner.
    await seed_demo_citizens(pool, vault)
    phone = DEMO_CITIZENS[0][0]
    await pool.execute("UPDATE accounts SET created_at = now() - interval '400 days'")
    app = create_app(with_derived(msgspec.structs.replace(settings, public_url=ISSUER)))
    async with running_app(app) as client:
        assert await ClientAdmin(pool, vault).add(
            "hospital", name="City Hospital", redirect_uris=[REDIRECT], scopes=["openid", "profile"]
        )
        tx = await _start(client)
        assert (await client.post("/oauth/authorize/otp", data={"tx": tx, "phone": phone})).status_code == 200
        held = await client.post("/oauth/authorize/login", data={"tx": tx, "otp": await latest_otp(sms, phone)})
        assert held.status_code == 403
        assert "confirm your identity" in held.text
        assert "set-cookie" not in held.headers  # no browser session, so no code for the partner
        assert await pool.fetchval("SELECT count(*) FROM oauth_codes") == 0
        outcome = await pool.fetchval("SELECT outcome FROM audit_log WHERE action = 'auth.login' ORDER BY id DESC")
        assert outcome == "held_back"
        # The same citizen active recently (their app session seen today) signs in as before.
        await pool.execute("UPDATE accounts SET created_at = now()")
        await redis.flushdb()  # the one-code-a-minute limit of the phone
        tx = await _start(client)
        await client.post("/oauth/authorize/otp", data={"tx": tx, "phone": phone})
        signed_in = await client.post("/oauth/authorize/login", data={"tx": tx, "otp": await latest_otp(sms, phone)})
        assert signed_in.status_code in (200, 303), signed_in.text
