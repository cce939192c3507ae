"""The social-security department client: card and contributions (``aud: socsec``)."""

from __future__ import annotations

from typing import Annotated, Literal, Protocol

import msgspec

from services.departments.base import DepartmentHttp, Payload

__all__ = ["ContributionMonth", "Contributions", "HttpSocsecDepartment", "SocsecCard", "SocsecDepartment"]


class SocsecCard(Payload, frozen=True, kw_only=True):
    """``GET /v1/me/card``."""

    card_no: str
    status: Literal["active", "suspended"]
    issued_city: str
    medical_balance_cents: int


class ContributionMonth(Payload, frozen=True, kw_only=True):
    """One month of contributions."""

    month: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4}-[0-9]{2}$")]  # "2024-03"
    pension_cents: int
    medical_cents: int
    employer: str


class Contributions(Payload, frozen=True, kw_only=True):
    """``GET /v1/me/contributions?year=``."""

    months: list[ContributionMonth]


class SocsecDepartment(Protocol):
    """What the BFF needs from the social-security department."""

    async def card(self, id_number: str, *, purpose: str) -> SocsecCard:
        """The citizen's social-security card."""
        ...

    async def contributions(self, id_number: str, year: int, *, purpose: str) -> Contributions:
        """The citizen's monthly contributions in ``year``."""
        ...


class HttpSocsecDepartment:
    """:class:`SocsecDepartment` over HTTP.

    Args:
        http: The department's transport (base URL, shared client, token minter).
    """

    __slots__ = ("_http",)

    def __init__(self, http: DepartmentHttp) -> None:
        self._http = http

    async def card(self, id_number: str, *, purpose: str) -> SocsecCard:
        """``GET /v1/me/card`` for the citizen named in the token."""
        return await self._http.get("/v1/me/card", SocsecCard, subject=id_number, scope="socsec:card", purpose=purpose)

    async def contributions(self, id_number: str, year: int, *, purpose: str) -> Contributions:
        """``GET /v1/me/contributions?year=`` for the citizen named in the token."""
        return await self._http.get(
            "/v1/me/contributions",
            Contributions,
            subject=id_number,
            scope="socsec:contributions",
            purpose=purpose,
            params={"year": str(year)},
        )
