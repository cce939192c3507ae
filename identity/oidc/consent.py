"""The citizen's view of consent: what each partner may see, and withdrawing it.

Withdrawing consent for a client deletes the consent rows and revokes every grant of that
client for the citizen: its refresh tokens stop working at once and its access tokens
within one Redis round trip of the next use.
"""

from __future__ import annotations

from core.audit import AuditEvent, write_audit
from core.errors import NotFound
from identity.oidc.clients import CLIENT_ID_PATTERN
from identity.oidc.repository import OidcRepository
from identity.oidc.schemas import ConsentInfo, ConsentList
from identity.revocation import GRANTS, RevocationSet

__all__ = ["Consents"]


class Consents:
    """Lists and withdraws a citizen's consents.

    Args:
        repository: SQL.
        revocations: Where revoked grants are announced.
    """

    def __init__(self, repository: OidcRepository, revocations: RevocationSet) -> None:
        self._repository = repository
        self._revocations = revocations

    async def list(self, account_id: str) -> ConsentList:
        """Every client the citizen shares something with, and what."""
        grouped: dict[str, ConsentInfo] = {}
        for entry in await self._repository.list_consents(account_id):
            known = grouped.get(entry.client_id)
            full_name = bool(entry.options.get("full_name", False))
            if known is None:
                grouped[entry.client_id] = ConsentInfo(
                    client_id=entry.client_id,
                    client_name=entry.client_name,
                    scopes=[entry.scope],
                    full_name=full_name,
                    granted_at=entry.granted_at,
                )
            else:
                grouped[entry.client_id] = ConsentInfo(
                    client_id=known.client_id,
                    client_name=known.client_name,
                    scopes=[*known.scopes, entry.scope],
                    full_name=known.full_name or full_name,
                    granted_at=max(known.granted_at, entry.granted_at),
                )
        return ConsentList(consents=list(grouped.values()))

    async def withdraw(self, account_id: str, client_id: str, *, client_ip: str | None) -> None:
        """Withdraw every consent given to ``client_id`` and revoke its grants.

        Raises:
            NotFound: the citizen shares nothing with that client.
        """
        if not CLIENT_ID_PATTERN.fullmatch(client_id):
            raise NotFound("You share nothing with this client")
        async with self._repository.transaction() as tx:
            deleted, grant_ids = await self._repository.withdraw_consents(
                tx, account_id=account_id, client_id=client_id
            )
            if not deleted and not grant_ids:
                raise NotFound("You share nothing with this client")
            await write_audit(
                tx,
                [
                    AuditEvent(
                        action="oidc.consent.withdrawn",
                        outcome="success",
                        actor_type="citizen",
                        actor_id=account_id,
                        subject_id=account_id,
                        client_ip=client_ip,
                        details={"client_id": client_id, "grants_revoked": len(grant_ids)},
                    )
                ],
            )
        await self._revocations.revoke(GRANTS, grant_ids)
