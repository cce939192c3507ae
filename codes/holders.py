"""Who holds a code: the account facts codes need, and the pseudonym ↔ account mapping.

Account data belongs to the identity domain; this module asks it through its port
(:meth:`identity.IdentityService.account_facts`: the level, the region, the ID number for
department calls and the name already masked for verifiers). The ``sub`` of a code is the
per-type pseudonym of :class:`codes.pseudonym.Pseudonymizer`; :class:`Holders` records each
pseudonym once in ``code_subjects`` so verification can find the holder again.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from codes.payload import CodeType
from codes.pseudonym import Pseudonymizer
from codes.repository import CodesRepository
from core.errors import DependencyUnavailable
from identity import AccountFacts, IdentityService

__all__ = ["HolderAccount", "Holders"]

log = logging.getLogger("onecity.codes")

_KNOWN_CAPACITY = 100_000  # (type, account) pairs known to be registered, per process


#: The account facts codes use (identity's view for other domains).
HolderAccount = AccountFacts


class Holders:
    """Account look-ups and pseudonyms.

    Args:
        identity: The identity domain, for account facts.
        repository: The codes repository (``code_subjects``).
        pseudonyms: Derives ``sub`` values.
    """

    def __init__(self, *, identity: IdentityService, repository: CodesRepository, pseudonyms: Pseudonymizer) -> None:
        self._identity = identity
        self._repository = repository
        self.pseudonyms = pseudonyms
        # Registration is idempotent but costs a write; remember what this process registered.
        self._known: OrderedDict[tuple[str, str], None] = OrderedDict()

    async def get(self, account_id: str) -> HolderAccount | None:
        """The account, or ``None`` if it does not exist."""
        return await self._identity.account_facts(account_id)

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
