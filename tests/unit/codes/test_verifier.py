"""The offline verifier: every way a code can be refused, and that it stands alone."""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import codes.verifier
from codes.payload import build_claims, issue_code
from codes.verifier import MAX_PAYLOAD_CHARS, load_jwks, verify_code
from core.signing import Ed25519Signer, b64url_decode, b64url_encode, public_key_to_jwk

from .conftest import CODE_KID, NOW

Keys = dict[str, Ed25519PublicKey]


def _claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": "cs",
        "ct": "H",
        "sub": "Zk9v",
        "st": "G",
        "iat": NOW,
        "exp": NOW + 180,
        "jti": "qW3r",
        "rv": 1,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _segment(value: Mapping[str, Any] | bytes) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()
    return b64url_encode(raw)


def _forge(
    key: Ed25519PrivateKey,
    *,
    header: Mapping[str, Any] | None = None,
    claims: Mapping[str, Any] | bytes | None = None,
    allow_long: bool = False,
) -> str:
    """A code signed with ``key`` over any header and claims (what an attacker can make).

    It must fit the budget unless ``allow_long``: otherwise a test meant for one check would
    pass because of the size check.
    """
    head = _segment(header if header is not None else {"alg": "EdDSA", "kid": CODE_KID, "typ": "oc1"})
    body = _segment(claims if claims is not None else _claims())
    signature = key.sign(f"{head}.{body}".encode())
    payload = f"OC1:{head}.{body}.{b64url_encode(signature)}"
    assert allow_long or len(payload) <= MAX_PAYLOAD_CHARS, len(payload)
    return payload


def _good(signer: Ed25519Signer, code_type: str = "health", status: str = "G") -> str:
    return issue_code(signer, build_claims(code_type, issuer="cs", subject="sub", status=status, now=NOW))


def test_good_code(signer: Ed25519Signer, keys: Keys) -> None:
    payload = _good(signer)
    result = verify_code(payload, keys, now=NOW + 10, expected_types={"health"}, trusted_issuers={"cs"})
    assert result.valid
    assert result.reason is None
    assert result.claims is not None
    assert result.claims["ct"] == "H"
    assert result.claims["st"] == "G"
    assert result.code_type == "health"


def test_expected_types_accept_letters_too(signer: Ed25519Signer, keys: Keys) -> None:
    assert verify_code(_good(signer), keys, now=NOW, expected_types=["H"]).valid
    with pytest.raises(ValueError, match="unknown code type"):
        verify_code(_good(signer), keys, now=NOW, expected_types=["passport"])


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        (NOW - 31, "not_yet_valid"),  # issued "in the future" beyond the 30 s skew
        (NOW - 30, None),  # within the skew
        (NOW + 180 + 29, None),  # just expired, but within the skew
        (NOW + 180 + 30, "expired"),
        (NOW + 10_000, "expired"),
    ],
)
def test_time_window_with_skew(signer: Ed25519Signer, keys: Keys, at: int, reason: str | None) -> None:
    result = verify_code(_good(signer), keys, now=at)
    assert result.reason == reason
    assert result.valid is (reason is None)
    # An authentic but refused code still tells the server what it was.
    assert result.claims is not None


def test_skew_is_configurable(signer: Ed25519Signer, keys: Keys) -> None:
    assert verify_code(_good(signer), keys, now=NOW + 180, skew_s=0).reason == "expired"
    assert verify_code(_good(signer), keys, now=NOW - 1, skew_s=0).reason == "not_yet_valid"


def test_tampered_claims(signer: Ed25519Signer, keys: Keys) -> None:
    head, body, signature = _good(signer, status="R").removeprefix("OC1:").split(".")
    claims = json.loads(b64url_decode(body))
    claims["st"] = "G"  # red to green
    forged = f"OC1:{head}.{_segment(claims)}.{signature}"
    result = verify_code(forged, keys, now=NOW)
    assert (result.valid, result.reason, result.claims) == (False, "bad_signature", None)


