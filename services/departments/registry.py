"""The population registry client: name and ID number match (``aud: registry``)."""

from __future__ import annotations

from typing import Protocol

import msgspec

from services.departments.base import DepartmentHttp, Payload

__all__ = ["HttpRegistry", "Registry", "RegistryMatch"]


class RegistryMatch(Payload, frozen=True, kw_only=True):
    """``POST /v1/verify``."""

    match: bool


class _VerifyBody(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    id_number: str


class Registry(Protocol):
    """What the BFF needs from the population registry."""

    async def verify(self, name: str, id_number: str, *, purpose: str = "real-name-verification") -> RegistryMatch:
        """Whether the registry holds ``name`` for ``id_number``."""
        ...


class HttpRegistry:
    """:class:`Registry` over HTTP.

    Args:
        http: The department's transport (base URL, shared client, token minter).
    """

    __slots__ = ("_http",)

    def __init__(self, http: DepartmentHttp) -> None:
        self._http = http

    async def verify(self, name: str, id_number: str, *, purpose: str = "real-name-verification") -> RegistryMatch:
        """``POST /v1/verify``. The contract puts the ID number in the body too; the token's
        ``sub`` is the same ID number, so the registry can check the two agree."""
        return await self._http.post(
            "/v1/verify",
            _VerifyBody(name=name, id_number=id_number),
            RegistryMatch,
            subject=id_number,
            scope="registry:verify",
            purpose=purpose,
        )
