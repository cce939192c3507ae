"""Venues, their long-lived venue codes and posters, citizens' check-ins, exposure queries.

A venue (registered by staff for their region, or by a partner for its own premises) gets one
signed venue code (``ct: V``, ``sub`` = the venue id, valid a year); re-issuing it makes the
previous poster invalid (``revoked``). A citizen scanning it checks in: the check-in stores only
the citizen's check-in pseudonym (the ``V`` pseudonym, unrelated to every code a partner sees).
A health officer whose region covers the venue can list the pseudonymous check-ins of a time
window; each such query is audited.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from datetime import UTC, datetime, timedelta

from codes import render
from codes.holders import Holders
from codes.ledger import record_exposure
from codes.live import HolderEntry, LiveCodes
from codes.online_verification import OnlineVerifier
from codes.payload import CodeType, build_claims, issue_code, new_jti
from codes.repository import CodesRepository, StoredVenue
from codes.schemas import CheckinList, CheckinRecord, CheckinResult, ImageFormat, VenueCreate, VenueRef, VenueView
from codes.verifier import verify_code
from core.audit import AuditEvent, write_audit
from core.errors import BadRequest, DependencyUnavailable, Forbidden, NotFound, RateLimited, UnprocessableEntity
from core.keys import KeyManager
from core.ledger import check_hold
from core.signing import Ed25519Signer
from identity.partners import PartnerPrincipal
from identity.principal import Principal
from identity.staff.permissions import Role, StaffPrincipal, region_covers

__all__ = [
    "EXPOSURE_LIMIT",
    "VENUE_SCOPE",
    "VenueRegionNotAllowed",
    "Venues",
    "decode_cursor",
    "encode_cursor",
    "register_venue",
    "sign_venue_code",
]

#: Partner scope for registering venues and fetching their posters.
VENUE_SCOPE = "venues:write"
#: Most check-ins one page of an exposure query returns (``next_cursor`` fetches the rest).
EXPOSURE_LIMIT = 10_000
_STAFF_ROLES = (Role.HEALTH_OFFICER, Role.ADMIN)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Owner = StaffPrincipal | PartnerPrincipal


def _view(venue: StoredVenue) -> VenueView:
    return VenueView(
        id=venue.id,
        name=venue.name,
        address=venue.address,
        region=venue.region_code,
        status=venue.status,
        payload=venue.code_payload,
        code_expires_at=venue.code_expires_at,
        created_at=venue.created_at,
    )


class VenueRegionNotAllowed(Forbidden):
    """A partner registered a venue outside the regions configured for its client."""

    type_slug = "venue-region-not-allowed"
    title = "Venue region not allowed"


def encode_cursor(at: datetime, row_id: int) -> str:
    """The opaque keyset cursor after the check-in ``(at, row_id)``."""
    micros = (at - _EPOCH) // timedelta(microseconds=1)  # exact, as PostgreSQL stores it
    return base64.urlsafe_b64encode(f"{micros}.{row_id}".encode()).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Undo :func:`encode_cursor`.

    Raises:
        BadRequest: not a cursor this server gave out.
    """
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        micros, row_id = (int(part) for part in text.split("."))
        if micros < 0 or row_id < 0:
            raise ValueError("negative")
        at = _EPOCH + timedelta(microseconds=micros)
    except (binascii.Error, ValueError, UnicodeDecodeError, OverflowError, OSError):
        raise BadRequest("Not a cursor of this query", extensions={"field": "cursor"}) from None
    return at, row_id


def sign_venue_code(signer: Ed25519Signer, *, issuer: str, venue_id: str) -> tuple[str, str, datetime]:
    """A venue code for ``venue_id``: ``(payload, jti, expires_at)``."""
    claims = build_claims(CodeType.VENUE, issuer=issuer, subject=venue_id, status="A")
    return issue_code(signer, claims), claims.jti, datetime.fromtimestamp(claims.exp, UTC)


