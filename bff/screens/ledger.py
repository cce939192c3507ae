"""The citizen's data-access ledger: the rules of one page of ``GET /v1/me/data-access``
(docs/data-access.md); the reads are the repository's, the service runs them.

Entries come from two sources (``audit_log`` and ``scan_log``, see the repository), each read
newest first by its own keyset (:func:`ledger_query`), then merged (:func:`merge_page`). The
order is ``(at, source, key)`` descending, with ``source`` 1 for scans and 0 for audit rows,
so a cursor names one row exactly and a page starts strictly after it: rows inserted
meanwhile (newer than the cursor) never shift the pages after the first, and no row is
repeated or skipped. (An entry coming out of its hold keeps its older ``at``; a walk already
past that time sees it on its next fresh read.)
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Annotated, Any

import msgspec

from bff.screens.repository import AuditLedgerRow, ScanLedgerRow
from bff.screens.schemas import (
    Accessor,
    ApplicationHandlingEntry,
    ClaimsReleaseEntry,
    CodeVerificationEntry,
    DataAccessEntry,
    DataAccessPage,
    LedgerItem,
    MessageDeliveryEntry,
    StaffActionEntry,
)
from codes.verifier import API_NAMES
from core.errors import BadRequest
from core.ledger import ACTIONS_BY_KIND, EXPOSURE_SUBJECT_ACTION, ID_TOKEN_RELEASE_ACTION, KINDS, SMS_FALLBACK_ACTION

__all__ = ["ClientNames", "LedgerPage", "LedgerQuery", "ledger_query", "merge_page", "parse_kinds"]

#: The display names of partners by client id (:meth:`identity.oidc.OidcProvider.client_names`).
ClientNames = Callable[[Collection[str]], Awaitable[Mapping[str, str]]]

_AUDIT, _SCAN = 0, 1
_CODE_TYPE_NAMES = {letter: name for name, letter in API_NAMES.items()}
_STAFF_ACTIONS = {
    "codes.health_override.set": ("health_override_set", "health-status-override"),
    "codes.health_override.lift": ("health_override_lift", "health-status-override"),
    EXPOSURE_SUBJECT_ACTION: ("exposure_query", "epidemiological-investigation"),
}
#: Service-hall audit actions: (entry action, purpose).
_APPLICATION_ACTIONS = {
    "hall.case.submitted": ("delivered_to_department", "application-delivery"),
    "hall.case.resubmitted": ("resubmitted_to_department", "application-delivery"),
    "hall.application.event": ("status_reported", "application-progress"),
    "hall.application.read": ("read_in_staff_queue", "application-handling"),
}
_DEPARTMENT_CLIENT_PREFIX = "dept-"
_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class _Cursor(msgspec.Struct, array_like=True, frozen=True):
    """The last row of a page: ``[at, 0, id]`` (audit) or ``[at, 1, jti, partner_id]`` (scan)."""

    at: dt.datetime
    source: Annotated[int, msgspec.Meta(ge=_AUDIT, le=_SCAN)]
    id: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] | None = None  # a bigint: anything else is not ours
    jti: _Text | None = None
    partner: _Text | None = None


def _bad_cursor() -> BadRequest:
    return BadRequest("The cursor is not one this endpoint handed out", extensions={"field": "cursor"})


def _encode_cursor(cursor: _Cursor) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(cursor)).decode().rstrip("=")


def _decode_cursor(cursor: str) -> _Cursor:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = msgspec.json.decode(raw, type=_Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise _bad_cursor() from None
    if decoded.at.tzinfo is None:
        raise _bad_cursor()
    if decoded.source == _AUDIT and (decoded.id is None or decoded.jti is not None):
        raise _bad_cursor()
    if decoded.source == _SCAN and (decoded.jti is None or decoded.partner is None or decoded.id is not None):
        raise _bad_cursor()
    return decoded


def parse_kinds(kind: str | None) -> tuple[str, ...]:
    """The kinds of ``?kind=`` (comma-separated; absent: all).

    Raises:
        BadRequest: an unknown kind.
    """
    if kind is None:
        return KINDS
    wanted = tuple(dict.fromkeys(k.strip() for k in kind.split(",") if k.strip()))
    unknown = [k for k in wanted if k not in KINDS]
    if unknown or not wanted:
        raise BadRequest(
            f"kind must be one or more of {', '.join(KINDS)}", extensions={"field": "kind", "allowed": list(KINDS)}
        )
    return wanted


def _utc(value: dt.datetime | None, field: str) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise BadRequest(f"{field} needs a time zone (RFC 3339)", extensions={"field": field})
    return value


class LedgerQuery(msgspec.Struct, frozen=True, kw_only=True):
    """What one page reads from each source (:func:`ledger_query`).

    Attributes:
        actions: The audit actions of the wanted kinds (empty: no audit read).
        scans: Whether partner verifications are wanted.
        since: Inclusive lower bound of ``at``.
        until: Exclusive upper bound of ``at``.
        before_at: Keyset: only rows older than the cursor's (or as old, see below).
        before_id: The audit keyset's tie-break at ``before_at`` (``None``: every audit row
            at ``before_at``, the cursor was a scan row, which sorts first).
        before_key: The scan keyset's tie-break ``(jti, partner_id)`` at ``before_at``
            (``None``: no scan row at ``before_at``, the cursor was an audit row).
    """

    actions: list[str]
    scans: bool
    since: dt.datetime | None
    until: dt.datetime | None
    before_at: dt.datetime | None = None
    before_id: int | None = None
    before_key: tuple[str, str] | None = None


def ledger_query(
    kinds: Collection[str], *, since: dt.datetime | None, until: dt.datetime | None, cursor: str | None
) -> LedgerQuery:
    """The reads of one page of ``kinds`` in ``[since, until)`` after ``cursor``.

    Raises:
        BadRequest: a cursor this endpoint did not hand out, a time without a zone, or
            ``since`` not before ``until``.
    """
    since, until = _utc(since, "since"), _utc(until, "until")
    if since is not None and until is not None and since >= until:
        raise BadRequest("since must be before until", extensions={"field": "since"})
    after = _decode_cursor(cursor) if cursor else None
    return LedgerQuery(
        actions=[action for kind in kinds for action in ACTIONS_BY_KIND[kind]],
        scans="code_verification" in kinds,
        since=since,
        until=until,
        before_at=after.at if after else None,
        before_id=after.id if after and after.source == _AUDIT else None,
        before_key=(after.jti, after.partner)
        if after and after.source == _SCAN and after.jti and after.partner
        else None,
    )


_LedgerRow = AuditLedgerRow | ScanLedgerRow


class LedgerPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of merged rows, newest first, before the partners' names are known.

    Attributes:
        rows: The page.
        next_cursor: Where the next page starts (``None``: this is the last).
    """

    rows: list[_LedgerRow]
    next_cursor: str | None

    @property
    def partners(self) -> set[str]:
        """The client ids of the partners the page names."""
        return {p for row in self.rows if (p := _partner_id(row)) is not None}

    def render(self, client_names: Mapping[str, str]) -> DataAccessPage:
        """The page as the citizen sees it, partners by their registered names."""
        return DataAccessPage(
            items=[
                _audit_entry(row, client_names) if isinstance(row, AuditLedgerRow) else _scan_entry(row, client_names)
                for row in self.rows
            ],
            next_cursor=self.next_cursor,
        )