def test_tampered_signature(signer: Ed25519Signer, keys: Keys) -> None:
    head, body, signature = _good(signer).removeprefix("OC1:").split(".")
    raw = bytearray(b64url_decode(signature))
    raw[10] ^= 0x01
    assert verify_code(f"OC1:{head}.{body}.{b64url_encode(bytes(raw))}", keys, now=NOW).reason == "bad_signature"


def test_non_canonical_base64_signature_is_malformed(signer: Ed25519Signer, keys: Keys) -> None:
    payload = _good(signer)
    # 64 bytes -> 86 chars: the last char carries 4 unused bits; flipping one keeps the bytes.
    last = payload[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(last) ^ 1]
    assert b64url_decode(payload[-86:]) == b64url_decode(payload[-86:-1] + twin)
    assert verify_code(payload[:-1] + twin, keys, now=NOW).reason == "malformed"


def test_unknown_kid(keys: Keys) -> None:
    stranger = Ed25519PrivateKey.generate()
    payload = _forge(stranger, header={"alg": "EdDSA", "kid": "code-20990101-00000000", "typ": "oc1"})
    assert verify_code(payload, keys, now=NOW).reason == "unknown_key"


def test_token_signing_key_is_not_a_code_key(keys: Keys) -> None:
    # A key of the token set: its kid is simply not in the code JWKS.
    token_signer = Ed25519Signer("token-20250301-1a2b3c4d", Ed25519PrivateKey.generate())
    payload = "OC1:" + token_signer.sign(_claims(sub="s"), typ="oc1")
    assert len(payload) <= MAX_PAYLOAD_CHARS
    assert verify_code(payload, keys, now=NOW).reason == "unknown_key"
    # A real access token presented as a code fails even with the right prefix glued on.
    token = "OC1:" + token_signer.sign({"sub": "acc", "iat": NOW, "exp": NOW + 60}, typ="at+jwt")
    assert verify_code(token, keys, now=NOW).reason == "malformed"


def test_same_kid_different_key(keys: Keys) -> None:
    impostor = Ed25519Signer(CODE_KID, Ed25519PrivateKey.generate())
    payload = issue_code(impostor, build_claims("health", issuer="cs", subject="s", status="G", now=NOW))
    assert verify_code(payload, keys, now=NOW).reason == "bad_signature"


@pytest.mark.parametrize("alg", ["none", "NONE", "None", "nOnE"])
def test_alg_none_in_any_casing(keys: Keys, alg: str) -> None:
    head = _segment({"alg": alg, "kid": CODE_KID, "typ": "oc1"})
    body = _segment(_claims())
    for signature in ("", "AAAA", "A" * 86):
        assert len(f"OC1:{head}.{body}.{signature}") <= MAX_PAYLOAD_CHARS
        result = verify_code(f"OC1:{head}.{body}.{signature}", keys, now=NOW)
        assert result.reason == "malformed"
        assert not result.valid


