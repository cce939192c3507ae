"""The citizen of a request and what their identity level allows.

Every domain that acts for a signed-in citizen receives a :class:`Principal` (from
:func:`identity.dependencies.provide_principal` or ``provide_confirmed_principal``) and asks
it, never the raw token, whether the level is enough. The ranking of the levels is
:mod:`core.levels`.
"""

from __future__ import annotations

from core.errors import InsufficientLevel
from core.levels import meets_level
from identity.errors import ReverificationRequired
from identity.tokens import AccessClaims

__all__ = ["Principal"]


class Principal:
    """The authenticated citizen of a request, from a verified, unrevoked access token."""

    __slots__ = ("account_id", "claims", "level", "reverify", "session_id")

    def __init__(self, claims: AccessClaims) -> None:
        assert claims.sid is not None
        assert claims.acr is not None
        self.claims = claims
        self.account_id = claims.sub
        self.session_id: str = claims.sid
        self.level: str = claims.acr
        #: The session must prove the bound identity again before it sees personal data
        #: (a recycled phone number): see :func:`identity.dependencies.provide_confirmed_principal`.
        self.reverify: bool = claims.reverify

    def require_confirmed(self) -> None:
        """Refuse (403 ``identity-reverification-required``) while the session must re-verify."""
        if self.reverify:
            raise ReverificationRequired(
                "This sign-in must prove the account's identity again (real-name or real-person "
                "verification) before it can see personal data"
            )

    def has_level(self, level: str) -> bool:
        """Whether the token's level is ``level`` or higher."""
        return meets_level(self.level, level)

    def require_level(self, level: str) -> None:
        """Raise the RFC 9470 step-up challenge when the token's level is below ``level``."""
        if not self.has_level(level):
            raise InsufficientLevel(level)