def merge_page(audit: Sequence[AuditLedgerRow], scans: Sequence[ScanLedgerRow], limit: int) -> LedgerPage:
    """The newest ``limit`` of both sources (each read newest first with ``limit + 1`` rows).

    The order is ``(at, source)`` descending; a stable sort keeps each source's own keyset
    order within one ``at``.
    """
    rows: list[tuple[dt.datetime, int, _LedgerRow]] = [(row.at, _AUDIT, row) for row in audit]
    rows.extend((row.at, _SCAN, row) for row in scans)
    rows.sort(key=lambda r: (r[0], r[1]), reverse=True)
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        at, _, last = page[-1]
        next_cursor = _encode_cursor(
            _Cursor(at=at, source=_AUDIT, id=last.id)
            if isinstance(last, AuditLedgerRow)
            else _Cursor(at=at, source=_SCAN, jti=last.jti, partner=last.partner_id)
        )
    return LedgerPage(rows=[row for _, _, row in page], next_cursor=next_cursor)


def _partner_id(row: _LedgerRow) -> str | None:
    """The partner a ledger row names, if any (a scan's verifier, a partner's audited act)."""
    if isinstance(row, ScanLedgerRow):
        return row.partner_id
    return row.actor_id if row.actor_type == "partner" else None


def _client_name(row: AuditLedgerRow, client_names: Mapping[str, str]) -> str | None:
    partner_id = _partner_id(row)
    return client_names.get(partner_id) if partner_id is not None else None


