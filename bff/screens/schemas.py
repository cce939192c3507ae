"""The screen payloads: one envelope per department section, and the data-access log.

Every section - on the home screen and on each single-department endpoint - is
``{state, data?, as_of?}`` (DESIGN, "Screens"), plus optional hints: ``required_level`` when
the citizen's identity level is too low for that department, ``retry_after_s`` when nothing
could be shown. Nested records reuse the department contracts' Structs (they are fixed too);
card numbers on the home screen are masked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Generic, Literal, TypeVar

from core.structs import Response
from services.departments import (
    ContributionMonth,
    HealthRisk,
    HealthTest,
    Trip,
    VaccinationDose,
)

__all__ = [
    "ContributionsData",
    "ContributionsSection",
    "DataAccessEntry",
    "DataAccessPage",
    "HealthRecordsData",
    "HealthRecordsSection",
    "HealthSummary",
    "HomeHealthSection",
    "HomeScreen",
    "HomeSections",
    "HomeSocsecSection",
    "HomeTransportSection",
    "Section",
    "SectionState",
    "SocsecCardData",
    "SocsecCardSection",
    "SocsecSummary",
    "TransportCardData",
    "TransportCardSection",
    "TransportSummary",
    "TripsData",
    "TripsSection",
]

T = TypeVar("T")

SectionState = Literal["ok", "stale", "unavailable"]


class Section(Response, Generic[T], frozen=True, kw_only=True, omit_defaults=True):
    """One department's part of a screen.

    Attributes:
        state: ``ok`` (current), ``stale`` (an older answer: the department is not answering
            now; ``as_of`` says how old), ``unavailable`` (nothing to show).
        data: The section's data, unless ``unavailable``.
        as_of: When the department gave this data.
        required_level: Set when the account's identity level is below what the department
            needs; raising it (real-name verification) makes the section available.
        retry_after_s: For ``unavailable``: seconds after which asking again may help.
    """

    state: SectionState
    data: T | None = None
    as_of: dt.datetime | None = None
    required_level: str | None = None
    retry_after_s: int | None = None


# home --------------------------------------------------------------------------------------


class HealthSummary(Response, frozen=True, kw_only=True):
    """The health tile: latest test and risk status."""

    latest_test: HealthTest | None
    close_contact: bool
    quarantine_until: dt.datetime | None
    risk_area_visits: int


class TransportSummary(Response, frozen=True, kw_only=True):
    """The transit tile."""

    card_no_masked: str
    balance_cents: int
    status: str


class SocsecSummary(Response, frozen=True, kw_only=True):
    """The social-security tile."""

    card_no_masked: str
    status: str
    issued_city: str
    medical_balance_cents: int


class HomeHealthSection(Section[HealthSummary], frozen=True, kw_only=True):
    """Health on the home screen."""


class HomeTransportSection(Section[TransportSummary], frozen=True, kw_only=True):
    """Transport on the home screen."""


class HomeSocsecSection(Section[SocsecSummary], frozen=True, kw_only=True):
    """Social security on the home screen."""


class HomeSections(Response, frozen=True, kw_only=True):
    """The three department sections of the home screen."""

    health: HomeHealthSection
    transport: HomeTransportSection
    socsec: HomeSocsecSection


class HomeScreen(Response, frozen=True, kw_only=True):
    """``GET /v1/me/home``."""

    sections: HomeSections
    codes: list[Any]


# single-department screens -------------------------------------------------------------------


class HealthRecordsData(Response, frozen=True, kw_only=True):
    """Tests, vaccinations and risk status."""

    tests: list[HealthTest]
    vaccinations: list[VaccinationDose]
    risk: HealthRisk


class HealthRecordsSection(Section[HealthRecordsData], frozen=True, kw_only=True):
    """``GET /v1/me/health/records``."""


class TransportCardData(Response, frozen=True, kw_only=True):
    """The transit card."""

    card_no: str
    balance_cents: int
    status: str


class TransportCardSection(Section[TransportCardData], frozen=True, kw_only=True):
    """``GET /v1/me/transport/card``."""


class TripsData(Response, frozen=True, kw_only=True):
    """Rides since ``since`` (midnight UTC, ``days`` ago), newest first as the department sends them."""

    since: dt.datetime
    trips: list[Trip]


class TripsSection(Section[TripsData], frozen=True, kw_only=True):
    """``GET /v1/me/transport/trips``."""


class SocsecCardData(Response, frozen=True, kw_only=True):
    """The social-security card."""

    card_no: str
    status: str
    issued_city: str
    medical_balance_cents: int


class SocsecCardSection(Section[SocsecCardData], frozen=True, kw_only=True):
    """``GET /v1/me/socsec/card``."""


class ContributionsData(Response, frozen=True, kw_only=True):
    """Monthly contributions of one year."""

    year: int
    months: list[ContributionMonth]


class ContributionsSection(Section[ContributionsData], frozen=True, kw_only=True):
    """``GET /v1/me/socsec/contributions``."""


# data access -------------------------------------------------------------------------------


class DataAccessEntry(Response, frozen=True, kw_only=True, omit_defaults=True):
    """One read of the citizen's department data.

    Attributes:
        at: When.
        department: Whose system holds the data (``health``, ``transport``, ``socsec``).
        resource: What was read (``tests``, ``card``, ...).
        purpose: Why (the purpose sent to the department, e.g. ``home-screen``).
        outcome: ``success`` (data was shown) or ``failure`` (the department did not answer).
        source: ``department`` (asked just now), ``cache`` (OneCity's recent copy) or ``none``.
        reader: Who read it: ``onecity`` (the app, for you).
    """

    at: dt.datetime
    department: str
    resource: str
    purpose: str
    outcome: str
    source: str | None = None
    reader: str


class DataAccessPage(Response, frozen=True, kw_only=True, omit_defaults=True):
    """``GET /v1/me/data-access``: newest first; pass ``next_cursor`` as ``cursor`` for more."""

    items: list[DataAccessEntry]
    next_cursor: str | None = None
