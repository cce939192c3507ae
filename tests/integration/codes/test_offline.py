"""Offline verification: the published keys, and agreement with the online verifier."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bff.cli import main as onecity
from codes.verifier import verify_code
from core.db import Pool
from core.keys import KeyStore
from core.signing import Ed25519Signer, b64url_encode
from tests.integration.codes.conftest import ZHANG_SAN, App, Demo, StaffHeaders, Verify, code_keys, issue, mint


def _signed(signer: Ed25519Signer, claims: dict[str, Any], **header: Any) -> str:
    """A JWS over arbitrary claims with the code key (shapes the issuer would never produce)."""
    head = b64url_encode(json.dumps({"alg": "EdDSA", "kid": signer.kid, "typ": "oc1", **header}).encode())
    body = b64url_encode(json.dumps(claims).encode())
    signature = b64url_encode(signer.private_key.sign(f"{head}.{body}".encode()))
    return f"OC1:{head}.{body}.{signature}"


async def _corpus(
    app: App, demo: Demo, staff: StaffHeaders, signer: Ed25519Signer, token_signer: Ed25519Signer
) -> list[str]:
    good = [
        (await issue(app.client, demo[ZHANG_SAN], t))["payload"] for t in ("health", "transit", "socsec", "citizen")
    ]
    venue = await app.client.post(
        "/v1/admin/venues", json={"name": "市图书馆", "address": "文化路1号", "region": "110101"}, headers=staff()
    )
    assert venue.status_code == 201, venue.text
    good.append(venue.json()["payload"])
    now = int(time.time())
    base = {"iss": "cs", "ct": "H", "sub": "AAAAAAAAAAA", "st": "G", "iat": now, "exp": now + 180, "jti": "BBBBBBBBBBB"}
    head, claims, signature = good[0][4:].split(".")
    tampered_claims = json.loads(base64.urlsafe_b64decode(claims + "=="))
    tampered_claims["st"] = "R"
    bad = [
        mint(signer, now=now - 1000),  # expired
        mint(signer, now=now - 211),  # just past exp + skew
        mint(signer, now=now + 200),  # not yet valid
        mint(Ed25519Signer("code-20990101-0badc0de", Ed25519PrivateKey.generate())),  # unknown key
        mint(token_signer),  # a token key
        f"OC1:{head}.{b64url_encode(json.dumps(tampered_claims).encode())}.{signature}",  # tampered
        # Signature changed in its first character, whose 6 bits all count: "AA" at the end was a
        # no-op for 1 signature in 256 (the last character carries only 2 bits).
        f"OC1:{head}.{claims}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}",
        f"OC1:{head}.{claims}",  # truncated
        good[0] + "x" * 40,  # trailing garbage
        _signed(signer, base, alg="HS256"),
        _signed(signer, {**base, "st": "A"}),  # status not allowed for health
        _signed(signer, {**base, "exp": now + 400}),  # a holder code living too long
        _signed(signer, {k: v for k, v in base.items() if k != "jti"}),  # missing claim
        _signed(signer, {**base, "ct": "Z"}),  # unknown type
        _signed(signer, base, jku="https://evil.example/jwks"),
        _signed(signer, base, typ="JWT"),
        "OC1:" + "A" * 330,
        "not a code",
        "",
    ]
    return good + bad


async def test_offline_and_online_agree(
    app: App, demo: Demo, staff: StaffHeaders, verify: Verify, code_signer: Ed25519Signer, key_store: KeyStore
) -> None:
    token_signer = (await key_store.load()).signer("token")
    corpus = await _corpus(app, demo, staff, code_signer, token_signer)
    keys = await code_keys(app.client)
    outcomes = []
    for payload in corpus:
        offline = verify_code(payload, keys, skew_s=app.state.codes.settings.clock_skew_s)
        online = await verify(payload) if payload else {"valid": False, "reason": "malformed"}
        outcomes.append((offline.valid, offline.reason, online["valid"], online["reason"]))
        assert (offline.valid, offline.reason) == (online["valid"], online["reason"]), payload
        assert offline.code_type == online.get("code_type") or not offline.valid
    assert sum(1 for o in outcomes if o[0]) == 5  # the five good codes
    assert {o[1] for o in outcomes} >= {None, "expired", "not_yet_valid", "unknown_key", "bad_signature", "malformed"}


async def test_onecity_verify_cli_agrees(app: App, demo: Demo, tmp_path: Path, code_signer: Ed25519Signer) -> None:
    keys_file = tmp_path / "codes-keys.json"
    keys_file.write_text((await app.client.get("/v1/codes/keys")).text)
    good = (await issue(app.client, demo[ZHANG_SAN]))["payload"]
    expired = mint(code_signer, now=time.time() - 1000)

    def run(*argv: str) -> int:
        return onecity(["verify", *argv])

    assert await asyncio.to_thread(run, good, "--keys", str(keys_file), "--type", "health", "--issuer", "cs") == 0
    assert await asyncio.to_thread(run, good, "--keys", str(keys_file), "--type", "transit") == 1
    assert await asyncio.to_thread(run, expired, "--keys", str(keys_file)) == 1
    assert await asyncio.to_thread(run, good, "--keys", str(tmp_path / "missing.json")) == 2


async def test_keys_are_cacheable_code_keys_only(app: App, key_store: KeyStore) -> None:
    response = await app.client.get("/v1/codes/keys")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.headers["content-type"].startswith("application/jwk-set+json")
    kids = [k["kid"] for k in response.json()["keys"]]
    assert kids and all(k.startswith("code-") for k in kids)
    ring = await key_store.load()
    assert ring.signer("token").kid not in kids and ring.signer("code").kid in kids
    for key in response.json()["keys"]:
        assert set(key) == {"kty", "crv", "x", "kid", "use", "alg"} and "d" not in key


@pytest.fixture
async def rotation(pool: Pool, key_store: KeyStore) -> Any:
    """Rotate the code key (the new one signs in an hour); undo it after the test."""
    before = {r["kid"] for r in await pool.fetch("SELECT kid FROM signing_keys WHERE purpose = 'code'")}
    new_kid = await key_store.rotate("code", activate_in=timedelta(hours=1))
    yield new_kid
    await pool.execute("DELETE FROM signing_keys WHERE kid = $1", new_kid)
    await pool.execute(
        "UPDATE signing_keys SET retired_at = NULL, verify_until = NULL WHERE kid = ANY($1::text[])", list(before)
    )


async def test_rotation_overlap_is_published(app: App, demo: Demo, verify: Verify, rotation: str) -> None:
    old = (await issue(app.client, demo[ZHANG_SAN]))["payload"]
    await app.state.resources.keys.reload()
    kids = [k["kid"] for k in (await app.client.get("/v1/codes/keys")).json()["keys"]]
    assert rotation in kids  # published before it signs
    assert len(kids) >= 2
    still_old = (await issue(app.client, demo[ZHANG_SAN]))["payload"]
    assert json.loads(base64.urlsafe_b64decode(still_old[4:].split(".")[0] + "=="))["kid"] != rotation
    assert (await verify(old))["valid"] is True
