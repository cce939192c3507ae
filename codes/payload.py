"""The ``OC1:`` code payload: code types, claims, lifetimes and issuing.

A code's QR text is ``OC1:`` followed by a compact JWS signed with a ``code`` key
(``core.keys``), header exactly ``{"alg":"EdDSA","kid":...,"typ":"oc1"}``. The format is a fixed
contract (DESIGN.md, "Code payload"); :mod:`codes.verifier` is its offline counterpart and the
source of the shared limits, so issuing and verifying can never disagree.

Size budget: the whole string must stay within :data:`MAX_PAYLOAD_CHARS` (320). With the key
store's kids (``code-YYYYMMDD-xxxxxxxx``, 22 characters) the header and the signature alone
take 170 characters, leaving about 112 bytes of claim JSON; that is why ``sub`` and ``jti`` are
64-bit values (11 base64url characters each). :func:`issue_code` refuses to emit anything longer.
"""

from __future__ import annotations

import enum
import secrets
import time
from collections.abc import Mapping
from typing import Annotated

import msgspec

from codes.verifier import (
    API_NAMES,
    HOLDER_CODE_TYPES,
    MAX_HOLDER_LIFETIME_S,
    MAX_PAYLOAD_CHARS,
    PREFIX,
    STATUSES,
    TYP,
)
from core.signing import Ed25519Signer, b64url_encode
from core.structs import FrozenStruct

__all__ = [
    "JTI_BYTES",
    "LIFETIMES",
    "MAX_HOLDER_LIFETIME_S",
    "MAX_PAYLOAD_CHARS",
    "PREFIX",
    "TYP",
    "CodeClaims",
    "CodeType",
    "PayloadTooLongError",
    "build_claims",
    "issue_code",
    "new_jti",
    "refresh_after",
]

#: Random bytes in a ``jti``: unique among live codes (a few minutes' worth) with a wide margin.
JTI_BYTES = 8

_DAY = 86_400


class CodeType(enum.StrEnum):
    """A code type; the value is the ``ct`` claim letter."""

    HEALTH = "H"
    TRANSIT = "T"
    SOCSEC = "S"
    CITIZEN = "C"
    VENUE = "V"

    @classmethod
    def parse(cls, value: str) -> CodeType:
        """Accept an API name (``health``) or a claim letter (``H``).

        Raises:
            ValueError: for anything else.
        """
        letter = API_NAMES.get(value, value)
        try:
            return cls(letter)
        except ValueError:
            raise ValueError(f"unknown code type {value!r}") from None

    @property
    def api_name(self) -> str:
        """The name used in URLs and API bodies: ``health``, ``transit``, ..."""
        return _API_NAME_BY_TYPE[self]

    @property
    def is_holder_code(self) -> bool:
        """True for codes a citizen shows (short-lived); false for venue codes."""
        return self.value in HOLDER_CODE_TYPES

    @property
    def lifetime_s(self) -> int:
        """Default ``exp - iat`` for new codes of this type."""
        return LIFETIMES[self]

    @property
    def statuses(self) -> frozenset[str]:
        """The ``st`` values this type may carry."""
        return STATUSES[self.value]


_API_NAME_BY_TYPE: Mapping[CodeType, str] = {CodeType(letter): name for name, letter in API_NAMES.items()}

#: Default lifetimes. Holder codes are short so a screenshot is soon useless; a venue poster
#: hangs on a wall for a year (its key must verify that long: see ``core.keys`` grace).
LIFETIMES: Mapping[CodeType, int] = {
    CodeType.HEALTH: 180,
    CodeType.TRANSIT: 60,
    CodeType.SOCSEC: 300,
    CodeType.CITIZEN: 300,
    CodeType.VENUE: 365 * _DAY,
}

_NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_Timestamp = Annotated[int, msgspec.Meta(ge=0)]


