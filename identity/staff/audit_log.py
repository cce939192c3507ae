"""The auditor's window on the audit log: read-only, keyset-paginated, region-scoped.

Scope rule: an audit row belongs to the region of its *subject* (a citizen's registered
district, a staff member's region). An auditor sees the rows whose subject lies in their
region; rows whose subject has no region (partners, the system, anonymous attempts,
citizens below real-name level) only a city-level auditor sees. Every page read is itself
written to the log (``audit.read``), so the auditors are audited too.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime

from core.audit import AuditEvent
from core.errors import BadRequest
from identity.staff.permissions import StaffPrincipal, region_level
from identity.staff.repository import StaffRepository
from identity.staff.schemas import AuditEntry, AuditPage

__all__ = ["AuditReader", "decode_cursor", "encode_cursor"]

_ACTION = re.compile(r"^[a-z0-9_.-]{1,64}\*?$")


def encode_cursor(last_id: int) -> str:
    """An opaque cursor after the row ``last_id``."""
    return base64.urlsafe_b64encode(f"a:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The row id a cursor stands for.

    Raises:
        BadRequest: not a cursor this API gave out.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = raw.partition(":")
        if prefix != "a" or not value.isdigit() or len(value) > 19:
            raise ValueError(raw)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("cursor: not a cursor from this API", extensions={"field": "cursor"}) from None


class AuditReader:
    """Reads the audit log for auditors.

    Args:
        repository: SQL of the staff domain.
    """

    def __init__(self, repository: StaffRepository) -> None:
        self._repository = repository

    async def page(
        self,
        auditor: StaffPrincipal,
        *,
        cursor: str | None,
        action: str | None,
        since: datetime | None,
        limit: int,
        client_ip: str | None,
    ) -> AuditPage:
        """One page, newest first.

        Args:
            auditor: The caller (the route's guard has checked the role).
            cursor: From the previous page's ``next_cursor``.
            action: An exact action (``staff.login``) or a prefix ending in ``*`` (``staff.*``).
            since: Only rows at or after this time.
            limit: Rows per page.
            client_ip: For the ``audit.read`` row.

        Raises:
            BadRequest: a malformed cursor or action filter.
        """
        before = decode_cursor(cursor) if cursor else None
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)  # RFC 3339 wants an offset; read a bare time as UTC
        if action is not None and not _ACTION.fullmatch(action):
            raise BadRequest("action: an action name, or a prefix ending in '*'", extensions={"field": "action"})
        prefix = action[:-1] if action is not None and action.endswith("*") else None
        rows = await self._repository.audit_page(
            region=auditor.region,
            sees_unregioned=region_level(auditor.region) == "city",
            before_id=before,
            action=None if prefix is not None else action,
            action_prefix=prefix,
            since=since,
            limit=limit + 1,
        )
        events = [
            AuditEntry(
                id=r.id,
                at=r.at,
                actor_type=r.actor_type,
                actor_id=r.actor_id,
                subject_id=r.subject_id,
                action=r.action,
                outcome=r.outcome,
                client_ip=r.client_ip,
                details=dict(r.details or {}),
            )
            for r in rows[:limit]
        ]
        await self._repository.audit(
            [
                AuditEvent(
                    action="audit.read",
                    outcome="success",
                    actor_type="staff",
                    actor_id=auditor.staff_id,
                    client_ip=client_ip,
                    details={
                        "action": action,
                        "since": since.isoformat() if since else None,
                        "cursor": before,
                        "rows": len(events),
                    },
                )
            ]
        )
        next_cursor = encode_cursor(events[-1].id) if len(rows) > limit else None
        return AuditPage(events=events, next_cursor=next_cursor)
