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
