"""The transport department client: transit card and trips (``aud: transport``)."""

from __future__ import annotations

import datetime as dt
from typing import Literal, Protocol

from services.departments.base import DepartmentHttp, Payload

__all__ = ["HttpTransportDepartment", "TransportCard", "TransportDepartment", "Trip", "Trips"]


class TransportCard(Payload, frozen=True, kw_only=True):
    """``GET /v1/me/card``."""

    card_no: str
    balance_cents: int
    status: Literal["active", "blocked"]


class Trip(Payload, frozen=True, kw_only=True):
    """One ride."""

    at: dt.datetime
    line: str
    station: str
    fare_cents: int


class Trips(Payload, frozen=True, kw_only=True):
    """``GET /v1/me/trips``."""

    trips: list[Trip]


class TransportDepartment(Protocol):
    """What the BFF needs from the transport department."""

    async def card(self, id_number: str, *, purpose: str) -> TransportCard:
        """The citizen's transit card."""
        ...

    async def trips(self, id_number: str, since: dt.datetime, *, purpose: str) -> Trips:
        """The citizen's rides at or after ``since``."""
        ...


class HttpTransportDepartment:
    """:class:`TransportDepartment` over HTTP.

    Args:
        http: The department's transport (base URL, shared client, token minter).
    """

    __slots__ = ("_http",)

    def __init__(self, http: DepartmentHttp) -> None:
        self._http = http

    async def card(self, id_number: str, *, purpose: str) -> TransportCard:
        """``GET /v1/me/card`` for the citizen named in the token."""
        return await self._http.get(
            "/v1/me/card", TransportCard, subject=id_number, scope="transport:card", purpose=purpose
        )

    async def trips(self, id_number: str, since: dt.datetime, *, purpose: str) -> Trips:
        """``GET /v1/me/trips?since=`` (RFC 3339, UTC) for the citizen named in the token."""
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        stamp = since.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        return await self._http.get(
            "/v1/me/trips", Trips, subject=id_number, scope="transport:trips", purpose=purpose, params={"since": stamp}
        )