def _details(row: AuditLedgerRow) -> dict[str, Any]:
    details = row.details
    return details if isinstance(details, dict) else {}


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _partner(client_id: str | None, name: str | None) -> Accessor:
    return Accessor(type="partner", id=client_id, name=name)


def _scan_entry(row: ScanLedgerRow, client_names: Mapping[str, str]) -> CodeVerificationEntry:
    return CodeVerificationEntry(
        at=row.at,
        who=_partner(row.partner_id, client_names.get(row.partner_id)),
        purpose="code-verification",
        code_type=_CODE_TYPE_NAMES.get(row.code_type, row.code_type),
        venue_id=row.venue_id,
        valid=row.result == "valid",
        result=row.result,
        consumed=row.consumed,
    )


def _audit_entry(row: AuditLedgerRow, client_names: Mapping[str, str]) -> LedgerItem:
    action = row.action
    details = _details(row)
    if action in (ID_TOKEN_RELEASE_ACTION, "oidc.userinfo"):
        id_token = action == ID_TOKEN_RELEASE_ACTION
        claims = details.get("claims")
        return ClaimsReleaseEntry(
            at=row.at,
            who=_partner(row.actor_id, _client_name(row, client_names)),
            purpose="sign-in" if id_token else "profile-request",
            via="id_token" if id_token else "userinfo",
            claims=[str(c) for c in claims] if isinstance(claims, list) else [],
        )
    if action in _APPLICATION_ACTIONS:
        handled, purpose = _APPLICATION_ACTIONS[action]
        actor = str(row.actor_id or "")
        who = (
            Accessor(type="staff", id=actor)
            if row.actor_type == "staff"
            else Accessor(type="department", id=actor.removeprefix(_DEPARTMENT_CLIENT_PREFIX))
        )
        return ApplicationHandlingEntry(
            at=row.at,
            who=who,
            purpose=purpose,
            action=handled,
            application_number=details.get("application"),
            matter=details.get("matter"),
            status=details.get("status") if handled == "status_reported" else None,
        )
    if action == SMS_FALLBACK_ACTION:
        message_id = details.get("message_id")
        return MessageDeliveryEntry(
            at=row.at,
            who=Accessor(type="department", id=str(details.get("department") or "sms")),
            purpose="security-alert",
            channel="sms",
            category=str(details.get("category", "")),
            message_id=str(message_id) if isinstance(message_id, int) else None,
            released=["phone_number", "title"],
        )
    if action in _STAFF_ACTIONS:
        kind, purpose = _STAFF_ACTIONS[action]
        roles = details.get("roles")
        who = Accessor(
            type="staff",
            id=row.actor_id,
            roles=[str(r) for r in roles] if isinstance(roles, list) else None,
            region=details.get("region") if isinstance(details.get("region"), str) else None,
        )
        checkins = details.get("checkins")
        # The override's free-text reason is not shown: staff write it for staff, and it may
        # name other people (a contact, a case). The citizen sees the decision itself.
        return StaffActionEntry(
            at=row.at,
            who=who,
            purpose=purpose,
            action=kind,
            status=details.get("status") if kind == "health_override_set" else None,
            until=_time(details.get("until")),
            venue_id=details.get("venue_id"),
            window_start=_time(details.get("start")),
            window_end=_time(details.get("end")),
            checkins=checkins if isinstance(checkins, int) else None,
            held_until=_time(details.get("hold_until")),
        )
    return DataAccessEntry(
        at=row.at,
        who=Accessor(type="onecity"),
        purpose=str(details.get("purpose", "")),
        department=str(details.get("department", "")),
        resource=str(details.get("resource", "")),
        outcome=row.outcome,
        source=details.get("source"),
        reader="onecity",
    )
