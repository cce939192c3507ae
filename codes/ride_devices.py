"""Offline transit ride codes, server side: device certificates and validator log uploads.

The format and the offline checks are :mod:`codes.ride`; this module is what the server adds:

- **Device registration.** The app asks for a nonce, signs
  ``"OC1R/device-pop/v1\\0" ‖ nonce ‖ public key`` with its device key (proof of possession) and
  gets a certificate binding the key to its transit pseudonym, for a holder whose level allows
  transit codes and whose card is active. A key belongs to one account; a revoked or flagged
  device gets no new certificate.
- **Log uploads.** Validators upload the ride codes they accepted with their scan times. Each is
  re-verified (a partner cannot invent rides for a device) in worker processes
  (:mod:`codes.ride_check`), so a 1 MiB log never holds the event loop; its scan time is
  bounded by the server's clock, it is stored once, and every ``(device id, counter)`` seen more
  than once across all uploads so far is reported as a replay. Validators are named per partner.
  A device is flagged (no more certificates) only for a replay seen by two or more partners.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import secrets
import time
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from codes.holders import Holders
from codes.live import LiveCodes
from codes.online_verification import OnlineVerifier
from codes.payload import CodeType
from codes.repository import CodesRepository, RideBatch
from codes.ride import RideRecord, device_id_of, find_replays, issue_device_certificate
from codes.ride_check import Accepted, CheckerUnavailable, RideLogChecker, raw_keys
from codes.schemas import (
    DeviceCertificateResponse,
    DeviceChallenge,
    DeviceRegistration,
    ReplayScan,
    ReplayView,
    RideLogResult,
    RideLogUpload,
    RideRejection,
)
from codes.settings import CodesSettings
from codes.status import StatusResolver
from core.audit import AuditBatcher, AuditEvent, write_audit
from core.errors import Conflict, DependencyUnavailable, Forbidden, NotFound, Unauthorized, UnprocessableEntity
from core.keys import KeyManager
from identity.principal import Principal

__all__ = ["POP_CONTEXT", "Rides"]

log = logging.getLogger("onecity.codes.rides")

#: Domain separation of the proof-of-possession signature (never a ride or JWS signature).
POP_CONTEXT = b"OC1R/device-pop/v1\x00"
_CHALLENGE_TTL_S = 300


def _b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise UnprocessableEntity("Not base64url") from None


class Rides:
    """Device certificates and ride-log uploads.

    Args:
        repository: SQL.
        keys: Signs certificates.
        holders: Accounts and transit pseudonyms.
        status: The transit card status (no certificate for a blocked card).
        live: Nonces.
        verifier: The ``code`` keys for re-verifying uploaded rides.
        settings: Levels, certificate life, skew.
        issuer: The city's id.
        checker: Verifies uploaded lines off the event loop (worker processes).
        audit: Records certificates and flagged devices.
    """

    def __init__(
        self,
        *,
        repository: CodesRepository,
        keys: KeyManager,
        holders: Holders,
        status: StatusResolver,
        live: LiveCodes,
        verifier: OnlineVerifier,
        settings: CodesSettings,
        issuer: str,
        checker: RideLogChecker,
        audit: AuditBatcher | None = None,
    ) -> None:
        self._checker = checker
        self._repository = repository
        self._keys = keys
        self._holders = holders
        self._status = status
        self._live = live
        self._verifier = verifier
        self._settings = settings
        self._issuer = issuer
        self._audit = audit

    # devices ---------------------------------------------------------------------------------

    async def challenge(self, principal: Principal) -> DeviceChallenge:
        """A one-time nonce for the device to sign."""
        principal.require_level(self._settings.transit_level)
        nonce = secrets.token_urlsafe(24)
        await self._live.put_challenge(nonce, principal.account_id, ttl_s=_CHALLENGE_TTL_S)
        return DeviceChallenge(nonce=nonce, expires_in=_CHALLENGE_TTL_S)

    async def certify(self, principal: Principal, request: DeviceRegistration) -> DeviceCertificateResponse:
        """Check the proof of possession and issue a device certificate.

        Raises:
            InsufficientLevel: below the transit level.
            Unauthorized: the nonce is unknown, spent, expired or someone else's.
            UnprocessableEntity: a malformed key or a wrong signature.
            Conflict: the key is registered to another account.
            Forbidden: the device was revoked or flagged, or the transit card is blocked.
        """
        principal.require_level(self._settings.transit_level)
        owner = await self._live.take_challenge(request.nonce)
        if owner != principal.account_id:
            raise Unauthorized("The nonce is unknown, used or expired: ask for a new one", error="invalid_request")
        raw_key = _b64url_decode(request.public_key)
        signature = _b64url_decode(request.signature)
        if len(raw_key) != 32 or len(signature) != 64:
            raise UnprocessableEntity("public_key is 32 bytes and signature 64 bytes (Ed25519)")
        try:
            Ed25519PublicKey.from_public_bytes(raw_key).verify(
                signature, POP_CONTEXT + request.nonce.encode("ascii") + raw_key
            )
        except (InvalidSignature, ValueError):
            raise UnprocessableEntity(
                "The proof of possession does not verify", extensions={"field": "signature"}
            ) from None
        device_id = device_id_of(raw_key)
        device = await self._repository.get_device(device_id)
        if device is not None and device.account_id != principal.account_id:
            raise Conflict("This device key is registered to another account")
        if device is not None and (device.revoked_at is not None or device.flagged_at is not None):
            raise Forbidden("This device key no longer gets certificates: register a new key")
        holder = await self._holders.get(principal.account_id)
        if holder is None:
            raise Unauthorized("The account no longer exists")
        card = await self._status.decide(holder, CodeType.TRANSIT)
        if card.status != "A":
            raise Forbidden("The transit card is not active", extensions={"reasons": list(card.reasons)})
        subject = await self._holders.register(CodeType.TRANSIT, principal.account_id)
        now = int(time.time())
        try:
            certificate = issue_device_certificate(
                self._keys.signer("code"),
                device_public_key=raw_key,
                subject=subject,
                issuer=self._issuer,
                now=now,
                lifetime_s=self._settings.device_certificate_s,
            )
        except LookupError:
            raise DependencyUnavailable("No code-signing key is active") from None
        not_before = datetime.fromtimestamp(now, UTC)
        not_after = datetime.fromtimestamp(now + self._settings.device_certificate_s, UTC)
        # A credential granted: its audit row commits with it, or neither does.
        async with self._repository.transaction() as tx:
            await self._repository.certify_device(
                tx,
                device_id=device_id,
                account_id=principal.account_id,
                public_key=raw_key,
                not_before=not_before,
                not_after=not_after,
            )
            await write_audit(tx, [self._device_event("codes.device.certify", principal, device_id)])
        return DeviceCertificateResponse(
            device_id=device_id,
            certificate=base64.urlsafe_b64encode(certificate).rstrip(b"=").decode("ascii"),
            not_before=not_before,
            not_after=not_after,
        )

    async def revoke(self, principal: Principal, device_id: str) -> None:
        """The citizen retires a device key (lost phone): no certificate is issued for it again.

        Raises:
            NotFound: not a live device of this account.
        """
        async with self._repository.transaction() as tx:
            if not await self._repository.revoke_device(tx, device_id=device_id, account_id=principal.account_id):
                raise NotFound("No such device")
            await write_audit(tx, [self._device_event("codes.device.revoke", principal, device_id)])

    @staticmethod
    def _device_event(action: str, principal: Principal, device_id: str) -> AuditEvent:
        return AuditEvent(
            action=action,
            outcome="success",
            actor_type="citizen",
            actor_id=principal.account_id,
            subject_id=principal.account_id,
            details={"device_id": device_id},
        )

    # validator logs --------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the worker processes that check uploads (at shutdown)."""
        await self._checker.close()

    async def _check(self, request: RideLogUpload) -> list[Accepted | str]:
        """Verify every line off the event loop (in the worker processes, :mod:`codes.ride_check`).

        Raises:
            DependencyUnavailable: the worker processes cannot be started or keep dying.
        """
        settings = self._settings
        now = time.time()
        try:
            return await self._checker.check(
                [(ride.code, ride.scanned_at) for ride in request.rides],
                raw_keys(self._verifier.code_keys()),
                now=now,
                skew_s=settings.clock_skew_s,
                oldest=now - settings.device_certificate_s - settings.ride_log_upload_margin_s,
            )
        except CheckerUnavailable:
            raise DependencyUnavailable("Ride logs cannot be checked right now", retry_after=10) from None

    async def upload(self, partner_id: str, request: RideLogUpload) -> RideLogResult:
        """Store a validator's accepted rides and report every replay they take part in.

        Each line is judged on its own: a bad line is listed in ``rejected`` with its reason and
        the good lines of the batch are stored all the same. A device is flagged (no more
        certificates) only for a replay seen by two or more partners: one partner alone cannot
        get a citizen flagged by uploading a ride twice; its own replays are reported to it.
        """
        checked = await self._check(request)
        rejected: list[RideRejection] = []
        rows: list[tuple[str, int, int, float, str | None]] = []
        for index, (outcome, ride) in enumerate(zip(checked, request.rides, strict=True)):
            if isinstance(outcome, str):
                rejected.append(RideRejection(index=index, reason=outcome))
                continue
            device_id, counter, at, subject = outcome
            rows.append((device_id, counter, at, ride.scanned_at, subject))
        batch = RideBatch.of(rows)
        # Building the batch and storing it each cost a 1 MiB log a few milliseconds of event
        # loop: other requests get a turn in between.
        await asyncio.sleep(0)
        inserted = await self._repository.insert_ride_records(
            batch, validator_id=request.validator_id, partner_id=partner_id
        )
        stored = await self._repository.replayed_rides(batch)
        replays = find_replays(
            RideRecord(
                device_id=r.device_id,
                counter=r.counter,
                at=r.ride_at,
                validator_id=r.validator_id,
                scanned_at=r.scanned_at.timestamp(),
                subject=r.subject,
                partner_id=r.partner_id,
            )
            for r in stored
        )
        cross = {(r.device_id, r.counter) for r in replays if len({rec.partner_id for rec in r.records}) > 1}
        views = [
            ReplayView(
                device_id=replay.device_id,
                counter=replay.counter,
                scans=[
                    ReplayScan(
                        validator_id=rec.validator_id,
                        scanned_at=datetime.fromtimestamp(rec.scanned_at, UTC),
                        partner_id=rec.partner_id,
                    )
                    for rec in replay.records
                ],
                cross_partner=(replay.device_id, replay.counter) in cross,
            )
            for replay in replays
        ]
        to_flag = {device_id for device_id, _ in cross}
        flagged = await self._repository.flag_devices(to_flag) if to_flag else []
        if flagged:
            log.warning("ride code replays detected", extra={"devices": len(flagged)})
        if self._audit is not None:
            self._audit.add(
                AuditEvent(
                    action="codes.ride_log.upload",
                    outcome="success",
                    actor_type="partner",
                    actor_id=partner_id,
                    details={
                        "validator_id": request.validator_id,
                        "accepted": inserted,
                        "rejected": len(rejected),
                        "replays": len(replays),
                        "flagged_devices": flagged,
                    },
                )
            )
        return RideLogResult(accepted=inserted, duplicates=len(rows) - inserted, rejected=rejected, replays=views)
