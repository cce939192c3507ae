"""The mini-program platform client: code-to-session exchange (``aud: miniprogram``)."""

from __future__ import annotations

from typing import Protocol

import msgspec

from services.departments.base import DepartmentHttp, Payload
from services.tokens import SERVICE_SUBJECT

__all__ = ["HttpMiniProgramPlatform", "MiniProgramPlatform", "MiniProgramSession"]


class MiniProgramSession(Payload, frozen=True, kw_only=True):
    """``POST /v1/code2session``: the platform's stable ids for the user."""

    openid: str
    unionid: str | None = None


class _CodeBody(msgspec.Struct, frozen=True, kw_only=True):
    code: str


class MiniProgramPlatform(Protocol):
    """What the BFF needs from the mini-program platform."""

    async def code2session(self, code: str, *, purpose: str = "miniprogram-login") -> MiniProgramSession:
        """Exchange a one-time login ``code`` for the user's ids; a bad or used code is ``rejected``."""
        ...


class HttpMiniProgramPlatform:
    """:class:`MiniProgramPlatform` over HTTP.

    Args:
        http: The department's transport (base URL, shared client, token minter).
    """

    __slots__ = ("_http",)

    def __init__(self, http: DepartmentHttp) -> None:
        self._http = http

    async def code2session(self, code: str, *, purpose: str = "miniprogram-login") -> MiniProgramSession:
        """``POST /v1/code2session``."""
        return await self._http.post(
            "/v1/code2session",
            _CodeBody(code=code),
            MiniProgramSession,
            subject=SERVICE_SUBJECT,
            scope="miniprogram:code2session",
            purpose=purpose,
        )
