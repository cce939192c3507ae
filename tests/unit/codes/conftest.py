"""Shared fixtures for the codes unit tests: a code key, its JWKS, a fixed clock."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from codes.verifier import load_jwks
from core.signing import Ed25519Signer

#: The key store's kid format (``code-YYYYMMDD-xxxxxxxx``): the realistic size for the budget.
CODE_KID = "code-20250301-9f1c2ab4"
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z


@pytest.fixture
def signer() -> Ed25519Signer:
    return Ed25519Signer(CODE_KID, Ed25519PrivateKey.generate())


@pytest.fixture
def keys(signer: Ed25519Signer) -> dict[str, Ed25519PublicKey]:
    return load_jwks({"keys": [signer.jwk()]})