async def register_venue(
    repository: CodesRepository,
    signer: Ed25519Signer,
    *,
    issuer: str,
    request: VenueCreate,
    owner_type: str,
    owner_id: str,
    venue_id: str | None = None,
) -> VenueView:
    """Store a venue with its signed code, audited (the endpoints, the CLI and the demo seed).

    Args:
        repository: SQL.
        signer: The active ``code`` key.
        issuer: The city's id.
        request: Name, address, region.
        owner_type: ``staff``, ``partner`` or ``system``.
        owner_id: The staff id, the partner's client id, or who ran the CLI.
        venue_id: A given id (the demo venue); random otherwise.
    """
    venue_id = venue_id or new_jti()  # 64 random bits, 11 characters: a pseudonym's budget
    payload, jti, expires_at = sign_venue_code(signer, issuer=issuer, venue_id=venue_id)
    async with repository.transaction() as tx:
        await repository.insert_venue(
            tx,
            venue_id=venue_id,
            name=request.name,
            address=request.address,
            region=request.region,
            owner_type=owner_type,
            owner_id=owner_id,
        )
        venue = await repository.set_venue_code(tx, venue_id=venue_id, payload=payload, jti=jti, expires_at=expires_at)
        await write_audit(
            tx,
            [
                AuditEvent(
                    action="codes.venue.create",
                    outcome="success",
                    actor_type=owner_type,
                    actor_id=owner_id,
                    details={"venue_id": venue_id, "region": request.region},
                )
            ],
        )
    return _view(venue)


