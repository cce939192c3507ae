"""Per-type holder pseudonyms."""

from __future__ import annotations

import secrets

import pytest

from codes.payload import CodeType
from codes.pseudonym import SUBJECT_BYTES, Pseudonymizer
from core.crypto import Vault
from core.signing import b64url_decode

ACCOUNT = "a4c1f7d2-0b9e-4c55-8d2a-6f1e3b7a9c04"
PHONE = "13800000001"
ID_NUMBER = "110101199003070011"


@pytest.fixture
def vault() -> Vault:
    return Vault(secrets.token_bytes(32))


def test_stable_per_type_and_account(vault: Vault) -> None:
    first, second = Pseudonymizer(vault), Pseudonymizer(vault)
    for kind in CodeType:
        assert first.subject(kind, ACCOUNT) == second.subject(kind, ACCOUNT)
        # API names and letters name the same type.
        assert (
            first.subject(kind.api_name, ACCOUNT) == first.subject(kind.value, ACCOUNT) == first.subject(kind, ACCOUNT)
        )


def test_short_base64url(vault: Vault) -> None:
    subject = Pseudonymizer(vault).subject("health", ACCOUNT)
    assert len(b64url_decode(subject)) == SUBJECT_BYTES
    assert len(subject) == 11
    assert len(b64url_decode(Pseudonymizer(vault, size=16).subject("health", ACCOUNT))) == 16


def test_types_give_unrelated_values(vault: Vault) -> None:
    pseudonyms = Pseudonymizer(vault)
    values = {pseudonyms.subject(kind, ACCOUNT) for kind in CodeType}
    assert len(values) == len(CodeType)


def test_accounts_differ_and_nothing_leaks(vault: Vault) -> None:
    pseudonyms = Pseudonymizer(vault)
    subjects = {pseudonyms.subject("health", value) for value in (ACCOUNT, PHONE, ID_NUMBER)}
    assert len(subjects) == 3
    for subject in subjects:
        for secret in (ACCOUNT, PHONE, ID_NUMBER, ACCOUNT[:8], PHONE[-4:], ID_NUMBER[-4:]):
            assert secret not in subject


def test_keyed_by_the_master_key(vault: Vault) -> None:
    other = Vault(secrets.token_bytes(32))
    assert Pseudonymizer(vault).subject("transit", ACCOUNT) != Pseudonymizer(other).subject("transit", ACCOUNT)


def test_bad_input(vault: Vault) -> None:
    pseudonyms = Pseudonymizer(vault)
    with pytest.raises(ValueError, match="unknown code type"):
        pseudonyms.subject("passport", ACCOUNT)
    with pytest.raises(ValueError, match="empty"):
        pseudonyms.subject("health", "")
    with pytest.raises(ValueError, match="size"):
        Pseudonymizer(vault, size=4)
