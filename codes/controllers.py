"""HTTP endpoints of the codes domain: thin, each decodes a Struct and calls the one job service
it takes as a dependency (:mod:`codes.dependencies`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from codes.dependencies import (
    provide_online_verification,
    provide_staff,
    provide_venue_partner,
    provide_verify_partner,
)
from codes.issuing import Issuer
from codes.overrides import Overrides
from codes.ride_devices import Rides
from codes.rule_versions import RuleBook
from codes.rules import RuleSet
from codes.schemas import (
    RIDE_LOG_MAX_BYTES,
    CheckinList,
    CheckinRequest,
    CheckinResult,
    CodesOverview,
    DeviceCertificateResponse,
    DeviceChallenge,
    DeviceRegistration,
    HealthOverrideRequest,
    HealthOverrideView,
    HolderCodeType,
    ImageFormat,
    IssuedCode,
    RideLogResult,
    RideLogUpload,
    RuleSetList,
    RuleSetVersion,
    VenueCreate,
    VenueView,
    VerifyRequest,
    VerifyResult,
)
from codes.service import CodesService
from codes.venues import Venues
from core.http import BEARER, ImageOperation, error_responses
from core.structs import FrozenStruct, whole
from identity.dependencies import client_ip
from identity.partners import PartnerPrincipal
from identity.principal import Principal
from identity.staff.guards import staff_roles
from identity.staff.permissions import Role, StaffPrincipal

__all__ = [
    "CodeKeysJwks",
    "CodesAdminController",
    "CodesPartnerController",
    "MyCodesController",
    "PartnerVenuesController",
]

_MEDIA = {"png": "image/png", "svg": "image/svg+xml"}
FormatQuery = Annotated[ImageFormat, QueryParameter(name="format", description="png or svg")]
VenuePath = Annotated[str, PathParameter(pattern=whole(r"[A-Za-z0-9_-]{11}"))]


class CodeKeysJwks(FrozenStruct, frozen=True):
    """A JSON Web Key Set (RFC 7517) of the code-signing keys."""

    keys: list[dict[str, str]]


def _image(content: bytes, fmt: str, *, cache: str) -> Response[bytes]:
    return Response(content=content, media_type=_MEDIA[fmt], headers={"Cache-Control": cache})


class MyCodesController(Controller):
    """The signed-in citizen's codes, check-ins and ride-code devices."""

    path = "/v1/me"
    tags = ["codes"]
    security = BEARER

    @get("/codes", responses=error_responses(401))
    async def overview(
        self, principal: NamedDependency[Principal], code_issuing: NamedDependency[Issuer]
    ) -> CodesOverview:
        """Every code type: whether the citizen may show it (level), the current status and,
        for health, the reasons and the rule version."""
        return await code_issuing.overview(principal)

    @post("/codes/{code_type:str}", status_code=HTTP_200_OK, responses=error_responses(401, 429))
    async def issue(
        self, code_type: HolderCodeType, principal: NamedDependency[Principal], code_issuing: NamedDependency[Issuer]
    ) -> IssuedCode:
        """A new signed code (``OC1:...``). Fetch the next one at ``refresh_after``."""
        return await code_issuing.issue(principal, code_type)

    @delete("/codes/{code_type:str}", status_code=HTTP_204_NO_CONTENT, responses=error_responses(401))
    async def revoke(
        self, code_type: HolderCodeType, principal: NamedDependency[Principal], code_issuing: NamedDependency[Issuer]
    ) -> None:
        """Revoke every unexpired code of this type (a leaked screenshot, a lost phone)."""
        await code_issuing.revoke_all(principal, code_type)

    @get(
        "/codes/{code_type:str}/image",
        responses=error_responses(401, 429),
        media_type="image/png",
        operation_class=ImageOperation,
        cache_control=None,
    )
    async def image(
        self,
        code_type: HolderCodeType,
        principal: NamedDependency[Principal],
        code_issuing: NamedDependency[Issuer],
        image_format: FormatQuery = "png",
    ) -> Response[bytes]:
        """The current code as a QR image (error correction M), PNG or SVG."""
        content = await code_issuing.image(principal, code_type, image_format)
        return _image(content, image_format, cache="no-store")

    @post("/checkins", status_code=HTTP_201_CREATED, responses=error_responses(401, 422, 429))
    async def checkin(
        self,
        data: JSONBody[CheckinRequest],
        principal: NamedDependency[Principal],
        venues: NamedDependency[Venues],
    ) -> Response[CheckinResult]:
        """Check in at a venue by its scanned venue code: 201, or 200 with the check-in already
        recorded there in the last 10 minutes (``repeated``)."""
        result = await venues.checkin(principal, data.payload)
        return Response(result, status_code=HTTP_200_OK if result.repeated else HTTP_201_CREATED)

    @post("/ride-devices/challenge", status_code=HTTP_200_OK, responses=error_responses(401))
    async def device_challenge(
        self, principal: NamedDependency[Principal], ride_devices: NamedDependency[Rides]
    ) -> DeviceChallenge:
        """A nonce for the device key's proof of possession (valid 5 minutes, once)."""
        return await ride_devices.challenge(principal)

    @post("/ride-devices", status_code=HTTP_200_OK, responses=error_responses(401, 403, 409, 422))
    async def device_certificate(
        self,
        data: JSONBody[DeviceRegistration],
        principal: NamedDependency[Principal],
        ride_devices: NamedDependency[Rides],
    ) -> DeviceCertificateResponse:
        """Register a device key (or renew its certificate) for offline ride codes."""
        return await ride_devices.certify(principal, data)

    @delete("/ride-devices/{device_id:str}", status_code=HTTP_204_NO_CONTENT, responses=error_responses(401, 404))
    async def device_revoke(
        self,
        device_id: Annotated[str, PathParameter(pattern=whole(r"[A-Za-z0-9_-]{16}"))],
        principal: NamedDependency[Principal],
        ride_devices: NamedDependency[Rides],
    ) -> None:
        """Retire a device key: it gets no certificate again."""
        await ride_devices.revoke(principal, device_id)


