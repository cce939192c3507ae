"""The OC1 payload: exact header, claims, lifetimes, and the 320-character budget."""

from __future__ import annotations

import json
import secrets

import jwt
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from codes.payload import (
    LIFETIMES,
    MAX_PAYLOAD_CHARS,
    CodeClaims,
    CodeType,
    PayloadTooLongError,
    build_claims,
    issue_code,
    new_jti,
    refresh_after,
)
from codes.pseudonym import Pseudonymizer
from codes.verifier import API_NAMES, CODE_TYPES, HOLDER_CODE_TYPES, STATUSES
from core.crypto import Vault
from core.signing import Ed25519Signer, b64url_decode

from .conftest import CODE_KID, NOW

ALL_TYPES = list(CodeType)


def _parts(payload: str) -> tuple[dict[str, object], dict[str, object], bytes]:
    assert payload.startswith("OC1:")
    header, claims, signature = payload[4:].split(".")
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(claims)), b64url_decode(signature)


def _status(code_type: CodeType) -> str:
    return "R" if code_type is CodeType.HEALTH else "X"


def test_code_types_match_the_contract() -> None:
    assert {t.value for t in CodeType} == set(CODE_TYPES) == {"H", "T", "S", "C", "V"}
    assert {t.api_name: t.value for t in CodeType} == dict(API_NAMES)
    assert {t.value for t in CodeType if t.is_holder_code} == set(HOLDER_CODE_TYPES)
    for name, letter in API_NAMES.items():
        assert CodeType.parse(name) is CodeType.parse(letter) is CodeType(letter)
    assert CodeType.HEALTH.statuses == {"G", "Y", "R"}
    assert all(t.statuses == STATUSES[t.value] for t in CodeType)
    with pytest.raises(ValueError, match="unknown code type"):
        CodeType.parse("passport")


def test_lifetimes() -> None:
    assert LIFETIMES == {
        CodeType.HEALTH: 180,
        CodeType.TRANSIT: 60,
        CodeType.SOCSEC: 300,
        CodeType.CITIZEN: 300,
        CodeType.VENUE: 365 * 86_400,
    }
    for code_type in CodeType:
        claims = build_claims(code_type, issuer="cs", subject="s", status=_status(code_type), now=NOW)
        assert claims.exp - claims.iat == code_type.lifetime_s
        # Refresh two thirds into the life: before expiry, after most of it.
        assert claims.iat < refresh_after(claims) < claims.exp
        assert refresh_after(claims) == claims.iat + code_type.lifetime_s * 2 // 3
    assert refresh_after(build_claims("health", issuer="cs", subject="s", status="G", now=NOW)) == NOW + 120


def test_header_is_exactly_the_contract(signer: Ed25519Signer) -> None:
    payload = issue_code(
        signer, build_claims("health", issuer="cs", subject="abc", status="G", now=NOW, rule_version=1)
    )
    raw_header = b64url_decode(payload[4:].split(".")[0])
    assert raw_header == b'{"alg":"EdDSA","kid":"' + CODE_KID.encode() + b'","typ":"oc1"}'


def test_claims_in_contract_order_and_rv_omitted_when_none(signer: Ed25519Signer) -> None:
    health = build_claims("health", issuer="cs", subject="abc", status="Y", now=NOW, rule_version=3, jti="j1")
    _, claims, signature = _parts(issue_code(signer, health))
    assert list(claims) == ["iss", "ct", "sub", "st", "iat", "exp", "jti", "rv"]
    assert claims == {
        "iss": "cs",
        "ct": "H",
        "sub": "abc",
        "st": "Y",
        "iat": NOW,
        "exp": NOW + 180,
        "jti": "j1",
        "rv": 3,
    }
    assert len(signature) == 64

    transit = build_claims(CodeType.TRANSIT, issuer="cs", subject="abc", status="A", now=NOW, jti="j2")
    _, claims, _ = _parts(issue_code(signer, transit))
    assert "rv" not in claims
    assert claims["ct"] == "T"


def test_any_jose_library_verifies_a_code(signer: Ed25519Signer) -> None:
    payload = issue_code(signer, build_claims("citizen", issuer="cs", subject="abc", status="A"))
    token = payload.removeprefix("OC1:")
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": CODE_KID, "typ": "oc1"}
    decoded = jwt.decode(token, signer.public_key, algorithms=["EdDSA"])
    assert decoded["ct"] == "C"


@pytest.mark.parametrize("code_type", ALL_TYPES, ids=lambda t: t.api_name)
def test_every_type_fits_the_budget_with_realistic_values(code_type: CodeType) -> None:
    signer = Ed25519Signer(CODE_KID, Ed25519PrivateKey.generate())
    subject = Pseudonymizer(Vault(secrets.token_bytes(32))).subject(code_type, "a4c1f7d2-0b9e-4c55-8d2a-6f1e3b7a9c04")
    # Two-digit rule versions and an 11-digit-year-2286 clock are the far edges: use the former.
    version = 99 if code_type is CodeType.HEALTH else None
    claims = build_claims(code_type, issuer="cs", subject=subject, status=_status(code_type), rule_version=version)
    payload = issue_code(signer, claims)
    assert len(payload) <= MAX_PAYLOAD_CHARS


def test_jti_is_short_random_base64url() -> None:
    values = {new_jti() for _ in range(1000)}
    assert len(values) == 1000
    assert all(len(v) == 11 and len(b64url_decode(v)) == 8 for v in values)


def test_over_budget_is_refused() -> None:
    signer = Ed25519Signer("code-" + "x" * 40, Ed25519PrivateKey.generate())
    claims = build_claims("health", issuer="cs", subject="s" * 22, status="G", rule_version=1)
    with pytest.raises(PayloadTooLongError, match="320"):
        issue_code(signer, claims)


@pytest.mark.parametrize(
    ("code_type", "status", "lifetime", "message"),
    [
        ("health", "A", None, "not valid"),
        ("transit", "G", None, "not valid"),
        ("venue", "R", None, "not valid"),
        ("socsec", "A", 301, "at most 300"),
        ("citizen", "A", 0, "after iat"),
    ],
)
def test_invalid_claims_cannot_be_built(code_type: str, status: str, lifetime: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_claims(code_type, issuer="cs", subject="s", status=status, now=NOW, lifetime_s=lifetime)


def test_venue_codes_may_live_long() -> None:
    claims = build_claims("venue", issuer="cs", subject="venue-1", status="A", now=NOW, lifetime_s=400 * 86_400)
    assert claims.exp - claims.iat == 400 * 86_400


def test_claims_decode_with_the_same_validation() -> None:
    raw = b'{"iss":"cs","ct":"T","sub":"s","st":"G","iat":1,"exp":2,"jti":"j"}'
    with pytest.raises(msgspec.ValidationError, match="not valid"):
        msgspec.json.decode(raw, type=CodeClaims)
    ok = msgspec.json.decode(raw.replace(b'"G"', b'"A"'), type=CodeClaims)
    assert ok.ct is CodeType.TRANSIT
