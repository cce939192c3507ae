import secrets

import pytest

from core.crypto import DecryptionError, MasterKeyError, Vault, parse_master_key


def test_round_trip_and_context_binding() -> None:
    vault = Vault(secrets.token_bytes(32))
    blob = vault.encrypt_text("13800000001", context="phone")
    assert b"13800000001" not in blob
    assert vault.decrypt_text(blob, context="phone") == "13800000001"
    with pytest.raises(DecryptionError):
        vault.decrypt_text(blob, context="id_number")


def test_wrong_master_key_cannot_decrypt() -> None:
    blob = Vault(secrets.token_bytes(32)).encrypt_text("secret", context="x")
    with pytest.raises(DecryptionError):
        Vault(secrets.token_bytes(32)).decrypt_text(blob, context="x")


def test_tampered_ciphertext_is_rejected() -> None:
    vault = Vault(secrets.token_bytes(32))
    blob = bytearray(vault.encrypt_text("secret", context="x"))
    blob[-1] ^= 1
    with pytest.raises(DecryptionError):
        vault.decrypt(bytes(blob), context="x")


def test_blind_index_is_deterministic_keyed_and_domain_separated() -> None:
    key = secrets.token_bytes(32)
    a, b = Vault(key), Vault(key)
    assert a.blind_index("13800000001", domain="phone") == b.blind_index("13800000001", domain="phone")
    assert a.blind_index("13800000001", domain="phone") != a.blind_index("13800000001", domain="id_number")
    assert a.blind_index("13800000001", domain="phone") != Vault(secrets.token_bytes(32)).blind_index(
        "13800000001", domain="phone"
    )


@pytest.mark.parametrize("value", [None, "", "not base64 at all!!", "c2hvcnQ"])
def test_bad_master_keys_are_clear_errors(value: str | None) -> None:
    with pytest.raises(MasterKeyError) as info:
        parse_master_key(value)
    assert "ONECITY_MASTER_KEY" in str(info.value)
    if value:
        assert value not in str(info.value)