class CodeClaims(FrozenStruct, frozen=True, omit_defaults=True):
    """The JWS claims of a code, in contract order; ``rv`` is omitted when ``None``.

    Construction validates the cross-field rules (status allowed for the type, ``exp`` after
    ``iat``, holder codes living at most :data:`MAX_HOLDER_LIFETIME_S`), so an invalid code
    cannot even be built.
    """

    iss: _NonEmpty
    ct: CodeType
    sub: _NonEmpty
    st: str
    iat: _Timestamp
    exp: _Timestamp
    jti: _NonEmpty
    rv: Annotated[int, msgspec.Meta(ge=0)] | None = None

    def __post_init__(self) -> None:
        if self.st not in self.ct.statuses:
            raise ValueError(f"status {self.st!r} is not valid for code type {self.ct.api_name}")
        if self.exp <= self.iat:
            raise ValueError("exp must be after iat")
        if self.ct.is_holder_code and self.exp - self.iat > MAX_HOLDER_LIFETIME_S:
            raise ValueError(f"{self.ct.api_name} codes live at most {MAX_HOLDER_LIFETIME_S} s")


class PayloadTooLongError(ValueError):
    """An issued payload would exceed :data:`MAX_PAYLOAD_CHARS` (long ``iss``, ``kid`` or ``sub``)."""


def new_jti() -> str:
    """A fresh random ``jti``: :data:`JTI_BYTES` bytes, base64url (11 characters)."""
    return b64url_encode(secrets.token_bytes(JTI_BYTES))


def build_claims(
    code_type: CodeType | str,
    *,
    issuer: str,
    subject: str,
    status: str,
    now: float | None = None,
    lifetime_s: int | None = None,
    rule_version: int | None = None,
    jti: str | None = None,
) -> CodeClaims:
    """Claims for a new code, with ``iat`` = now, ``exp`` from the type's lifetime, a fresh ``jti``.

    Args:
        code_type: A :class:`CodeType`, API name or letter.
        issuer: The city's short id (``iss``).
        subject: The holder's per-type pseudonym (:class:`codes.pseudonym.Pseudonymizer`) or,
            for venue codes, the venue's id.
        status: The ``st`` value.
        now: Unix time of issue; the system clock if omitted.
        lifetime_s: Overrides the type's default lifetime (still capped for holder codes).
        rule_version: For health codes, the version of the rules that decided ``status``.
        jti: A given ``jti`` (tests, idempotent re-issue); random if omitted.

    Raises:
        ValueError: for an unknown type, a status the type does not allow, or a lifetime
            beyond the cap.
    """
    kind = CodeType.parse(code_type) if isinstance(code_type, str) else code_type
    iat = int(time.time() if now is None else now)
    life = kind.lifetime_s if lifetime_s is None else lifetime_s
    return CodeClaims(
        iss=issuer,
        ct=kind,
        sub=subject,
        st=status,
        iat=iat,
        exp=iat + life,
        jti=new_jti() if jti is None else jti,
        rv=rule_version,
    )


def refresh_after(claims: CodeClaims) -> int:
    """Unix time at which the app should fetch a new code: two thirds into its life.

    Refreshing before expiry leaves a third of the life as margin for a slow network and a
    scanner whose clock runs a little fast.
    """
    return claims.iat + (claims.exp - claims.iat) * 2 // 3


def issue_code(signer: Ed25519Signer, claims: CodeClaims) -> str:
    """Sign ``claims`` with a ``code`` key and return the QR text ``OC1:<compact JWS>``.

    Args:
        signer: The active signer of the ``code`` purpose (never a token key: the key sets are
            separate so a token never verifies as a code).
        claims: What to sign (see :func:`build_claims`).

    Raises:
        PayloadTooLongError: if the result exceeds :data:`MAX_PAYLOAD_CHARS`.
    """
    # to_builtins keeps field order and drops rv=None (omit_defaults).
    payload = PREFIX + signer.sign(msgspec.to_builtins(claims), typ=TYP)
    if len(payload) > MAX_PAYLOAD_CHARS:
        raise PayloadTooLongError(
            f"code payload is {len(payload)} characters, over the {MAX_PAYLOAD_CHARS} budget "
            f"(kid {len(signer.kid)}, iss {len(claims.iss)}, sub {len(claims.sub)} characters)"
        )
    return payload
