"""The screen payloads: one envelope per department section, and the data-access log.

Every section - on the home screen and on each single-department endpoint - is
``{state, data?, as_of?}`` (DESIGN, "Screens"), plus optional hints: ``required_level`` when
the citizen's identity level is too low for that department, ``retry_after_s`` when nothing
could be shown. Nested records reuse the department contracts' Structs (they are fixed too);
card numbers on the home screen are masked.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec

from core.structs import FrozenStruct
from services.departments import (
    ContributionMonth,
    HealthRisk,
    HealthTest,
    Trip,
    VaccinationDose,
)

__all__ = [
    "Accessor",
    "ClaimsReleaseEntry",
    "CodeVerificationEntry",
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
    "LedgerEntry",
    "LedgerItem",
    "LedgerKind",
    "MessageDeliveryEntry",
    "Section",
    "SectionState",
    "SocsecCardData",
    "SocsecCardSection",
    "SocsecSummary",
    "StaffActionEntry",
    "TransportCardData",
    "TransportCardSection",
    "TransportSummary",
    "TripsData",
    "TripsSection",
]

T = TypeVar("T")

SectionState = Literal["ok", "stale", "unavailable"]


class Section(FrozenStruct, Generic[T], frozen=True, kw_only=True, omit_defaults=True):
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


class HealthSummary(FrozenStruct, frozen=True, kw_only=True):
    """The health tile: latest test and risk status."""

    latest_test: HealthTest | None
    close_contact: bool
    quarantine_until: dt.datetime | None
    risk_area_visits: int


class TransportSummary(FrozenStruct, frozen=True, kw_only=True):
    """The transit tile."""

    card_no_masked: str
    balance_cents: int
    status: str


class SocsecSummary(FrozenStruct, frozen=True, kw_only=True):
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


class HomeSections(FrozenStruct, frozen=True, kw_only=True):
    """The three department sections of the home screen."""

    health: HomeHealthSection
    transport: HomeTransportSection
    socsec: HomeSocsecSection


CodesState = Literal["ready", "late", "unavailable"]


class HomeScreen(FrozenStruct, frozen=True, kw_only=True):
    """``GET /v1/me/home``.

    Attributes:
        sections: The three department sections.
        codes: The citizen's code types with their statuses (the codes domain's summary).
        codes_state: Why ``codes`` is what it is: ``ready`` (the summary answered; an empty
            list then really means no codes), ``late`` (it missed the screen deadline: ask
            again shortly), ``unavailable`` (it failed). ``codes`` is ``[]`` unless ``ready``.
    """

    sections: HomeSections
    codes: list[Any]
    codes_state: Annotated[
        CodesState,
        msgspec.Meta(
            description="ready: `codes` is the answer (an empty list means no codes); late: the codes "
            "summary missed the screen deadline, ask again shortly; unavailable: it failed. `codes` is "
            "empty unless ready."
        ),
    ] = "ready"


# single-department screens -------------------------------------------------------------------


class HealthRecordsData(FrozenStruct, frozen=True, kw_only=True):
    """Tests, vaccinations and risk status."""

    tests: list[HealthTest]
    vaccinations: list[VaccinationDose]
    risk: HealthRisk


class HealthRecordsSection(Section[HealthRecordsData], frozen=True, kw_only=True):
    """``GET /v1/me/health/records``."""


class TransportCardData(FrozenStruct, frozen=True, kw_only=True):
    """The transit card."""

    card_no: str
    balance_cents: int
    status: str


class TransportCardSection(Section[TransportCardData], frozen=True, kw_only=True):
    """``GET /v1/me/transport/card``."""


class TripsData(FrozenStruct, frozen=True, kw_only=True):
    """Rides since ``since`` (midnight UTC, ``days`` ago), newest first as the department sends them."""

    since: dt.datetime
    trips: list[Trip]


class TripsSection(Section[TripsData], frozen=True, kw_only=True):
    """``GET /v1/me/transport/trips``."""


class SocsecCardData(FrozenStruct, frozen=True, kw_only=True):
    """The social-security card."""

    card_no: str
    status: str
    issued_city: str
    medical_balance_cents: int


class SocsecCardSection(Section[SocsecCardData], frozen=True, kw_only=True):
    """``GET /v1/me/socsec/card``."""


class ContributionsData(FrozenStruct, frozen=True, kw_only=True):
    """Monthly contributions of one year."""

    year: int
    months: list[ContributionMonth]


class ContributionsSection(Section[ContributionsData], frozen=True, kw_only=True):
    """``GET /v1/me/socsec/contributions``."""


# data access (the citizen's ledger) ------------------------------------------------------
# docs/data-access.md. Every entry says when (`at`), who (`who`), why (`purpose`) and, by its
# `kind`, what. A tagged union: the kinds have different shapes and the app switches on `kind`.

LedgerKind = Literal[
    "department_read", "code_verification", "claims_release", "staff_action", "application_handling", "message_delivery"
]


class Accessor(FrozenStruct, frozen=True, kw_only=True, omit_defaults=True):
    """Who accessed the data. Never another person's name: staff appear by id, roles, region.

    Attributes:
        type: ``onecity`` (the app, for you), ``partner`` (a registered client), ``staff``,
            ``department`` (a city department's case system).
        id: The partner's client id, the staff member's id or the department's name; absent
            for ``onecity``.
        name: The partner's registered display name (partners only).
        roles: The staff member's roles when they acted (staff only).
        region: The staff member's region when they acted (staff only).
    """

    type: Literal["onecity", "partner", "staff", "department"]
    id: str | None = None
    name: str | None = None
    roles: list[str] | None = None
    region: str | None = None


class LedgerEntry(FrozenStruct, frozen=True, kw_only=True, omit_defaults=True, tag_field="kind"):
    """Fields every ledger entry has.

    Attributes:
        at: When.
        who: Who accessed the data.
        purpose: Why, as a slug (``home-screen``, ``code-verification``, ``sign-in``, ...).
    """

    at: dt.datetime
    who: Accessor
    purpose: str


class DataAccessEntry(LedgerEntry, frozen=True, kw_only=True, omit_defaults=True, tag="department_read"):
    """``department_read``: a read of the citizen's department data.

    Attributes:
        department: Whose system holds the data (``health``, ``transport``, ``socsec``).
        resource: What was read (``tests``, ``card``, ...); empty when not recorded.
        outcome: ``success`` (data was shown) or ``failure`` (the department did not answer).
        source: ``department`` (asked just now), ``cache`` (OneCity's recent copy), ``none``, or
            ``shared`` (read in the same request for another purpose, used again without a
            second call).
        reader: Who read it: ``onecity`` (the app, for you); ``who`` says the same, this stays
            for app versions that predate ``who``.
    """

    department: str
    resource: str
    outcome: str
    source: str | None = None
    reader: str


class CodeVerificationEntry(LedgerEntry, frozen=True, kw_only=True, omit_defaults=True, tag="code_verification"):
    """``code_verification``: a partner verified one of the citizen's codes.

    Attributes:
        code_type: ``health``, ``transit``, ``socsec`` or ``citizen``.
        venue_id: Where, when the partner said so.
        valid: Whether the code was accepted.
        result: ``valid`` or the reason slug the partner got (``expired``, ``replayed``, ...).
        consumed: The partner used the code up (one-time use, e.g. a gate).
    """

    code_type: str
    venue_id: str | None = None
    valid: bool
    result: str
    consumed: bool = False


class ClaimsReleaseEntry(LedgerEntry, frozen=True, kw_only=True, omit_defaults=True, tag="claims_release"):
    """``claims_release``: a partner received claims about the citizen (never their values here).

    Attributes:
        via: ``id_token`` (at sign-in: the code exchange) or ``userinfo``.
        claims: The names of the personal claims released (empty: only the partner-specific
            pseudonymous ``sub``).
    """

    via: Literal["id_token", "userinfo"]
    claims: list[str]


class StaffActionEntry(LedgerEntry, frozen=True, kw_only=True, omit_defaults=True, tag="staff_action"):
    """``staff_action``: city staff acted on the citizen or their data.

    Attributes:
        action: ``health_override_set``, ``health_override_lift`` or ``exposure_query``; more
            will come (application handling): an app shows unknown actions generically.
        status: The health status set (``health_override_set``).
        until: Until when the override holds (``health_override_set``).
        venue_id: The venue whose check-ins were queried (``exposure_query``).
        window_start: Start of the queried window (``exposure_query``).
        window_end: End of the queried window (``exposure_query``).
        checkins: How many of the citizen's check-ins the query returned (``exposure_query``).
        held_until: The query was hidden from this ledger until then (``exposure_query``).
    """

    action: str
    status: str | None = None
    until: dt.datetime | None = None
    venue_id: str | None = None
    window_start: dt.datetime | None = None
    window_end: dt.datetime | None = None
    checkins: int | None = None
    held_until: dt.datetime | None = None


class ApplicationHandlingEntry(LedgerEntry, frozen=True, kw_only=True, omit_defaults=True, tag="application_handling"):
    """``application_handling``: one of the citizen's applications (办件) was handled.

    Attributes:
        action: ``delivered_to_department`` (the department received the form),
            ``resubmitted_to_department`` (a corrected form), ``status_reported`` (the
            department reported progress) or ``read_in_staff_queue`` (staff listed it).
        application_number: The application's number (as the citizen's own list shows it).
        matter: The matter's code, when recorded.
        status: The status the department reported (``status_reported``).
    """

    action: str
    application_number: str | None = None
    matter: str | None = None
    status: str | None = None


class MessageDeliveryEntry(LedgerEntry, frozen=True, kw_only=True, omit_defaults=True, tag="message_delivery"):
    """``message_delivery``: OneCity handed the citizen's phone number to the SMS gateway to
    deliver a message (the ``security`` SMS fallback; ``who`` is the ``sms`` department).

    Attributes:
        channel: ``sms``.
        category: The message's category (``security``).
        message_id: The inbox message that was delivered (as ``GET /v1/me/messages`` lists it).
        released: What the gateway received: ``phone_number`` and the message's ``title``.
    """

    channel: str
    category: str
    message_id: str | None = None
    released: list[str]


LedgerItem = (
    DataAccessEntry
    | CodeVerificationEntry
    | ClaimsReleaseEntry
    | StaffActionEntry
    | ApplicationHandlingEntry
    | MessageDeliveryEntry
)


class DataAccessPage(FrozenStruct, frozen=True, kw_only=True, omit_defaults=True):
    """``GET /v1/me/data-access``: newest first; pass ``next_cursor`` as ``cursor`` for more."""

    items: list[LedgerItem]
    next_cursor: str | None = None