class Venues:
    """Venue registration, posters, check-ins and exposure queries.

    Args:
        repository: SQL.
        keys: Signs venue codes.
        holders: Check-in pseudonyms.
        live: Holder cache of venue codes (refreshed when a poster is replaced).
        verifier: The ``code`` keys for checking scanned venue codes.
        issuer: The city's id (``iss``).
        skew_s: Clock tolerance.
        checkin_repeat_s: A second check-in of a citizen at a venue within this returns the first.
        checkins_per_hour: Check-ins one citizen may make per hour.
        exposure_max_days: Longest window of one exposure query.
    """

    def __init__(
        self,
        *,
        repository: CodesRepository,
        keys: KeyManager,
        holders: Holders,
        live: LiveCodes,
        verifier: OnlineVerifier,
        issuer: str,
        skew_s: int,
        checkin_repeat_s: int = 600,
        checkins_per_hour: int = 30,
        exposure_max_days: int = 31,
    ) -> None:
        self._repository = repository
        self._keys = keys
        self._holders = holders
        self._live = live
        self._verifier = verifier
        self._issuer = issuer
        self._skew = skew_s
        self._repeat_s = checkin_repeat_s
        self._per_hour = checkins_per_hour
        self._exposure_max_days = exposure_max_days

    # registration ----------------------------------------------------------------------------

    def _sign(self, venue_id: str) -> tuple[str, str, datetime]:
        try:
            signer = self._keys.signer("code")
        except LookupError:
            raise DependencyUnavailable("No code-signing key is active") from None
        return sign_venue_code(signer, issuer=self._issuer, venue_id=venue_id)

    async def create(self, owner: Owner, request: VenueCreate) -> VenueView:
        """Register a venue and sign its code.

        A partner registers venues only in the regions configured for its client (each covers
        itself and the codes below it); a client with none configured registers none.

        Raises:
            Forbidden: staff without the role, or a region outside theirs.
            VenueRegionNotAllowed: a partner's venue outside its configured regions.
        """
        if isinstance(owner, StaffPrincipal):
            owner.require_role(*_STAFF_ROLES)
            owner.require_region(request.region)
            owner_type, owner_id = "staff", owner.staff_id
        else:
            allowed = await self._repository.partner_venue_regions(owner.client_id)
            if not any(region_covers(region, request.region) for region in allowed):
                raise VenueRegionNotAllowed(
                    "This client may not register venues in this region"
                    if allowed
                    else "No venue regions are configured for this client",
                    extensions={"region": request.region},
                )
            owner_type, owner_id = "partner", owner.client_id
        try:
            signer = self._keys.signer("code")
        except LookupError:
            raise DependencyUnavailable("No code-signing key is active") from None
        return await register_venue(
            self._repository, signer, issuer=self._issuer, request=request, owner_type=owner_type, owner_id=owner_id
        )

    async def _owned(self, owner: Owner, venue_id: str) -> StoredVenue:
        venue = await self._repository.get_venue(venue_id)
        if venue is None:
            raise NotFound("No such venue")
        if isinstance(owner, StaffPrincipal):
            owner.require_role(*_STAFF_ROLES)
            owner.require_region(venue.region_code)
        elif venue.owner_type != "partner" or venue.owner_id != owner.client_id:
            raise NotFound("No such venue")  # a partner does not learn of others' venues
        return venue

    async def get(self, owner: Owner, venue_id: str) -> VenueView:
        """A venue its owner (or covering staff) may see."""
        return _view(await self._owned(owner, venue_id))

    async def reissue(self, owner: Owner, venue_id: str) -> VenueView:
        """Sign a new venue code; the previous poster stops verifying (``revoked``)."""
        await self._owned(owner, venue_id)
        payload, jti, expires_at = self._sign(venue_id)
        async with self._repository.transaction() as tx:
            venue = await self._repository.set_venue_code(
                tx, venue_id=venue_id, payload=payload, jti=jti, expires_at=expires_at
            )
            actor_type = "staff" if isinstance(owner, StaffPrincipal) else "partner"
            actor_id = owner.staff_id if isinstance(owner, StaffPrincipal) else owner.client_id
            await write_audit(
                tx,
                [
                    AuditEvent(
                        action="codes.venue.reissue",
                        outcome="success",
                        actor_type=actor_type,
                        actor_id=actor_id,
                        details={"venue_id": venue_id},
                    )
                ],
            )
        await self._live.put_holder(
            CodeType.VENUE.value,
            venue_id,
            HolderEntry(account_id=None, name=venue.name, status=venue.status, jti=jti),
        )
        return _view(venue)

    async def poster(self, owner: Owner, venue_id: str, fmt: ImageFormat) -> bytes:
        """The printable poster: PNG with the venue name under the code, or the bare SVG code."""
        venue = await self._owned(owner, venue_id)
        if fmt == "svg":
            return await render.render(venue.code_payload, "svg")
        return await asyncio.to_thread(render.render_venue_poster_png, venue.code_payload, venue.name)

    # check-ins -------------------------------------------------------------------------------

    async def checkin(self, principal: Principal, payload: str) -> CheckinResult:
        """Record that the citizen scanned a venue code.

        One check-in per citizen and venue per ``checkin_repeat_s`` (10 minutes): a second scan
        within it answers the first check-in (``repeated``) and adds no row, so a double tap or
        a retried request does not count twice in an exposure query.

        Raises:
            RateLimited: more than ``checkins_per_hour`` check-ins this hour (``Retry-After``).
            UnprocessableEntity: not a valid venue code (``reason`` says why: ``wrong_type``,
                ``expired``, ``revoked``...), or the venue is closed.
        """
        wait = await self._live.take_checkin_slot(principal.account_id, limit=self._per_hour)
        if wait is not None:
            raise RateLimited(wait, "Too many check-ins this hour")
        result = verify_code(
            payload, self._verifier.code_keys(), now=time.time(), skew_s=self._skew, expected_types=("venue",)
        )
        if not result.valid or result.claims is None:
            raise UnprocessableEntity("This is not a valid venue code", extensions={"reason": result.reason})
        venue = await self._repository.get_venue(result.claims["sub"])
        if venue is None or venue.code_jti != result.claims["jti"]:
            raise UnprocessableEntity("This venue code is no longer valid", extensions={"reason": "revoked"})
        if venue.status != "A":
            raise UnprocessableEntity("This venue is closed", extensions={"reason": "venue_closed"})
        pseudonym = await self._holders.register(CodeType.VENUE, principal.account_id)
        at, new = await self._repository.insert_checkin(venue_id=venue.id, pseudonym=pseudonym, repeat_s=self._repeat_s)
        return CheckinResult(
            venue=VenueRef(id=venue.id, name=venue.name, address=venue.address),
            checked_in_at=at,
            repeated=not new,
        )

    async def exposure(
        self,
        staff: StaffPrincipal,
        venue_id: str,
        start: datetime,
        end: datetime,
        *,
        client_ip: str | None,
        hold_until: datetime | None = None,
        cursor: str | None = None,
        limit: int = EXPOSURE_LIMIT,
    ) -> CheckinList:
        """The pseudonymous check-ins of a venue in ``[start, end)``, audited, a page at a time.

        Pages are keyset-paginated by ``(checked_in_at, id)``, oldest first: ``next_cursor``
        continues exactly after the last row of this page, whatever is inserted meanwhile.
        Every page is audited.

        ``hold_until`` hides the query from the data-access ledgers of the citizens it returned
        until then (an investigation not yet to be disclosed; at most ``core.ledger.MAX_HOLD``).

        Raises:
            Forbidden: not a health officer, or the venue is outside the officer's region.
            NotFound: no such venue.
            UnprocessableEntity: a window that is empty, reversed or too long; a bad hold.
            BadRequest: a cursor this server did not give out.
        """
        staff.require_role(Role.HEALTH_OFFICER)
        hold_until = check_hold(hold_until, datetime.now(UTC))  # ledger: validated before anything is read
        after = decode_cursor(cursor) if cursor is not None else None
        limit = max(1, min(limit, EXPOSURE_LIMIT))
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
        end = end if end.tzinfo else end.replace(tzinfo=UTC)
        max_days = self._exposure_max_days
        if end <= start or end - start > timedelta(days=max_days):
            raise UnprocessableEntity(f"The window must be positive and at most {max_days} days")
        venue = await self._repository.get_venue(venue_id)
        if venue is None:
            raise NotFound("No such venue")
        if not region_covers(staff.region, venue.region_code):
            raise Forbidden("Outside your region")
        rows = await self._repository.checkins(venue_id=venue_id, start=start, end=end, limit=limit + 1, after=after)
        truncated = len(rows) > limit
        page = rows[:limit]
        # ledger: the query's audit row and its subjects' ledger rows commit together.
        async with self._repository.transaction() as tx:
            await write_audit(
                tx,
                [
                    AuditEvent(
                        action="codes.exposure_query",
                        outcome="success",
                        actor_type="staff",
                        actor_id=staff.staff_id,
                        client_ip=client_ip,
                        details={
                            "venue_id": venue_id,
                            "start": start.isoformat(),
                            "end": end.isoformat(),
                            "count": len(page),
                            "page": "next" if after is not None else "first",
                            **({"hold_until": hold_until.isoformat()} if hold_until is not None else {}),
                        },
                    )
                ],
            )
            # Each citizen whose check-ins were returned sees this query (after the hold).
            await record_exposure(
                tx,
                staff,
                venue_id=venue_id,
                start=start,
                end=end,
                pseudonyms=(checkin.pseudonym for checkin in page),
                hold_until=hold_until,
                client_ip=client_ip,
            )
        return CheckinList(
            venue_id=venue_id,
            start=start,
            end=end,
            checkins=[CheckinRecord(pseudonym=c.pseudonym, checked_in_at=c.checked_in_at) for c in page],
            truncated=truncated,
            next_cursor=encode_cursor(page[-1].checked_in_at, page[-1].id) if truncated else None,
        )
