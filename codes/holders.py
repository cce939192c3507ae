"""Who holds a code: the account facts codes need, and the pseudonym ↔ account mapping.

Account data belongs to the identity domain; this module reads it through
:class:`identity.repository.IdentityRepository` and decrypts only what a code needs (the ID
number for department calls, the name to mask for verifiers). The ``sub`` of a code is the
per-type pseudonym of :class:`codes.pseudonym.Pseudonymizer`; :class:`Holders` records each
pseudonym once in ``code_subjects`` so verification can find the holder again.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

from codes.payload import CodeType
from codes.pseudonym import Pseudonymizer
from codes.repository import CodesRepository
from core.crypto import Vault
from core.errors import DependencyUnavailable
from identity.masking import mask_name
from identity.repository import IdentityRepository

__all__ = ["HolderAccount", "Holders"]

log = logging.getLogger("onecity.codes")

_KNOWN_CAPACITY = 100_000  # (type, account) pairs known to be registered, per process


@dataclass(frozen=True, slots=True)
class HolderAccount:
    """The account facts codes use. ``id_number`` is for department calls only: never logged,
    never returned."""

    account_id: str
    level: str
    masked_name: str | None
    id_number: str | None
    region_code: str | None


class Holders:
    """Account look-ups and pseudonyms.

    Args:
        accounts: The identity domain's repository.
        repository: The codes repository (``code_subjects``).
        vault: Decrypts names and ID numbers.
        pseudonyms: Derives ``sub`` values.
    """

    def __init__(
        self, *, accounts: IdentityRepository, repository: CodesRepository, vault: Vault, pseudonyms: Pseudonymizer
    ) -> None:
        self._accounts = accounts
        self._repository = repository
        self._vault = vault
        self.pseudonyms = pseudonyms
        # Registration is idempotent but costs a write; remember what this process registered.
        self._known: OrderedDict[tuple[str, str], None] = OrderedDict()

    async def get(self, account_id: str) -> HolderAccount | None:
        """The account, or ``None`` if it does not exist."""
        row = await self._accounts.get_account(account_id)
        if row is None:
            return None
        name = row["name_enc"]
        id_number = row["id_number_enc"]
        return HolderAccount(
            account_id=str(row["id"]),
            level=row["level"],
            masked_name=mask_name(self._vault.decrypt_text(name, context="name")) if name else None,
            id_number=self._vault.decrypt_text(id_number, context="id_number") if id_number else None,
            region_code=row["region_code"],
        )

    def subject(self, code_type: CodeType, account_id: str) -> str:
        """The holder's pseudonym for ``code_type``."""
        return self.pseudonyms.subject(code_type, account_id)

    async def register(self, code_type: CodeType, account_id: str) -> str:
        """The pseudonym for ``code_type``, recorded so verification can find the account.

        Raises:
            DependencyUnavailable: the pseudonym already belongs to another account (a 64-bit
                collision, about one in 10^5 chances over ten million holders): issuing stops
                rather than let two citizens share a ``sub``.
        """
        subject = self.subject(code_type, account_id)
        key = (code_type.value, account_id)
        if key in self._known:
            return subject
        owner = await self._repository.register_subject(
            code_type=code_type.value, pseudonym=subject, account_id=account_id
        )
        if owner != account_id:
            log.error("code pseudonym collision", extra={"code_type": code_type.value})
            raise DependencyUnavailable("Codes of this type cannot be issued for this account right now")
        self._known[key] = None
        if len(self._known) > _KNOWN_CAPACITY:
            self._known.popitem(last=False)
        return subject

    async def account_of(self, code_type: str, subject: str) -> str | None:
        """The account behind a pseudonym, if recorded."""
        return await self._repository.account_of(code_type, subject)
