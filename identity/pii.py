"""How a citizen's phone, name and ID number are stored: the one module that names their
vault contexts and blind-index domains.

Each value is AES-GCM-encrypted with its column's context as associated data (a phone blob
cannot be decrypted as a name), and phones and ID numbers are found through keyed blind
indexes. Other domains never see these blobs: they ask :class:`identity.IdentityService`
for what they need (decrypted or masked), so a change of context or key stays inside
identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from core.crypto import Vault

__all__ = ["AccountColumns", "Pii"]

_PHONE: Final = "phone"
_NAME: Final = "name"
_ID_NUMBER: Final = "id_number"


@dataclass(frozen=True, slots=True)
class AccountColumns:
    """The stored form of an account's identity (the ``accounts`` columns of the same names)."""

    phone_enc: bytes
    phone_index: bytes
    name_enc: bytes | None = None
    id_number_enc: bytes | None = None
    id_number_index: bytes | None = None
    region_code: str | None = None


class Pii:
    """Seals and opens phones, names and ID numbers with the process's vault.

    Args:
        vault: The field-encryption and blind-index keys.
    """

    __slots__ = ("_vault",)

    def __init__(self, vault: Vault) -> None:
        self._vault = vault

    def phone_index(self, phone: str) -> bytes:
        """The blind index an account is found by."""
        return self._vault.blind_index(phone, domain=_PHONE)

    def seal_phone(self, phone: str) -> bytes:
        """The encrypted phone."""
        return self._vault.encrypt_text(phone, context=_PHONE)

    def open_phone(self, blob: bytes) -> str:
        """The phone of :meth:`seal_phone`."""
        return self._vault.decrypt_text(blob, context=_PHONE)

    def seal_name(self, name: str) -> bytes:
        """The encrypted real name."""
        return self._vault.encrypt_text(name, context=_NAME)

    def open_name(self, blob: bytes) -> str:
        """The real name of :meth:`seal_name`."""
        return self._vault.decrypt_text(blob, context=_NAME)

    def id_number_index(self, id_number: str) -> bytes:
        """The blind index that keeps one ID number to one account."""
        return self._vault.blind_index(id_number, domain=_ID_NUMBER)

    def seal_id_number(self, id_number: str) -> bytes:
        """The encrypted ID number."""
        return self._vault.encrypt_text(id_number, context=_ID_NUMBER)

    def open_id_number(self, blob: bytes) -> str:
        """The ID number of :meth:`seal_id_number`."""
        return self._vault.decrypt_text(blob, context=_ID_NUMBER)

    def account(self, phone: str, name: str | None = None, id_number: str | None = None) -> AccountColumns:
        """The stored columns of an account with this phone and, when bound, this identity
        (the region is the ID number's first six digits, as real-name verification sets it)."""
        if id_number is None:
            return AccountColumns(phone_enc=self.seal_phone(phone), phone_index=self.phone_index(phone))
        return AccountColumns(
            phone_enc=self.seal_phone(phone),
            phone_index=self.phone_index(phone),
            name_enc=self.seal_name(name) if name is not None else None,
            id_number_enc=self.seal_id_number(id_number),
            id_number_index=self.id_number_index(id_number),
            region_code=id_number[:6],
        )