class CodesPartnerController(Controller):
    """Partners: online verification, the code keys, ride-log uploads."""

    path = "/v1/codes"
    tags = ["codes"]

    @post(
        "/verify",
        status_code=HTTP_200_OK,
        security=BEARER,
        dependencies={"partner": provide_verify_partner},
        responses=error_responses(401, 403, 429),
    )
    async def verify(
        self, data: JSONBody[VerifyRequest], partner: NamedDependency[PartnerPrincipal], state: State
    ) -> VerifyResult:
        """Verify a scanned code (scope ``codes:verify``). An invalid code is a 200 with
        ``valid: false`` and a ``reason``; ``consume: true`` makes it one-time."""
        # The one exception to taking the service as a dependency (see codes.dependencies): with
        # the partner as its only dependency Litestar resolves it inline instead of in a task
        # group, a measurable share of this hot path's CPU time.
        return await provide_online_verification(state).verify(partner.client_id, data)

    @get("/keys", cache_control=None, media_type="application/jwk-set+json")
    async def keys(self, codes: NamedDependency[CodesService]) -> Response[CodeKeysJwks]:
        """JWKS of the code-signing public keys for offline verifiers (cache it; a retired key
        stays listed until what it signed has expired, a new one is listed before it signs)."""
        return Response(
            CodeKeysJwks(keys=codes.public_jwks()["keys"]),
            headers={"Cache-Control": f"public, max-age={codes.settings.keys_max_age_s}"},
            media_type="application/jwk-set+json",
        )

    @post(
        "/ride-logs",
        status_code=HTTP_200_OK,
        security=BEARER,
        dependencies={"partner": provide_verify_partner},
        responses=error_responses(401, 403, 413),
        request_max_body_size=RIDE_LOG_MAX_BYTES,
    )
    async def ride_logs(
        self,
        data: JSONBody[RideLogUpload],
        partner: NamedDependency[PartnerPrincipal],
        ride_devices: NamedDependency[Rides],
    ) -> RideLogResult:
        """Upload a validator's accepted offline ride codes; answers the replays found."""
        return await ride_devices.upload(partner.client_id, data)


