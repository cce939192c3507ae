"""The Ed25519 signer builds its JWS itself: byte for byte what PyJWT would have produced."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.signing import Ed25519Signer

_CLAIMS: list[dict[str, Any]] = [
    # An access token as client_credentials issues it.
    {
        "iss": "https://id.onecity.test",
        "aud": "onecity-api",
        "sub": "partner-1",
        "client_id": "partner-1",
        "iat": 1_764_000_000,
        "exp": 1_764_000_600,
        "jti": "Zk9vQmFyQmF6",
        "scope": "codes:verify",
    },
    # Nested and list claims, a DPoP binding, non-ASCII text (escaped as PyJWT's json.dumps does).
    {"iss": "x", "aud": ["a", "b"], "cnf": {"jkt": "abc"}, "name": "测试1号", "reverify": True, "n": None},
    # datetime time claims become NumericDates.
    {"iss": "x", "iat": datetime(2026, 12, 1, 6, 0, tzinfo=UTC), "exp": datetime(2026, 12, 1, 6, 10, tzinfo=UTC)},
    {},
]


@pytest.mark.parametrize("claims", _CLAIMS)
@pytest.mark.parametrize("typ", ["at+jwt", "JWT", "oc-code+jwt"])
def test_sign_is_byte_identical_to_pyjwt(claims: dict[str, Any], typ: str) -> None:
    key = Ed25519PrivateKey.generate()
    signer = Ed25519Signer("token-20261201-0a1b2c3d", key)
    expected = jwt.encode(dict(claims), key, algorithm="EdDSA", headers={"kid": signer.kid, "typ": typ})
    assert signer.sign(claims, typ=typ) == expected
    assert signer.sign(claims, typ=typ) == expected  # the cached header segment
    jwt.PyJWS().decode(expected, signer.public_key, algorithms=["EdDSA"])  # and it verifies


def test_sign_does_not_change_the_callers_claims() -> None:
    claims = {"iat": datetime(2026, 12, 1, tzinfo=UTC)}
    Ed25519Signer("k", Ed25519PrivateKey.generate()).sign(claims, typ="JWT")
    assert isinstance(claims["iat"], datetime)


def test_a_non_string_issuer_is_refused_as_pyjwt_does() -> None:
    with pytest.raises(TypeError, match="Issuer"):
        Ed25519Signer("k", Ed25519PrivateKey.generate()).sign({"iss": 1}, typ="JWT")
