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

from core.crypto import Vault

__all__ = ["AccountColumns", "Pii", "SealedField"]


@dataclass(frozen=True, slots=True)
class AccountColumns:
    """The stored form of an account's identity (the ``accounts`` columns of the same names)."""

    phone_enc: bytes
    phone_index: bytes
    name_enc: bytes | None = None
    id_number_enc: bytes | None = None
    id_number_index: bytes | None = None
    region_code: str | None = None


class SealedField:
    """One kind of personal value: its encryption context, which is also its blind-index domain.

    Args:
        vault: The field-encryption and blind-index keys.
        context: The kind (``phone``, ``name``, ``id_number``).
    """

    __slots__ = ("_context", "_vault")

    def __init__(self, vault: Vault, context: str) -> None:
        self._vault = vault
        self._context = context

    def seal(self, value: str) -> bytes:
        """The encrypted value."""
        return self._vault.encrypt_text(value, context=self._context)

    def open(self, blob: bytes) -> str:
        """The value of :meth:`seal`."""
        return self._vault.decrypt_text(blob, context=self._context)

    def index(self, value: str) -> bytes:
        """The keyed blind index the value is found by (phones, ID numbers)."""
        return self._vault.blind_index(value, domain=self._context)


class Pii:
    """Seals and opens phones, names and ID numbers with the process's vault.

    Args:
        vault: The field-encryption and blind-index keys.

    Attributes:
        phone: The account's phone (found by its index).
        name: The bound real name (never indexed).
        id_number: The bound ID number (its index keeps one ID number to one account).
    """

    __slots__ = ("id_number", "name", "phone")

    def __init__(self, vault: Vault) -> None:
        self.phone = SealedField(vault, "phone")
        self.name = SealedField(vault, "name")
        self.id_number = SealedField(vault, "id_number")

    def account(self, phone: str, name: str | None = None, id_number: str | None = None) -> AccountColumns:
        """The stored columns of an account with this phone and, when bound, this identity
        (the region is the ID number's first six digits, as real-name verification sets it)."""
        if id_number is None:
            return AccountColumns(phone_enc=self.phone.seal(phone), phone_index=self.phone.index(phone))
        return AccountColumns(
            phone_enc=self.phone.seal(phone),
            phone_index=self.phone.index(phone),
            name_enc=self.name.seal(name) if name is not None else None,
            id_number_enc=self.id_number.seal(id_number),
            id_number_index=self.id_number.index(id_number),
            region_code=id_number[:6],
        )
