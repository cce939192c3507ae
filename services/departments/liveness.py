"""The face/liveness service client (``aud: liveness``)."""

from __future__ import annotations

from typing import Protocol

import msgspec

from services.departments.base import DepartmentHttp, Payload

__all__ = ["HttpLiveness", "Liveness", "LivenessResult"]


class LivenessResult(Payload, frozen=True, kw_only=True):
    """``POST /v1/liveness``."""

    passed: bool
    score: float


class _LivenessBody(msgspec.Struct, frozen=True, kw_only=True):
    session_token: str


class Liveness(Protocol):
    """What the BFF needs from the liveness service."""

    async def check(
        self, session_token: str, *, id_number: str, purpose: str = "real-person-verification"
    ) -> LivenessResult:
        """Whether the liveness session ``session_token`` shows the live holder of ``id_number``."""
        ...


class HttpLiveness:
    """:class:`Liveness` over HTTP.

    Args:
        http: The department's transport (base URL, shared client, token minter).
    """

    __slots__ = ("_http",)

    def __init__(self, http: DepartmentHttp) -> None:
        self._http = http

    async def check(
        self, session_token: str, *, id_number: str, purpose: str = "real-person-verification"
    ) -> LivenessResult:
        """``POST /v1/liveness`` for the citizen named in the token."""
        return await self._http.post(
            "/v1/liveness",
            _LivenessBody(session_token=session_token),
            LivenessResult,
            subject=id_number,
            scope="liveness:check",
            purpose=purpose,
        )
