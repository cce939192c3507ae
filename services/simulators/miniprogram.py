"""Mini-program platform simulator (``aud: miniprogram``): code-to-session exchange.

Login codes look like ``mp-<user>-<nonce>``. The openid and unionid are derived from ``<user>``
alone, so the same simulated user always gets the same ids; each code works once. Users whose
name starts with ``nounion`` get no unionid, to exercise that optional field.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections import OrderedDict
from typing import Annotated, Final

import msgspec
from litestar import Litestar, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from services.simulators.base import SimulatorError, SimulatorState, build_simulator
from services.tokens import JwksSource, VerifiedServiceToken

__all__ = ["USED_CODES_LIMIT", "create_app", "session_ids"]

USED_CODES_LIMIT: Final = 100_000
"""Used codes remembered; bounds memory in a long dev session."""

_CODE: Final = re.compile(r"mp-([A-Za-z0-9_.]{1,64})-([A-Za-z0-9_-]{1,64})")


class CodeBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``POST /v1/code2session`` request."""

    code: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class SessionBody(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """``POST /v1/code2session`` answer."""

    openid: str
    unionid: str | None = None


def _derive(prefix: str, user: str) -> str:
    digest = hashlib.sha256(f"onecity-sim|{prefix}|{user}".encode()).digest()
    return prefix + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()[:27]


def session_ids(user: str) -> tuple[str, str | None]:
    """The ``(openid, unionid)`` the simulator gives ``user``."""
    return _derive("o", user), None if user.startswith("nounion") else _derive("u", user)


def create_app(jwks: JwksSource, *, dev_mode: bool = True) -> Litestar:
    """Build the mini-program platform simulator.

    Args:
        jwks: The BFF's service-token keys.
        dev_mode: Unused here; every simulator factory takes it.
    """
    used: OrderedDict[str, None] = OrderedDict()

    @post("/v1/code2session", status_code=200, sync_to_thread=False)
    def code2session(token: NamedDependency[VerifiedServiceToken], data: JSONBody[CodeBody]) -> SessionBody:
        match = _CODE.fullmatch(data.code)
        if match is None:
            raise SimulatorError(400, "invalid-code", "Invalid code", "The code is not a valid login code")
        if data.code in used:
            raise SimulatorError(400, "invalid-code", "Invalid code", "The code has already been used")
        used[data.code] = None
        if len(used) > USED_CODES_LIMIT:
            used.popitem(last=False)
        openid, unionid = session_ids(match.group(1))
        return SessionBody(openid=openid, unionid=unionid)

    return build_simulator(SimulatorState("miniprogram", jwks, dev_mode=dev_mode), [code2session])
