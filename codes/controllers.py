"""HTTP endpoints of the codes domain: thin, each decodes a Struct and calls the service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from codes.dependencies import provide_codes, provide_staff, provide_venue_partner, provide_verify_partner
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
from core.http import BEARER, ImageOperation, error_responses
from core.structs import FrozenStruct, whole
from identity.dependencies import client_ip
from identity.partners import PartnerPrincipal
from identity.principal import Principal
from identity.staff.guards import staff_roles
from identity.staff.permissions import Role, StaffPrincipal

__all__ = [
    "CODES_DEPENDENCIES",
    "CodeKeysJwks",
    "CodesAdminController",
    "CodesPartnerController",
    "MyCodesController",
    "PartnerVenuesController",
]

#: App-level dependency of the codes domain (register with the app's other dependencies).
CODES_DEPENDENCIES = {"codes": Provide(provide_codes, sync_to_thread=False)}

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
        self, principal: NamedDependency[Principal], codes: NamedDependency[CodesService]
    ) -> CodesOverview:
        """Every code type: whether the citizen may show it (level), the current status and,
        for health, the reasons and the rule version."""
        return await codes.issuing.overview(principal)

    @post("/codes/{code_type:str}", status_code=HTTP_200_OK, responses=error_responses(401, 429))
    async def issue(
        self, code_type: HolderCodeType, principal: NamedDependency[Principal], codes: NamedDependency[CodesService]
    ) -> IssuedCode:
        """A new signed code (``OC1:...``). Fetch the next one at ``refresh_after``."""
        return await codes.issuing.issue(principal, code_type)

    @delete("/codes/{code_type:str}", status_code=HTTP_204_NO_CONTENT, responses=error_responses(401))
    async def revoke(
        self, code_type: HolderCodeType, principal: NamedDependency[Principal], codes: NamedDependency[CodesService]
    ) -> None:
        """Revoke every unexpired code of this type (a leaked screenshot, a lost phone)."""
        await codes.issuing.revoke_all(principal, code_type)

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
        codes: NamedDependency[CodesService],
        image_format: FormatQuery = "png",
    ) -> Response[bytes]:
        """The current code as a QR image (error correction M), PNG or SVG."""
        content = await codes.issuing.image(principal, code_type, image_format)
        return _image(content, image_format, cache="no-store")

    @post("/checkins", status_code=HTTP_201_CREATED, responses=error_responses(401, 422, 429))
    async def checkin(
        self,
        data: JSONBody[CheckinRequest],
        principal: NamedDependency[Principal],
        codes: NamedDependency[CodesService],
    ) -> Response[CheckinResult]:
        """Check in at a venue by its scanned venue code: 201, or 200 with the check-in already
        recorded there in the last 10 minutes (``repeated``)."""
        result = await codes.venues.checkin(principal, data.payload)
        return Response(result, status_code=HTTP_200_OK if result.repeated else HTTP_201_CREATED)

    @post("/ride-devices/challenge", status_code=HTTP_200_OK, responses=error_responses(401))
    async def device_challenge(
        self, principal: NamedDependency[Principal], codes: NamedDependency[CodesService]
    ) -> DeviceChallenge:
        """A nonce for the device key's proof of possession (valid 5 minutes, once)."""
        return await codes.rides.challenge(principal)

    @post("/ride-devices", status_code=HTTP_200_OK, responses=error_responses(401, 403, 409, 422))
    async def device_certificate(
        self,
        data: JSONBody[DeviceRegistration],
        principal: NamedDependency[Principal],
        codes: NamedDependency[CodesService],
    ) -> DeviceCertificateResponse:
        """Register a device key (or renew its certificate) for offline ride codes."""
        return await codes.rides.certify(principal, data)

    @delete("/ride-devices/{device_id:str}", status_code=HTTP_204_NO_CONTENT, responses=error_responses(401, 404))
    async def device_revoke(
        self,
        device_id: Annotated[str, PathParameter(pattern=whole(r"[A-Za-z0-9_-]{16}"))],
        principal: NamedDependency[Principal],
        codes: NamedDependency[CodesService],
    ) -> None:
        """Retire a device key: it gets no certificate again."""
        await codes.rides.revoke(principal, device_id)


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
        # The service comes from the state, not as a second dependency: with one dependency
        # Litestar resolves it inline instead of in a task group, a measurable share of the
        # hot path's CPU time.
        codes: CodesService = state.codes
        return await codes.verification.verify(partner.client_id, data)

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
        codes: NamedDependency[CodesService],
    ) -> RideLogResult:
        """Upload a validator's accepted offline ride codes; answers the replays found."""
        return await codes.rides.upload(partner.client_id, data)


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
        codes: NamedDependency[CodesService],
        request: Request[Any, Any, Any],
    ) -> HealthOverrideView:
        """Override a citizen's health status until ``until`` (health officers and admins whose
        region covers the citizen; audited; effective on the next code)."""
        return await codes.overrides.set(staff, str(account_id), data, client_ip=client_ip(request))

    @get("/citizens/{account_id:uuid}/health-status", responses=error_responses(401, 403, 404))
    async def get_override(
        self, account_id: UUID, staff: NamedDependency[StaffPrincipal], codes: NamedDependency[CodesService]
    ) -> HealthOverrideView:
        """The citizen's override."""
        return await codes.overrides.get(staff, str(account_id))

    @delete(
        "/citizens/{account_id:uuid}/health-status",
        status_code=HTTP_204_NO_CONTENT,
        responses=error_responses(401, 403, 404),
    )
    async def lift_override(
        self,
        account_id: UUID,
        staff: NamedDependency[StaffPrincipal],
        codes: NamedDependency[CodesService],
        request: Request[Any, Any, Any],
    ) -> None:
        """Lift the citizen's override before it expires (audited)."""
        await codes.overrides.lift(staff, str(account_id), client_ip=client_ip(request))

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
        codes: NamedDependency[CodesService],
    ) -> RuleSetVersion:
        """Publish a new health rule version (administrators). Its ``version`` must be higher
        than the active one; it applies to every code decided from now on."""
        return await codes.rules.publish(data, published_by=f"staff:{staff.staff_id}")

    @get(
        "/health-rules",
        guards=[staff_roles(Role.SYSTEM_ADMIN, Role.HEALTH_OFFICER, Role.AUDITOR)],
        responses=error_responses(401, 403),
    )
    async def list_rules(
        self, staff: NamedDependency[StaffPrincipal], codes: NamedDependency[CodesService]
    ) -> RuleSetList:
        """Every published version, newest (active) first."""
        return await codes.rules.versions()

    @get(
        "/health-rules/{version:int}",
        guards=[staff_roles(Role.SYSTEM_ADMIN, Role.HEALTH_OFFICER, Role.AUDITOR)],
        responses=error_responses(401, 403, 404),
    )
    async def get_rules(
        self,
        version: Annotated[int, PathParameter(ge=1, le=2**31 - 1)],
        staff: NamedDependency[StaffPrincipal],
        codes: NamedDependency[CodesService],
    ) -> RuleSetVersion:
        """One version with its document."""
        return await codes.rules.get(version)

    @post("/venues", status_code=HTTP_201_CREATED, responses=error_responses(401, 403))
    async def create_venue(
        self, data: JSONBody[VenueCreate], staff: NamedDependency[StaffPrincipal], codes: NamedDependency[CodesService]
    ) -> VenueView:
        """Register a venue in the staff member's region; the answer carries its venue code."""
        return await codes.venues.create(staff, data)

    @get("/venues/{venue_id:str}", responses=error_responses(401, 403, 404))
    async def get_venue(
        self, venue_id: VenuePath, staff: NamedDependency[StaffPrincipal], codes: NamedDependency[CodesService]
    ) -> VenueView:
        """A venue of the staff member's region."""
        return await codes.venues.get(staff, venue_id)

    @post("/venues/{venue_id:str}/code", status_code=HTTP_200_OK, responses=error_responses(401, 403, 404))
    async def reissue_venue_code(
        self, venue_id: VenuePath, staff: NamedDependency[StaffPrincipal], codes: NamedDependency[CodesService]
    ) -> VenueView:
        """Sign a new venue code; the old poster stops verifying."""
        return await codes.venues.reissue(staff, venue_id)

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
        codes: NamedDependency[CodesService],
        image_format: FormatQuery = "png",
    ) -> Response[bytes]:
        """The printable poster (PNG with the venue name) or the bare code (SVG)."""
        content = await codes.venues.poster(staff, venue_id, image_format)
        return _image(content, image_format, cache="private, max-age=300")

    @get("/venues/{venue_id:str}/checkins", responses=error_responses(401, 403, 404, 422))
    async def exposure(
        self,
        venue_id: VenuePath,
        start: Annotated[datetime, QueryParameter(name="from", description="RFC 3339, inclusive")],
        end: Annotated[datetime, QueryParameter(name="to", description="RFC 3339, exclusive")],
        staff: NamedDependency[StaffPrincipal],
        codes: NamedDependency[CodesService],
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
        return await codes.venues.exposure(
            staff,
            venue_id,
            start,
            end,
            max_days=codes.settings.exposure_max_days,
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
        codes: NamedDependency[CodesService],
    ) -> VenueView:
        """Register a venue; the answer carries its venue code."""
        return await codes.venues.create(partner, data)

    @get("/{venue_id:str}", responses=error_responses(401, 403, 404))
    async def show(
        self, venue_id: VenuePath, partner: NamedDependency[PartnerPrincipal], codes: NamedDependency[CodesService]
    ) -> VenueView:
        """One of the partner's venues."""
        return await codes.venues.get(partner, venue_id)

    @post("/{venue_id:str}/code", status_code=HTTP_200_OK, responses=error_responses(401, 403, 404))
    async def reissue(
        self, venue_id: VenuePath, partner: NamedDependency[PartnerPrincipal], codes: NamedDependency[CodesService]
    ) -> VenueView:
        """Sign a new venue code; the old poster stops verifying."""
        return await codes.venues.reissue(partner, venue_id)

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
        codes: NamedDependency[CodesService],
        image_format: FormatQuery = "png",
    ) -> Response[bytes]:
        """The printable poster (PNG) or the bare code (SVG)."""
        content = await codes.venues.poster(partner, venue_id, image_format)
        return _image(content, image_format, cache="private, max-age=300")
