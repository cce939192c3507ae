"""DPoP building blocks that need no server: thumbprints, htu comparison, nonces, ath."""

from __future__ import annotations

import secrets
import time
from typing import Any, cast

import pytest

from core.crypto import Vault
from core.redis import Redis
from identity.oidc.dpop import DPoPVerifier, _normalise_url, access_token_hash, jwk_thumbprint


def test_okp_thumbprint_matches_rfc_8037_appendix_a3() -> None:
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "ignored"}
    assert jwk_thumbprint(jwk) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_thumbprint_refuses_keys_it_cannot_bind() -> None:
    with pytest.raises(Exception, match="supported public key"):
        jwk_thumbprint({"kty": "oct", "k": "c2VjcmV0"})
    with pytest.raises(Exception, match="supported public key"):
        jwk_thumbprint({"kty": "EC", "crv": "P-256", "x": "abc"})


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("https://City.Example/oauth/token", "https://city.example/oauth/token", True),
        ("https://city.example/v1/codes/verify?x=1#f", "https://city.example/v1/codes/verify", True),
        ("HTTPS://city.example/a", "https://city.example/a", True),
        ("https://city.example/A", "https://city.example/a", False),
        ("https://city.example/oauth/token", "https://evil.example/oauth/token", False),
        ("http://city.example/oauth/token", "https://city.example/oauth/token", False),
    ],
)
def test_htu_comparison(a: str, b: str, same: bool) -> None:
    assert (_normalise_url(a) == _normalise_url(b)) is same


def test_ath_is_base64url_sha256() -> None:
    assert access_token_hash("abc") == "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"


def test_nonces_are_stateless_and_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = DPoPVerifier(cast(Redis, None), Vault(secrets.token_bytes(32)), max_age_s=60, clock_skew_s=30)
    other = DPoPVerifier(cast(Redis, None), Vault(secrets.token_bytes(32)), max_age_s=60, clock_skew_s=30)
    nonce = verifier.nonce()
    assert len(nonce) == 32
    assert verifier._nonce_ok(nonce)
    assert not other._nonce_ok(nonce)  # another master key
    bad: list[Any] = [None, 12, "", "A" * 32]
    assert not any(verifier._nonce_ok(b) for b in bad)
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 300)
    assert verifier._nonce_ok(nonce)  # the next slot still accepts it
    monkeypatch.setattr(time, "time", lambda: now + 900)
    assert not verifier._nonce_ok(nonce)
