"""The citizen's data-access ledger: which audit events it shows, and how access points write them.

``GET /v1/me/data-access`` (``bff.screens``) lists every access to a citizen's data. Most kinds
are audit rows whose ``subject_id`` is the citizen's account id; this module names them (one
place, so the writers in ``identity`` and ``codes`` and the reader in ``bff`` agree) and builds
the events the access points add. Partner verifications are the exception: they are read from
``scan_log`` (see docs/data-access.md for why).

No event built here carries a value of the citizen's data (claim values, names, phone numbers):
only names of what was released and who released it to whom.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from core.audit import AuditEvent
from core.errors import UnprocessableEntity

__all__ = [
    "ACTIONS_BY_KIND",
    "EXPOSURE_SUBJECT_ACTION",
    "ID_TOKEN_RELEASE_ACTION",
    "KINDS",
    "MAX_HOLD",
    "SMS_FALLBACK_ACTION",
    "check_hold",
    "id_token_release",
    "staff_context",
]

#: A partner received an ID token about the citizen (``details.claims``: the claim names).
ID_TOKEN_RELEASE_ACTION = "oidc.id_token"  # noqa: S105 - an audit action name
#: A staff exposure query returned one of the citizen's check-ins (one row per citizen).
EXPOSURE_SUBJECT_ACTION = "codes.exposure.subject"
#: A ``security`` message went to the citizen's phone through the SMS gateway (their phone number
#: and the message's title were handed to it): ``details.category``, ``details.message_id``.
SMS_FALLBACK_ACTION = "messages.sms_fallback"
#: Longest an investigator may hide an exposure query from the citizens it returned.
MAX_HOLD = timedelta(days=30)

#: The audit actions each ledger kind is read from. ``code_verification`` has none: it is read
#: from ``scan_log``. A new kind (agent actions) adds its actions here.
ACTIONS_BY_KIND: Mapping[str, tuple[str, ...]] = {
    # The fan-out's reads (`services.fanout.AUDIT_ACTION`) and the codes status resolver's.
    "department_read": ("data.read", "department.read"),
    "code_verification": (),
    "claims_release": (ID_TOKEN_RELEASE_ACTION, "oidc.userinfo"),
    "staff_action": ("codes.health_override.set", "codes.health_override.lift", EXPOSURE_SUBJECT_ACTION),
    # The service hall: the form handed to a department, its progress reports, staff queues.
    "application_handling": (
        "hall.case.submitted",
        "hall.case.resubmitted",
        "hall.application.event",
        "hall.application.read",
    ),
    # The message centre handed the citizen's phone number to the SMS gateway (messages.delivery).
    "message_delivery": (SMS_FALLBACK_ACTION,),
}
KINDS: tuple[str, ...] = tuple(ACTIONS_BY_KIND)


def id_token_release(client_id: str, account_id: str, claims: Collection[str]) -> AuditEvent:
    """The audit event of an ID token issued to ``client_id`` about ``account_id``.

    Args:
        client_id: The partner.
        account_id: The citizen (the subject of the row, so the citizen's ledger finds it).
        claims: Names of the personal claims in the token (never their values).
    """
    return AuditEvent(
        action=ID_TOKEN_RELEASE_ACTION,
        outcome="success",
        actor_type="partner",
        actor_id=client_id,
        subject_id=account_id,
        details={"claims": sorted(claims)},
    )


def staff_context(roles: Collection[str], region: str) -> dict[str, Any]:
    """What the citizen learns of a staff member besides the staff id: roles and region."""
    return {"roles": sorted(roles), "region": region}


def check_hold(hold_until: datetime | None, now: datetime) -> datetime | None:
    """Validate an exposure query's ``hold_until`` (future, at most :data:`MAX_HOLD` ahead).

    Returns:
        ``hold_until`` in UTC, or ``None``.

    Raises:
        UnprocessableEntity: in the past, or too far ahead.
    """
    if hold_until is None:
        return None
    if hold_until.tzinfo is None:
        raise UnprocessableEntity("hold_until needs a time zone", extensions={"field": "hold_until"})
    if hold_until <= now:
        raise UnprocessableEntity("hold_until must be in the future", extensions={"field": "hold_until"})
    if hold_until > now + MAX_HOLD:
        raise UnprocessableEntity(f"A hold lasts at most {MAX_HOLD.days} days", extensions={"field": "hold_until"})
    return hold_until.astimezone(UTC)
