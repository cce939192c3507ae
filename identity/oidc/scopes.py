"""The scopes OneCity grants and the claims each one releases.

Two kinds of scope exist. *Citizen* scopes release data about a citizen and need the
citizen's consent; they are asked for in the authorization code flow. *Partner* scopes are
machine permissions on OneCity's own APIs (``codes:verify``), granted to a confidential
client through ``client_credentials`` and never through a citizen's consent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CITIZEN_SCOPES",
    "PARTNER_SCOPES",
    "SCOPES",
    "ScopeInfo",
    "claims_supported",
    "parse_scope",
]

ScopeKind = Literal["citizen", "partner"]


@dataclass(frozen=True, slots=True)
class ScopeInfo:
    """One scope: who grants it, what it releases, and how the consent page describes it."""

    name: str
    kind: ScopeKind
    claims: tuple[str, ...]
    description: str
    description_zh: str


SCOPES: dict[str, ScopeInfo] = {
    s.name: s
    for s in (
        ScopeInfo("openid", "citizen", ("sub",), "Sign you in with your OneCity account", "使用城市账号登录"),
        ScopeInfo(
            "profile",
            "citizen",
            ("name",),
            "Your name (masked as 张* unless you choose to share it in full)",
            "您的姓名（默认脱敏显示，如 张*）",
        ),
        ScopeInfo(
            "phone", "citizen", ("phone_number", "phone_number_verified"), "Your mobile phone number", "您的手机号码"
        ),
        ScopeInfo(
            "identity.level",
            "citizen",
            ("identity_level",),
            "Your identity verification level (L2 phone, L3 real-name, L4 real-person)",
            "您的实名认证等级",
        ),
        ScopeInfo(
            "codes:verify",
            "partner",
            (),
            "Verify citizens' city-service codes (partner machine access)",
            "核验城市服务码（合作方系统权限）",
        ),
        ScopeInfo(
            "venues:write",
            "partner",
            (),
            "Register venues and fetch their check-in posters (partner machine access)",
            "登记场所并获取场所码（合作方系统权限）",
        ),
        ScopeInfo(
            "applications:events",
            "partner",
            (),
            "Report the progress of the department's own cases (department machine access)",
            "报送本部门办件进度（部门系统权限）",
        ),
    )
}
CITIZEN_SCOPES = frozenset(name for name, s in SCOPES.items() if s.kind == "citizen")
PARTNER_SCOPES = frozenset(name for name, s in SCOPES.items() if s.kind == "partner")

_MAX_SCOPE_TOKENS = 32


def parse_scope(text: str | None) -> tuple[str, ...] | None:
    """Split a ``scope`` parameter into its distinct tokens, in order of first appearance.

    Returns:
        The tokens, or ``None`` when the value is not a valid RFC 6749 scope (unknown
        characters, too many tokens). An unknown but well-formed scope is returned as is:
        whether it is allowed is the caller's decision.
    """
    if text is None:
        return ()
    tokens = text.split(" ")
    if len(tokens) > _MAX_SCOPE_TOKENS:
        return None
    seen: dict[str, None] = {}
    for token in tokens:
        if not token:
            continue
        # RFC 6749 section 3.3: %x21 / %x23-5B / %x5D-7E
        if any(ord(c) < 0x21 or ord(c) > 0x7E or c in '"\\' for c in token):
            return None
        seen[token] = None
    return tuple(seen)


def claims_supported() -> list[str]:
    """Every claim an ID token or userinfo response can carry (for discovery)."""
    base = ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "at_hash"]
    for info in SCOPES.values():
        base.extend(c for c in info.claims if c not in base)
    return base