def test_hs256_signed_with_the_public_key(keys: Keys) -> None:
    # The classic key-confusion attack: HMAC keyed with the published public key bytes.
    public = keys[CODE_KID].public_bytes(Encoding.Raw, PublicFormat.Raw)
    head = _segment({"alg": "HS256", "kid": CODE_KID, "typ": "oc1"})
    body = _segment(_claims())
    mac = hmac.new(public, f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert len(f"OC1:{head}.{body}.{b64url_encode(mac + mac)}") <= MAX_PAYLOAD_CHARS
    assert verify_code(f"OC1:{head}.{body}.{b64url_encode(mac)}", keys, now=NOW).reason == "malformed"
    # Even padded to Ed25519 signature length it never reaches a key.
    mac64 = mac + mac
    assert verify_code(f"OC1:{head}.{body}.{b64url_encode(mac64)}", keys, now=NOW).reason == "malformed"


@pytest.mark.parametrize("alg", ["eddsa", "Ed25519", "ES256", "RS256"])
def test_other_algs_refused(signer: Ed25519Signer, keys: Keys, alg: str) -> None:
    payload = _forge(signer.private_key, header={"alg": alg, "kid": CODE_KID, "typ": "oc1"})
    assert verify_code(payload, keys, now=NOW).reason == "malformed"


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", "OC1", None])
def test_wrong_typ(signer: Ed25519Signer, keys: Keys, typ: str | None) -> None:
    header = {"alg": "EdDSA", "kid": CODE_KID}
    if typ is not None:
        header["typ"] = typ
    assert verify_code(_forge(signer.private_key, header=header), keys, now=NOW).reason == "malformed"


@pytest.fixture
def no_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lift the size limit, so a header check is tested on its own, not hidden by the budget."""
    monkeypatch.setattr(codes.verifier, "MAX_PAYLOAD_CHARS", 10_000)


@pytest.mark.usefixtures("no_budget")
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("jku", "https://evil.example/jwks.json"),
        ("x5u", "https://evil.example/cert.pem"),
        ("crit", ["exp"]),
        ("x5c", ["MIIB"]),
        ("b64", False),
    ],
)
def test_key_carrying_headers_refused(signer: Ed25519Signer, keys: Keys, name: str, value: object) -> None:
    # Signed by the genuine key: the header alone must make it fail.
    header = {"alg": "EdDSA", "kid": CODE_KID, "typ": "oc1", name: value}
    assert verify_code(_forge(signer.private_key, header=header, allow_long=True), keys, now=NOW).reason == "malformed"


@pytest.mark.usefixtures("no_budget")
def test_embedded_jwk_header_refused(signer: Ed25519Signer, keys: Keys) -> None:
    attacker = Ed25519PrivateKey.generate()
    for key, jwk_of in ((attacker, attacker), (signer.private_key, signer.private_key)):
        header = {
            "alg": "EdDSA",
            "kid": CODE_KID,
            "typ": "oc1",
            "jwk": public_key_to_jwk(jwk_of.public_key(), kid=CODE_KID),
        }
        assert verify_code(_forge(key, header=header, allow_long=True), keys, now=NOW).reason == "malformed"
    # Control: with the limit lifted, the same long code without the header is accepted.
    long_claims = _claims(sub="x" * 300)
    assert verify_code(_forge(signer.private_key, claims=long_claims, allow_long=True), keys, now=NOW).valid


def test_extra_harmless_header_is_tolerated(signer: Ed25519Signer, keys: Keys) -> None:
    # The contract may grow optional header fields; old verifiers must not break on them.
    header = {"alg": "EdDSA", "kid": CODE_KID, "typ": "oc1", "v": 2}
    assert verify_code(_forge(signer.private_key, header=header, claims=_claims(sub="s")), keys, now=NOW).valid


def test_wrong_type(signer: Ed25519Signer, keys: Keys) -> None:
    result = verify_code(_good(signer, "transit", "A"), keys, now=NOW, expected_types={"health", "citizen"})
    assert (result.valid, result.reason) == (False, "wrong_type")
    assert result.code_type == "transit"


def test_untrusted_issuer(signer: Ed25519Signer, keys: Keys) -> None:
    result = verify_code(_good(signer), keys, now=NOW, trusted_issuers={"sz", "gz"})
    assert (result.valid, result.reason) == (False, "unknown_key")


def test_over_budget_is_malformed(signer: Ed25519Signer, keys: Keys) -> None:
    payload = _forge(signer.private_key, claims=_claims(sub="x" * 200), allow_long=True)
    assert len(payload) > MAX_PAYLOAD_CHARS
    assert verify_code(payload, keys, now=NOW).reason == "malformed"


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "OC1:",
        "OC2:a.b.c",
        "oc1:a.b.c",
        "OC1:a.b",
        "OC1:a.b.c.d",
        "OC1:!!!.b.c",
        "OC1:eyJhbGciOiJFZERTQSJ9==.e30.AAAA",
        "OC1:bm90IGpzb24.e30." + "A" * 86,
        "OC1:WzFd.e30." + "A" * 86,  # header is a JSON array
    ],
)
def test_structurally_malformed(keys: Keys, payload: str) -> None:
    assert verify_code(payload, keys, now=NOW).reason == "malformed"


def test_non_string_payload(keys: Keys) -> None:
    assert verify_code(b"OC1:a.b.c", keys, now=NOW).reason == "malformed"  # type: ignore[arg-type]


def test_duplicate_header_member_refused(signer: Ed25519Signer, keys: Keys) -> None:
    raw = b'{"alg":"EdDSA","kid":"' + CODE_KID.encode() + b'","typ":"oc1","typ":"oc1"}'
    head, body = b64url_encode(raw), _segment(_claims())
    signature = b64url_encode(signer.private_key.sign(f"{head}.{body}".encode()))
    assert verify_code(f"OC1:{head}.{body}.{signature}", keys, now=NOW).reason == "malformed"


@pytest.mark.parametrize(
    "claims",
    [
        _claims(iss=None),
        _claims(sub=""),
        _claims(jti=None),
        _claims(ct="X"),
        _claims(ct=None),
        _claims(st="A"),  # not a health status
        _claims(ct="T", st="G"),
        _claims(iat="1767225600"),
        _claims(exp=NOW + 180.5),
        _claims(exp=True),
        _claims(exp=NOW),  # exp not after iat
        _claims(exp=NOW + 301),  # holder codes live at most 300 s
        _claims(ct="C", st="A", exp=NOW + 3600),
        _claims(rv="1"),
        _claims(rv=-1),
        _claims(sub=123),
        b"[1,2]",
        b"not json",
    ],
)
def test_signed_but_ill_formed_claims(signer: Ed25519Signer, keys: Keys, claims: dict[str, Any] | bytes) -> None:
    result = verify_code(_forge(signer.private_key, claims=claims), keys, now=NOW)
    assert (result.valid, result.reason, result.claims) == (False, "malformed", None)


def test_venue_codes_may_be_long_lived(signer: Ed25519Signer, keys: Keys) -> None:
    claims = _claims(ct="V", st="A", exp=NOW + 365 * 86_400, rv=None)
    assert verify_code(_forge(signer.private_key, claims=claims), keys, now=NOW + 200 * 86_400).valid


def test_load_jwks_keeps_only_ed25519_signing_keys(signer: Ed25519Signer) -> None:
    other = Ed25519Signer("code-2", Ed25519PrivateKey.generate())
    jwks = {
        "keys": [
            signer.jwk(),
            other.jwk(),
            {"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"},
            {"kty": "OKP", "crv": "X25519", "kid": "x", "x": signer.jwk()["x"]},
            {**other.jwk(), "kid": "enc", "use": "enc"},
            {**other.jwk(), "kid": "es", "alg": "ES256"},
            {"kty": "OKP", "crv": "Ed25519", "x": signer.jwk()["x"]},  # no kid
            "garbage",
        ]
    }
    ring = load_jwks(jwks)
    assert set(ring) == {CODE_KID, "code-2"}


@pytest.mark.parametrize(
    "jwks",
    [
        {},
        {"keys": {}},
        {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "AAAA"}]},  # 3 bytes
        {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": 5}]},
    ],
)
def test_load_jwks_refuses_broken_documents(jwks: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        load_jwks(jwks)


def test_load_jwks_refuses_two_keys_under_one_kid(signer: Ed25519Signer) -> None:
    other = Ed25519Signer(CODE_KID, Ed25519PrivateKey.generate())
    with pytest.raises(ValueError, match="share kid"):
        load_jwks({"keys": [signer.jwk(), other.jwk()]})
    # The same key listed twice is harmless.
    assert set(load_jwks({"keys": [signer.jwk(), signer.jwk()]})) == {CODE_KID}


def test_verifier_stands_alone() -> None:
    """Partners copy the file: it may import only the standard library and cryptography."""
    tree = ast.parse(Path(codes.verifier.__file__).read_text())
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            assert node.module is not None
            roots.add(node.module.split(".")[0])
    import sys

    assert {r for r in roots if r not in sys.stdlib_module_names} == {"cryptography"}
