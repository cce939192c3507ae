"""HTTP endpoints of the screens: the home screen, one screen per department, the data-access ledger.

Thin: each takes the principal and the query, calls :class:`~bff.screens.service.ScreenService`.
Department trouble is never an HTTP error here: the body's ``state`` says it (see the service).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from bff.screens.schemas import (
    ContributionsSection,
    DataAccessPage,
    HealthRecordsSection,
    HomeScreen,
    SocsecCardSection,
    TransportCardSection,
    TripsSection,
)
from bff.screens.service import ScreenService
from core.http import BEARER, error_responses
from identity import Principal

__all__ = ["ScreensController"]


class ScreensController(Controller):
    """The app's data screens for the signed-in citizen."""

    path = "/v1/me"
    tags = ["screens"]
    security = BEARER

    @get("/home", responses=error_responses(401))
    async def home(self, principal: NamedDependency[Principal], screens: NamedDependency[ScreenService]) -> HomeScreen:
        """Health, transport and social security side by side, within the screen deadline.

        Always 200 for a signed-in citizen: each section's ``state`` is ``ok``, ``stale`` (older
        data, with ``as_of``) or ``unavailable`` (with ``required_level`` when the account's
        identity level is too low for that department).
        """
        return await screens.home(principal)

    @get("/health/records", responses=error_responses(401))
    async def health_records(
        self, principal: NamedDependency[Principal], screens: NamedDependency[ScreenService]
    ) -> HealthRecordsSection:
        """Test results, vaccinations and risk status (identity level L3)."""
        return await screens.health_records(principal)

    @get("/transport/card", responses=error_responses(401))
    async def transport_card(
        self, principal: NamedDependency[Principal], screens: NamedDependency[ScreenService]
    ) -> TransportCardSection:
        """The transit card and its balance (identity level L3)."""
        return await screens.transport_card(principal)

    @get("/transport/trips", responses=error_responses(401))
    async def transport_trips(
        self,
        principal: NamedDependency[Principal],
        screens: NamedDependency[ScreenService],
        days: Annotated[int, QueryParameter(ge=1, le=366, description="How many days back")] = 30,
    ) -> TripsSection:
        """Rides of the last ``days`` days (identity level L3)."""
        return await screens.transport_trips(principal, days=days)

    @get("/socsec/card", responses=error_responses(401))
    async def socsec_card(
        self, principal: NamedDependency[Principal], screens: NamedDependency[ScreenService]
    ) -> SocsecCardSection:
        """The social-security card (identity level L3)."""
        return await screens.socsec_card(principal)

    @get("/socsec/contributions", responses=error_responses(401))
    async def socsec_contributions(
        self,
        principal: NamedDependency[Principal],
        screens: NamedDependency[ScreenService],
        year: Annotated[int | None, QueryParameter(ge=1950, le=2100, description="Default: this year")] = None,
    ) -> ContributionsSection:
        """Monthly pension and medical contributions of one year (identity level L3)."""
        return await screens.socsec_contributions(principal, year=year)

    @get("/data-access", responses=error_responses(400, 401))
    async def data_access(
        self,
        principal: NamedDependency[Principal],
        screens: NamedDependency[ScreenService],
        kind: Annotated[
            str | None,
            QueryParameter(
                max_length=200,
                description=(
                    "Comma-separated kinds: department_read, code_verification, claims_release, staff_action,"
                    " application_handling, message_delivery"
                ),
            ),
        ] = None,
        since: Annotated[dt.datetime | None, QueryParameter(description="RFC 3339, inclusive")] = None,
        until: Annotated[dt.datetime | None, QueryParameter(description="RFC 3339, exclusive")] = None,
        cursor: Annotated[str | None, QueryParameter(max_length=400, description="The last page's next_cursor")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
    ) -> DataAccessPage:
        """Every access to my data - department reads, partner verifications of my codes, claims
        released to partners, staff actions - with who, what, why and when; newest first,
        paginated (docs/data-access.md)."""
        return await screens.data_access(principal, kind=kind, since=since, until=until, cursor=cursor, limit=limit)
