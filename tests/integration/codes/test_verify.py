"""Online verification: every reason, one-time use under concurrency, partner auth, scan log."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from core.db import Pool
from core.keys import KeyStore
from core.signing import Ed25519Signer, b64url_encode
from tests.integration.codes.conftest import (
    ZHANG_SAN,
    App,
    Demo,
    PartnerHeaders,
    StaffHeaders,
    Verify,
    account_id_of,
    issue,
    mint,
)


def _b64(data: dict[str, Any]) -> str:
    return b64url_encode(json.dumps(data, separators=(",", ":")).encode())


def _split(payload: str) -> tuple[str, str, str]:
    header, claims, signature = payload[4:].split(".")
    return header, claims, signature


def _decode(part: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return value


async def test_a_valid_code_answers_status_and_masked_name_only(app: App, demo: Demo, verify: Verify) -> None:
    code = await issue(app.client, demo[ZHANG_SAN])
    body = await verify(code["payload"])
    assert body["valid"] is True
    assert body["code_type"] == "health" and body["status"] == "G"
    assert body["holder"] == {"name": "张*"}
    assert body["reason"] is None and body["checked_at"].endswith(("Z", "+00:00"))
    assert set(body) == {"valid", "reason", "code_type", "status", "holder", "checked_at"}


async def test_the_status_is_the_current_one(app: App, demo: Demo, verify: Verify, staff: StaffHeaders) -> None:
    code = await issue(app.client, demo[ZHANG_SAN])
    account_id = await account_id_of(app.client, demo[ZHANG_SAN])
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 7 * 86400))
    response = await app.client.put(
        f"/v1/admin/citizens/{account_id}/health-status",
        json={"status": "R", "reason": "positive result from field test", "until": until},
        headers=staff(),
    )
    assert response.status_code == 200, response.text
    body = await verify(code["payload"])
    assert body["valid"] and body["status"] == "R"  # the code says G; the holder is R now


@pytest.mark.parametrize(
    ("shift", "reason"),
    [(-1000, "expired"), (-215, "expired"), (+120, "not_yet_valid")],
)
async def test_time_window(app: App, verify: Verify, code_signer: Ed25519Signer, shift: int, reason: str) -> None:
    payload = mint(code_signer, now=time.time() + shift)
    body = await verify(payload)
    assert body == {**body, "valid": False, "reason": reason, "status": None, "holder": None}


async def test_tampered_payload(app: App, demo: Demo, verify: Verify) -> None:
    code = await issue(app.client, demo[ZHANG_SAN])
    header, claims, signature = _split(code["payload"])
    changed = _decode(claims) | {"st": "R"}
    body = await verify(f"OC1:{header}.{_b64(changed)}.{signature}")
    assert body["valid"] is False and body["reason"] == "bad_signature"
    # One flipped bit in the signature.
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[0] ^= 1
    body = await verify(f"OC1:{header}.{claims}.{b64url_encode(bytes(raw))}")
    assert body["reason"] == "bad_signature"


async def test_unknown_kid(verify: Verify) -> None:
    stranger = Ed25519Signer("code-20990101-deadbeef", Ed25519PrivateKey.generate())
    assert (await verify(mint(stranger)))["reason"] == "unknown_key"


async def test_a_token_signing_key_cannot_sign_a_code(
    app: App, verify: Verify, key_store: KeyStore, demo: Demo
) -> None:
    token_signer = (await key_store.load()).signer("token")
    assert (await verify(mint(token_signer)))["reason"] == "unknown_key"
    # And an access token presented as a code is not a code at all.
    access_token = demo[ZHANG_SAN]["Authorization"].removeprefix("Bearer ")
    assert (await verify("OC1:" + access_token))["reason"] == "malformed"


async def test_algorithm_swaps_are_refused(verify: Verify, code_signer: Ed25519Signer) -> None:
    _, claims, _ = _split(mint(code_signer))
    public = code_signer.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    for alg in ("HS256", "none", "NONE", "eddsa", "ES256"):
        header = _b64({"alg": alg, "kid": code_signer.kid, "typ": "oc1"})
        mac = hmac.new(public, f"{header}.{claims}".encode(), hashlib.sha256).digest()
        for signature in (b64url_encode(mac), ""):
            assert (await verify(f"OC1:{header}.{claims}.{signature}"))["reason"] == "malformed"
    # An embedded key is never used.
    header = _b64({"alg": "EdDSA", "kid": code_signer.kid, "typ": "oc1", "jwk": code_signer.jwk()})
    assert (await verify(f"OC1:{header}.{claims}.{'A' * 86}"))["reason"] == "malformed"


async def test_wrong_type(app: App, demo: Demo, verify: Verify) -> None:
    code = await issue(app.client, demo[ZHANG_SAN])
    body = await verify(code["payload"], types=["transit", "socsec"])
    assert body["valid"] is False and body["reason"] == "wrong_type" and body["code_type"] == "health"
    assert (await verify(code["payload"], types=["health"]))["valid"] is True


@pytest.mark.parametrize("payload", ["hello", "OC1:", "OC1:a.b.c", "OC1:" + "A" * 400, "OC1R:AAAA", "OC2:x.y.z"])
async def test_malformed(verify: Verify, payload: str) -> None:
    body = await verify(payload)
    assert body["valid"] is False and body["reason"] == "malformed" and body["code_type"] is None


async def test_oversized_and_bad_bodies_are_problems_not_crashes(app: App, partner: PartnerHeaders) -> None:
    for body in ({"payload": "x" * 5000}, {"payload": 12}, {"payload": "OC1:x", "consume": "yes"}, {}, {"x": 1}):
        response = await app.client.post("/v1/codes/verify", json=body, headers=partner())
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_revoked(app: App, demo: Demo, verify: Verify) -> None:
    first = await issue(app.client, demo[ZHANG_SAN])
    second = await issue(app.client, demo[ZHANG_SAN])
    response = await app.client.delete("/v1/me/codes/health", headers=demo[ZHANG_SAN])
    assert response.status_code == 204
    for code in (first, second):
        body = await verify(code["payload"])
        assert body["valid"] is False and body["reason"] == "revoked" and body["holder"] is None
    fresh = await issue(app.client, demo[ZHANG_SAN])
    assert (await verify(fresh["payload"]))["valid"] is True
    # Revoking one type leaves the others alone.
    transit = await issue(app.client, demo[ZHANG_SAN], "transit")
    await app.client.delete("/v1/me/codes/health", headers=demo[ZHANG_SAN])
    assert (await verify(transit["payload"]))["valid"] is True


async def test_replayed(app: App, demo: Demo, verify: Verify) -> None:
    code = await issue(app.client, demo[ZHANG_SAN], "transit")
    first = await verify(code["payload"], consume=True)
    assert first["valid"] is True and first["code_type"] == "transit" and first["status"] == "A"
    second = await verify(code["payload"], consume=True)
    assert second["valid"] is False and second["reason"] == "replayed"
    # A check without consume (an inspector) still sees an authentic code.
    assert (await verify(code["payload"]))["valid"] is True


async def test_concurrent_consume_exactly_one_wins(app: App, demo: Demo, partner: PartnerHeaders) -> None:
    code = await issue(app.client, demo[ZHANG_SAN], "transit")
    gates = [partner(f"gate-{i}") for i in range(20)]
    responses = await asyncio.gather(
        *(
            app.client.post("/v1/codes/verify", json={"payload": code["payload"], "consume": True}, headers=h)
            for h in gates
        )
    )
    bodies = [r.json() for r in responses]
    assert [b["valid"] for b in bodies].count(True) == 1
    assert sorted(b["reason"] for b in bodies if not b["valid"]) == ["replayed"] * 19


async def test_partner_authentication(app: App, demo: Demo, partner: PartnerHeaders, staff: StaffHeaders) -> None:
    body = {"payload": "OC1:x"}
    assert (await app.client.post("/v1/codes/verify", json=body)).status_code == 401
    response = await app.client.post("/v1/codes/verify", json=body, headers=partner(scope="openid profile"))
    assert response.status_code == 403 and "insufficient_scope" in response.headers["www-authenticate"]
    for headers in (demo[ZHANG_SAN], staff(), {"Authorization": "Bearer nonsense"}):
        response = await app.client.post("/v1/codes/verify", json=body, headers=headers)
        assert response.status_code == 401, response.text


async def test_every_verification_is_in_the_scan_log(
    app: App, demo: Demo, partner: PartnerHeaders, pool: Pool, code_signer: Ed25519Signer
) -> None:
    code = await issue(app.client, demo[ZHANG_SAN], "transit")
    claims = _decode(_split(code["payload"])[1])
    requests = [
        ({"payload": code["payload"], "consume": True, "venue_id": "gate-7"}, "valid"),
        ({"payload": code["payload"], "consume": True}, "replayed"),
        ({"payload": "garbage"}, "malformed"),
        ({"payload": mint(code_signer, now=time.time() - 1000)}, "expired"),
    ]
    for body, _ in requests:
        response = await app.client.post("/v1/codes/verify", json=body, headers=partner("bus-42"))
        assert response.status_code == 200
    rows = await pool.fetch("SELECT * FROM scan_log ORDER BY scanned_at")
    assert [r["result"] for r in rows] == [expected for _, expected in requests]
    assert all(r["partner_id"] == "bus-42" for r in rows)
    first = rows[0]
    assert first["venue_id"] == "gate-7" and first["code_type"] == "T" and first["consumed"] is True
    assert first["pseudonym"] == claims["sub"] and first["jti"] == claims["jti"]
    assert int(first["iat"].timestamp()) == claims["iat"]
    assert rows[1]["consumed"] is False
    assert rows[2]["jti"] is None and rows[2]["pseudonym"] is None and rows[2]["code_type"] is None


async def test_verification_is_rate_limited_per_partner(app: App, partner: PartnerHeaders) -> None:
    app.state.codes.verification._per_second = 3
    headers = partner("noisy")
    statuses = [
        (await app.client.post("/v1/codes/verify", json={"payload": "x"}, headers=headers)).status_code
        for _ in range(8)
    ]
    assert 429 in statuses
    limited = await app.client.post("/v1/codes/verify", json={"payload": "x"}, headers=headers)
    if limited.status_code == 429:
        assert limited.headers["retry-after"] == "1"