class CodesAdminController(Controller):
    """Staff: health overrides, health rules, venues and exposure queries."""

    path = "/v1/admin"
    tags = ["codes-admin"]
    security = BEARER
    dependencies = {"staff": provide_staff}

    @put(
        "/citizens/{account_id:uuid}/health-status",
        status_code=HTTP_200_OK,
        responses=error_responses(401, 403, 404, 422),
    )
    async def set_override(
        self,
        account_id: UUID,
        data: JSONBody[HealthOverrideRequest],
        staff: NamedDependency[StaffPrincipal],
        health_overrides: NamedDependency[Overrides],
        request: Request[Any, Any, Any],
    ) -> HealthOverrideView:
        """Override a citizen's health status until ``until`` (health officers and admins whose
        region covers the citizen; audited; effective on the next code)."""
        return await health_overrides.set(staff, str(account_id), data, client_ip=client_ip(request))

    @get("/citizens/{account_id:uuid}/health-status", responses=error_responses(401, 403, 404))
    async def get_override(
        self, account_id: UUID, staff: NamedDependency[StaffPrincipal], health_overrides: NamedDependency[Overrides]
    ) -> HealthOverrideView:
        """The citizen's override."""
        return await health_overrides.get(staff, str(account_id))

    @delete(
        "/citizens/{account_id:uuid}/health-status",
        status_code=HTTP_204_NO_CONTENT,
        responses=error_responses(401, 403, 404),
    )
    async def lift_override(
        self,
        account_id: UUID,
        staff: NamedDependency[StaffPrincipal],
        health_overrides: NamedDependency[Overrides],
        request: Request[Any, Any, Any],
    ) -> None:
        """Lift the citizen's override before it expires (audited)."""
        await health_overrides.lift(staff, str(account_id), client_ip=client_ip(request))

    @post(
        "/health-rules",
        status_code=HTTP_201_CREATED,
        guards=[staff_roles(Role.SYSTEM_ADMIN)],
        responses=error_responses(401, 403, 409, 422),
    )
    async def publish_rules(
        self,
        data: JSONBody[RuleSet],
        staff: NamedDependency[StaffPrincipal],
        rule_versions: NamedDependency[RuleBook],
    ) -> RuleSetVersion:
        """Publish a new health rule version (administrators). Its ``version`` must be higher
        than the active one; it applies to every code decided from now on."""
        return await rule_versions.publish(data, published_by=f"staff:{staff.staff_id}")

    @get(
        "/health-rules",
        guards=[staff_roles(Role.SYSTEM_ADMIN, Role.HEALTH_OFFICER, Role.AUDITOR)],
        responses=error_responses(401, 403),
    )
    async def list_rules(
        self, staff: NamedDependency[StaffPrincipal], rule_versions: NamedDependency[RuleBook]
    ) -> RuleSetList:
        """Every published version, newest (active) first."""
        return await rule_versions.versions()

    @get(
        "/health-rules/{version:int}",
        guards=[staff_roles(Role.SYSTEM_ADMIN, Role.HEALTH_OFFICER, Role.AUDITOR)],
        responses=error_responses(401, 403, 404),
    )
    async def get_rules(
        self,
        version: Annotated[int, PathParameter(ge=1, le=2**31 - 1)],
        staff: NamedDependency[StaffPrincipal],
        rule_versions: NamedDependency[RuleBook],
    ) -> RuleSetVersion:
        """One version with its document."""
        return await rule_versions.get(version)

    @post("/venues", status_code=HTTP_201_CREATED, responses=error_responses(401, 403))
    async def create_venue(
        self, data: JSONBody[VenueCreate], staff: NamedDependency[StaffPrincipal], venues: NamedDependency[Venues]
    ) -> VenueView:
        """Register a venue in the staff member's region; the answer carries its venue code."""
        return await venues.create(staff, data)

    @get("/venues/{venue_id:str}", responses=error_responses(401, 403, 404))
    async def get_venue(
        self, venue_id: VenuePath, staff: NamedDependency[StaffPrincipal], venues: NamedDependency[Venues]
    ) -> VenueView:
        """A venue of the staff member's region."""
        return await venues.get(staff, venue_id)

    @post("/venues/{venue_id:str}/code", status_code=HTTP_200_OK, responses=error_responses(401, 403, 404))
    async def reissue_venue_code(
        self, venue_id: VenuePath, staff: NamedDependency[StaffPrincipal], venues: NamedDependency[Venues]
    ) -> VenueView:
        """Sign a new venue code; the old poster stops verifying."""
        return await venues.reissue(staff, venue_id)

    @get(
        "/venues/{venue_id:str}/poster",
        responses=error_responses(401, 403, 404),
        media_type="image/png",
        operation_class=ImageOperation,
    )
    async def venue_poster(
        self,
        venue_id: VenuePath,
        staff: NamedDependency[StaffPrincipal],
        venues: NamedDependency[Venues],
        image_format: FormatQuery = "png",
    ) -> Response[bytes]:
        """The printable poster (PNG with the venue name) or the bare code (SVG)."""
        content = await venues.poster(staff, venue_id, image_format)
        return _image(content, image_format, cache="private, max-age=300")

    @get("/venues/{venue_id:str}/checkins", responses=error_responses(401, 403, 404, 422))
    async def exposure(
        self,
        venue_id: VenuePath,
        start: Annotated[datetime, QueryParameter(name="from", description="RFC 3339, inclusive")],
        end: Annotated[datetime, QueryParameter(name="to", description="RFC 3339, exclusive")],
        staff: NamedDependency[StaffPrincipal],
        venues: NamedDependency[Venues],
        request: Request[Any, Any, Any],
        hold_until: Annotated[
            datetime | None,
            QueryParameter(description="RFC 3339; hide this query from the citizens' ledgers until then (≤ 30 days)"),
        ] = None,
        cursor: Annotated[
            str | None, QueryParameter(max_length=64, description="next_cursor of the previous page")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=10_000, description="page size")] = 10_000,
    ) -> CheckinList:
        """Pseudonymous check-ins of a venue in a window, oldest first, a page at a time
        (health officers of the venue's region; every page audited; shown in the data-access
        ledger of each citizen returned, after ``hold_until`` if given)."""
        return await venues.exposure(
            staff,
            venue_id,
            start,
            end,
            client_ip=client_ip(request),
            hold_until=hold_until,  # ledger
            cursor=cursor,
            limit=limit,
        )


