"""Offline transit ride codes, server side: device certificates and validator log uploads.

The format and the offline checks are :mod:`codes.ride`; this module is what the server adds:

- **Device registration.** The app asks for a nonce, signs
  ``"OC1R/device-pop/v1\\0" ‖ nonce ‖ public key`` with its device key (proof of possession) and
  gets a certificate binding the key to its transit pseudonym, for a holder whose level allows
  transit codes and whose card is active. A key belongs to one account; a revoked or flagged
  device gets no new certificate.
- **Log uploads.** Validators upload the ride codes they accepted with their scan times. Each is
  re-verified (a partner cannot invent rides for a device) off the event loop, its scan time is
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
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from codes.holders import Holders
from codes.live import LiveCodes
from codes.payload import CodeType
from codes.repository import CodesRepository
from codes.ride import RideRecord, device_id_of, find_replays, issue_device_certificate, verify_ride_code
from codes.schemas import (
    DeviceCertificateResponse,
    DeviceChallenge,
    DeviceRegistration,
    ReplayScan,
    ReplayView,
    RideLogResult,
    RideLogUpload,
    RideRejection,
    RideScan,
)
from codes.settings import CodesSettings
from codes.status import StatusResolver
from codes.verification import OnlineVerifier
from core.audit import AuditBatcher, AuditEvent, write_audit
from core.errors import Conflict, DependencyUnavailable, Forbidden, NotFound, Unauthorized, UnprocessableEntity
from core.keys import KeyManager
from identity.principal import Principal

__all__ = ["POP_CONTEXT", "RIDE_VERIFY_CHUNK", "Rides"]

log = logging.getLogger("onecity.codes.rides")

#: Domain separation of the proof-of-possession signature (never a ride or JWS signature).
POP_CONTEXT = b"OC1R/device-pop/v1\x00"
_CHALLENGE_TTL_S = 300
#: Lines of an upload verified per worker-thread hop (each hop is a few milliseconds of CPU).
RIDE_VERIFY_CHUNK = 128


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
        audit: AuditBatcher | None = None,
    ) -> None:
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
        if device is not None and device["account_id"] != principal.account_id:
            raise Conflict("This device key is registered to another account")
        if device is not None and (device["revoked_at"] is not None or device["flagged_at"] is not None):
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
        async with self._repository.pool.acquire() as conn, conn.transaction():
            await self._repository.certify_device(
                device_id=device_id,
                account_id=principal.account_id,
                public_key=raw_key,
                not_before=not_before,
                not_after=not_after,
                conn=conn,
            )
            await write_audit(conn, [self._device_event("codes.device.certify", principal, device_id)])
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
        async with self._repository.pool.acquire() as conn, conn.transaction():
            if not await self._repository.revoke_device(
                device_id=device_id, account_id=principal.account_id, conn=conn
            ):
                raise NotFound("No such device")
            await write_audit(conn, [self._device_event("codes.device.revoke", principal, device_id)])

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

    def _check_chunk(
        self,
        rides: Sequence[RideScan],
        keys: Mapping[str, Ed25519PublicKey],
        now: float,
        partner_id: str,
        validator: str,
    ) -> list[RideRecord | str]:
        """Verify a slice of an upload (run in a worker thread): a record or a rejection reason."""
        skew = self._settings.clock_skew_s
        oldest = now - self._settings.device_certificate_s - self._settings.ride_log_upload_margin_s
        out: list[RideRecord | str] = []
        for ride in rides:
            # ``cryptography`` keeps the GIL while verifying: hand it back before every line, so
            # the event loop waits at most one line for it rather than a whole switch interval.
            time.sleep(0)
            # The scan time is the validator's word: bound it by the server's clock, so a log
            # cannot place rides in the future or resurrect codes from long ago.
            if ride.scanned_at > now + skew:
                out.append("scanned_in_future")
                continue
            if ride.scanned_at < oldest:
                out.append("upload_too_late")
                continue
            result = verify_ride_code(ride.code, keys, now=ride.scanned_at, skew_s=skew)
            if not result.valid:
                out.append(result.reason or "malformed")
                continue
            out.append(result.record(validator_id=validator, scanned_at=ride.scanned_at, partner_id=partner_id))
        return out

    async def _check(self, partner_id: str, request: RideLogUpload) -> list[RideRecord | str]:
        """Verify every line off the event loop, in bounded chunks.

        Two Ed25519 verifications per line make a full upload (2,000 lines) tens to hundreds of
        milliseconds of CPU; in a worker thread, chunk by chunk, the event loop keeps serving
        other requests meanwhile (the worker hands the GIL back before every line).
        """
        keys = self._verifier.code_keys()
        now = time.time()
        out: list[RideRecord | str] = []
        for start in range(0, len(request.rides), RIDE_VERIFY_CHUNK):
            chunk = request.rides[start : start + RIDE_VERIFY_CHUNK]
            out.extend(await asyncio.to_thread(self._check_chunk, chunk, keys, now, partner_id, request.validator_id))
        return out

    async def upload(self, partner_id: str, request: RideLogUpload) -> RideLogResult:
        """Store a validator's accepted rides and report every replay they take part in.

        Each line is judged on its own: a bad line is listed in ``rejected`` with its reason and
        the good lines of the batch are stored all the same. A device is flagged (no more
        certificates) only for a replay seen by two or more partners: one partner alone cannot
        get a citizen flagged by uploading a ride twice; its own replays are reported to it.
        """
        checked = await self._check(partner_id, request)
        rejected: list[RideRejection] = []
        rows = []
        for index, outcome in enumerate(checked):
            if isinstance(outcome, str):
                rejected.append(RideRejection(index=index, reason=outcome))
                continue
            rows.append(
                (
                    outcome.device_id,
                    outcome.counter,
                    outcome.at,
                    outcome.validator_id,
                    datetime.fromtimestamp(outcome.scanned_at, UTC),
                    outcome.subject,
                    partner_id,
                )
            )
        inserted = await self._repository.insert_ride_records(rows)
        stored = await self._repository.ride_records_for({(r[0], r[1]) for r in rows}, replayed_only=True)
        replays = find_replays(
            RideRecord(
                device_id=r["device_id"],
                counter=r["counter"],
                at=r["ride_at"],
                validator_id=r["validator_id"],
                scanned_at=r["scanned_at"].timestamp(),
                subject=r["subject"],
                partner_id=r["partner_id"],
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
