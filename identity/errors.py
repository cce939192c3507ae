"""Errors of citizen identity with their own stable problem ``type`` slugs.

``bff.problems`` maps every :class:`core.errors.OneCityError` by its class attributes, so a
new slug needs only a subclass here.
"""

from __future__ import annotations

from core.errors import Conflict, Forbidden, UnprocessableEntity

__all__ = ["IdNumberBoundElsewhere", "IdentityAlreadyBound", "RealNameNotVerified", "ReverificationRequired"]


class IdentityAlreadyBound(Conflict):
    """The account is bound to another identity; bindings only change by correction."""

    type_slug = "identity-already-bound"
    title = "This account is already bound to another identity"


class IdNumberBoundElsewhere(Conflict):
    """The ID number is bound to another account (one ID number, one account).

    The repository raises it for the unique index on the ID number. The service never lets
    it reach the caller as such: the caller gets :class:`RealNameNotVerified`, the same answer
    as "no match", and the owner of the other account is told.
    """


class RealNameNotVerified(UnprocessableEntity):
    """The registry check did not bind this identity to the account.

    One answer for "no match" and "matches but already bound to another account": telling
    them apart would turn the endpoint into an oracle of who has an account.
    """

    type_slug = "real-name-not-verified"
    title = "The name and ID number could not be verified for this account"


class ReverificationRequired(Forbidden):
    """The session must prove the bound identity again before it sees personal data."""

    type_slug = "identity-reverification-required"
    title = "Prove your identity again to continue"
