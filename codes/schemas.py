"""Request and response bodies of the codes endpoints (msgspec Structs)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from codes.rules import RuleSet
from core.structs import FrozenStruct, Request, ShortStr, text, whole

__all__ = [
    "RIDE_LOG_MAX_BYTES",
    "RIDE_LOG_MAX_LINES",
    "CheckinList",
    "CheckinRecord",
    "CheckinRequest",
    "CheckinResult",
    "CodeStatus",
    "CodesOverview",
    "DeviceCertificateResponse",
    "DeviceChallenge",
    "DeviceRegistration",
    "HealthOverrideRequest",
    "HealthOverrideView",
    "Holder",
    "HolderCodeType",
    "ImageFormat",
    "IssuedCode",
    "ReplayScan",
    "ReplayView",
    "RideLogResult",
    "RideLogUpload",
    "RideRejection",
    "RideScan",
    "RuleSetList",
    "RuleSetVersion",
    "VenueCreate",
    "VenueRef",
    "VenueView",
    "VerifyRequest",
    "VerifyResult",
]

#: A code payload as scanned: ``OC1:``/``OC1R:`` text, bounded well above the 320-character
#: budget so an oversized payload is answered ``malformed`` rather than a schema error.
ScannedPayload = Annotated[str, text(1024, nfc=False)]
RegionCode = Annotated[
    str,
    msgspec.Meta(pattern=whole(r"[0-9]{6}|[0-9]{9}|[0-9]{12}"), description="Division code: district or finer"),
]
VenueId = Annotated[str, msgspec.Meta(pattern=whole(r"[A-Za-z0-9_-]{11}"))]
B64Url = Annotated[str, msgspec.Meta(pattern=whole(r"[A-Za-z0-9_-]+"), max_length=256)]
ImageFormat = Literal["png", "svg"]


class HolderCodeType(enum.StrEnum):
    """A code a citizen shows, by its API name."""

    HEALTH = "health"
    TRANSIT = "transit"
    SOCSEC = "socsec"
    CITIZEN = "citizen"


# --- citizen -----------------------------------------------------------------------------------


class IssuedCode(FrozenStruct, frozen=True):
    """A freshly signed code.

    Attributes:
        payload: The QR text (``OC1:...``, at most 320 characters).
        status: The ``st`` it carries.
        refresh_after: When the app should fetch the next code (before ``expires_at``).
        reasons: Why the status is what it is (health: rule reasons, ``staff_override``,
            ``health_data_unavailable``...).
        rule_version: Health codes: the rules version (``rv``).
        offline_display_until: Until when the app may keep showing this code when it cannot
            reach OneCity (peak load, no network): the last moment a verifier, online or
            offline, still accepts it (``expires_at`` plus the verifiers' clock tolerance).
            Afterwards the app shows the status without a scannable code.
    """

    type: HolderCodeType
    payload: str
    status: str
    issued_at: datetime
    expires_at: datetime
    refresh_after: datetime
    reasons: tuple[str, ...] = ()
    rule_version: int | None = None
    offline_display_until: datetime | None = None


class CodeStatus(FrozenStruct, frozen=True):
    """One code type in ``GET /v1/me/codes``.

    Attributes:
        available: The citizen's level allows this type.
        required_level: The level the type needs (step up to it when not ``available``).
        status: The current status, ``None`` when unknown (department down, nothing known).
        source: ``department`` (just decided from department data), ``last_known`` (the
            department did not answer; the stored decision of ``as_of`` stands in),
            ``fallback`` (nothing fresh is known: the defined fallback status),
            ``unavailable`` (no status can be given now) or ``level`` (not available).
        as_of: When the status was decided.
        overridden: A staff override decided the health status.
    """

    type: HolderCodeType
    available: bool
    required_level: str
    status: str | None = None
    reasons: tuple[str, ...] = ()
    rule_version: int | None = None
    source: str = "department"
    as_of: datetime | None = None
    overridden: bool = False


class CodesOverview(FrozenStruct, frozen=True):
    """``GET /v1/me/codes``: every holder code type, what the citizen may show and why."""

    codes: list[CodeStatus]


class CheckinRequest(Request):
    """The citizen scanned a venue code."""

    payload: ScannedPayload


class VenueRef(FrozenStruct, frozen=True):
    """A venue as a citizen sees it."""

    id: str
    name: str
    address: str


class CheckinResult(FrozenStruct, frozen=True):
    """A recorded check-in (``repeated``: the one already recorded at this venue in the last
    10 minutes, answered with 200 instead of 201)."""

    venue: VenueRef
    checked_in_at: datetime
    repeated: bool = False


# --- devices for offline ride codes ------------------------------------------------------------


class DeviceChallenge(FrozenStruct, frozen=True):
    """A one-time nonce to sign with the device key (proof of possession)."""

    nonce: str
    expires_in: int
    message_prefix: str = "OC1R/device-pop/v1\\0"


class DeviceRegistration(Request):
    """Register (or renew the certificate of) a device key.

    ``signature`` is Ed25519 by the device key over ``"OC1R/device-pop/v1\\0" ‖ nonce (ASCII)
    ‖ public key (32 raw bytes)``, all base64url without padding.
    """

    public_key: B64Url
    nonce: Annotated[str, msgspec.Meta(pattern=whole(r"[A-Za-z0-9_-]{16,64}"))]
    signature: B64Url


class DeviceCertificateResponse(FrozenStruct, frozen=True):
    """A device certificate for offline ride codes."""

    device_id: str
    certificate: str  # base64url of the certificate bytes
    not_before: datetime
    not_after: datetime


# --- partners: verification and ride logs ------------------------------------------------------


class VerifyRequest(Request):
    """``POST /v1/codes/verify``.

    Attributes:
        payload: The scanned text.
        consume: One-time use: the first verification with ``consume`` wins, every later one
            (also with ``consume``) answers ``replayed``.
        venue_id: Where the scan happened (kept in the scan log).
        types: Code types the scanner accepts (API names); any when omitted. Another type
            answers ``wrong_type``.
    """

    payload: ScannedPayload
    consume: bool = False
    venue_id: Annotated[str, text(64, nfc=False)] | None = None
    types: (
        Annotated[list[Literal["health", "transit", "socsec", "citizen", "venue"]], msgspec.Meta(max_length=5)] | None
    ) = None


class Holder(FrozenStruct, frozen=True):
    """Who holds the code, as much as a partner may know: a masked name (``张*``), or the
    venue's name for venue codes."""

    name: str | None


class VerifyResult(FrozenStruct, frozen=True):
    """The answer of ``POST /v1/codes/verify``; an invalid code is a 200 with ``valid: false``."""

    valid: bool
    checked_at: datetime
    reason: str | None = None
    code_type: str | None = None
    status: str | None = None
    holder: Holder | None = None


class RideScan(Request):
    """One accepted ride code from a validator's log.

    ``code`` is not free text but an opaque payload that the verifier checks byte for byte (in
    a worker process, :mod:`codes.ride_check`): a control character or any other wrong byte
    makes that line ``malformed`` without failing the rest of the upload, and the text itself is
    never stored, logged or echoed. It is therefore bounded only by length here: the control-
    character pattern of :func:`core.structs.text` cost ~4 µs per line on the event loop,
    ~13 ms for a 1 MiB log.
    """

    code: Annotated[str, msgspec.Meta(min_length=1, max_length=400)]
    scanned_at: Annotated[float, msgspec.Meta(ge=0, le=2**32, description="Unix seconds")]


#: Most lines in one ride-log upload: a 1 MiB log of real ride codes is about 2,800 lines.
RIDE_LOG_MAX_LINES = 5000
#: Largest ride-log body (the route's own limit, above ``ONECITY_MAX_BODY_BYTES``): 5,000 real
#: lines are about 1.8 MiB.
RIDE_LOG_MAX_BYTES = 2 * 1024 * 1024


class RideLogUpload(Request):
    """``POST /v1/codes/ride-logs``: a validator's scans since its last upload."""

    validator_id: ShortStr
    rides: Annotated[list[RideScan], msgspec.Meta(min_length=1, max_length=RIDE_LOG_MAX_LINES)]


class RideRejection(FrozenStruct, frozen=True):
    """A log line that did not verify (not stored)."""

    index: int
    reason: str


class ReplayScan(FrozenStruct, frozen=True):
    """One scan of a replayed ride code."""

    validator_id: str
    scanned_at: datetime
    partner_id: str


class ReplayView(FrozenStruct, frozen=True):
    """A ride code (device, counter) scanned more than once, across every upload so far."""

    device_id: str
    counter: int
    scans: list[ReplayScan]
    #: Scanned by validators of two or more partners: the device is flagged (no more
    #: certificates). A replay within one partner's validators is reported, not flagged.
    cross_partner: bool = False


class RideLogResult(FrozenStruct, frozen=True):
    """What an upload did."""

    accepted: int
    duplicates: int
    rejected: list[RideRejection]
    replays: list[ReplayView]


# --- staff -------------------------------------------------------------------------------------


class HealthOverrideRequest(Request):
    """``PUT /v1/admin/citizens/{account_id}/health-status``."""

    status: Literal["G", "Y", "R"]
    reason: Annotated[str, text(500, min_length=3)]
    until: datetime


class HealthOverrideView(FrozenStruct, frozen=True):
    """A staff override in force."""

    account_id: str
    status: str
    reason: str
    until: datetime
    set_by: str
    set_at: datetime


class RuleSetVersion(FrozenStruct, frozen=True):
    """A published health rule version."""

    version: int
    published_by: str
    published_at: datetime
    active: bool
    document: RuleSet | None = None


class RuleSetList(FrozenStruct, frozen=True):
    """Every published health rule version, newest first."""

    versions: list[RuleSetVersion]


class VenueCreate(Request):
    """Register a venue."""

    name: Annotated[str, text(100)]
    address: Annotated[str, text(200)]
    region: RegionCode


class VenueView(FrozenStruct, frozen=True):
    """A venue and its printed code."""

    id: str
    name: str
    address: str
    region: str
    status: str
    payload: str
    code_expires_at: datetime
    created_at: datetime


class CheckinRecord(FrozenStruct, frozen=True):
    """One pseudonymous check-in."""

    pseudonym: str
    checked_in_at: datetime


class CheckinList(FrozenStruct, frozen=True):
    """An exposure query's answer: who (pseudonymously) checked in at a venue in a window."""

    venue_id: str
    start: datetime
    end: datetime
    checkins: list[CheckinRecord]
    truncated: bool = False
    #: Pass as ``cursor`` to get the next page (same window); ``null`` on the last page.
    next_cursor: str | None = None
