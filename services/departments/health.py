"""The health department client: test results, vaccinations and risk status (``aud: health``)."""

from __future__ import annotations

import datetime as dt
from typing import Literal, Protocol

from services.departments.base import DepartmentHttp, Payload

__all__ = [
    "HealthDepartment",
    "HealthRisk",
    "HealthTest",
    "HealthTests",
    "HttpHealthDepartment",
    "RiskAreaVisit",
    "VaccinationDose",
    "Vaccinations",
]


class HealthTest(Payload, frozen=True, kw_only=True):
    """One nucleic-acid test."""

    id: str
    sampled_at: dt.datetime
    kind: str
    result: Literal["negative", "positive", "pending"]
    lab: str


class HealthTests(Payload, frozen=True, kw_only=True):
    """``GET /v1/me/tests``."""

    tests: list[HealthTest]


class VaccinationDose(Payload, frozen=True, kw_only=True):
    """One vaccine dose."""

    date: dt.date
    vaccine: str
    dose: int


class Vaccinations(Payload, frozen=True, kw_only=True):
    """``GET /v1/me/vaccinations``."""

    doses: list[VaccinationDose]


class RiskAreaVisit(Payload, frozen=True, kw_only=True):
    """A recorded stay in a designated risk area."""

    area: str
    at: dt.datetime


class HealthRisk(Payload, frozen=True, kw_only=True):
    """``GET /v1/me/risk``."""

    close_contact: bool
    quarantine_until: dt.datetime | None
    risk_area_visits: list[RiskAreaVisit]


class HealthDepartment(Protocol):
    """What the BFF needs from the health department."""

    async def tests(self, id_number: str, *, purpose: str) -> HealthTests:
        """The citizen's test results."""
        ...

    async def vaccinations(self, id_number: str, *, purpose: str) -> Vaccinations:
        """The citizen's vaccine doses."""
        ...

    async def risk(self, id_number: str, *, purpose: str) -> HealthRisk:
        """The citizen's contact and risk-area status."""
        ...


class HttpHealthDepartment:
    """:class:`HealthDepartment` over HTTP.

    Args:
        http: The department's transport (base URL, shared client, token minter).
    """

    __slots__ = ("_http",)

    def __init__(self, http: DepartmentHttp) -> None:
        self._http = http

    async def tests(self, id_number: str, *, purpose: str) -> HealthTests:
        """``GET /v1/me/tests`` for the citizen named in the token."""
        return await self._http.get(
            "/v1/me/tests", HealthTests, subject=id_number, scope="health:tests", purpose=purpose
        )

    async def vaccinations(self, id_number: str, *, purpose: str) -> Vaccinations:
        """``GET /v1/me/vaccinations`` for the citizen named in the token."""
        return await self._http.get(
            "/v1/me/vaccinations", Vaccinations, subject=id_number, scope="health:vaccinations", purpose=purpose
        )

    async def risk(self, id_number: str, *, purpose: str) -> HealthRisk:
        """``GET /v1/me/risk`` for the citizen named in the token."""
        return await self._http.get("/v1/me/risk", HealthRisk, subject=id_number, scope="health:risk", purpose=purpose)