class PartnerVenuesController(Controller):
    """Partners registering their own venues (scope ``venues:write``)."""

    path = "/v1/venues"
    tags = ["codes"]
    security = BEARER
    dependencies = {"partner": provide_venue_partner}

    @post("/", status_code=HTTP_201_CREATED, responses=error_responses(401, 403))
    async def create(
        self,
        data: JSONBody[VenueCreate],
        partner: NamedDependency[PartnerPrincipal],
        venues: NamedDependency[Venues],
    ) -> VenueView:
        """Register a venue; the answer carries its venue code."""
        return await venues.create(partner, data)

    @get("/{venue_id:str}", responses=error_responses(401, 403, 404))
    async def show(
        self, venue_id: VenuePath, partner: NamedDependency[PartnerPrincipal], venues: NamedDependency[Venues]
    ) -> VenueView:
        """One of the partner's venues."""
        return await venues.get(partner, venue_id)

    @post("/{venue_id:str}/code", status_code=HTTP_200_OK, responses=error_responses(401, 403, 404))
    async def reissue(
        self, venue_id: VenuePath, partner: NamedDependency[PartnerPrincipal], venues: NamedDependency[Venues]
    ) -> VenueView:
        """Sign a new venue code; the old poster stops verifying."""
        return await venues.reissue(partner, venue_id)

    @get(
        "/{venue_id:str}/poster",
        responses=error_responses(401, 403, 404),
        media_type="image/png",
        operation_class=ImageOperation,
    )
    async def poster(
        self,
        venue_id: VenuePath,
        partner: NamedDependency[PartnerPrincipal],
        venues: NamedDependency[Venues],
        image_format: FormatQuery = "png",
    ) -> Response[bytes]:
        """The printable poster (PNG) or the bare code (SVG)."""
        content = await venues.poster(partner, venue_id, image_format)
        return _image(content, image_format, cache="private, max-age=300")
