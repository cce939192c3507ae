"""Online verification of codes for partners (``POST /v1/codes/verify``).

The hot path, per request: the signature is checked in-process against the ``code`` keys of the
key ring (:func:`codes.verifier.verify_code`, the very function partners run offline, so online
and offline agree); one Redis round trip answers revocation, one-time use and the holder's
cached current status and masked name (:class:`codes.live.LiveCodes`); the scan is written to
the scan log by group commit (:class:`codes.scanlog.ScanLog`) before the answer returns. Only a
holder-cache miss costs database reads.

An invalid code is a normal answer (``valid: false`` with a reason), and it tells the partner
nothing about the holder: the masked name and the current status are given for valid codes only.
The offline verifier partners copy is :mod:`codes.verifier`; this module is the server's service.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from codes.holders import Holders
from codes.live import HolderEntry, LiveCodes
from codes.payload import CodeType
from codes.repository import CodesRepository
from codes.scanlog import ScanLog
from codes.schemas import Holder, VerifyRequest, VerifyResult
from codes.status import StatusResolver
from codes.verifier import API_NAMES, PREFIX, Verification, verify_code
from core.errors import RateLimited
from core.keys import KeyManager, KeyRing
from core.signing import b64url_decode

__all__ = ["CodeKeys", "OnlineVerifier"]

_LETTER_TO_API = {letter: name for name, letter in API_NAMES.items()}
_KEYS_RECHECK_S = 60.0


class CodeKeys(Mapping[str, Ed25519PublicKey]):
    """The ``code`` public keys of a key ring as the ``kid -> key`` mapping the verifier takes.

    Built once per ring snapshot (and re-built every minute, so a key whose ``verify_until``
    passed stops verifying): a look-up is then one dict access.
    """

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        self.built_at = time.monotonic()
        self._keys: dict[str, Ed25519PublicKey] = {}
        for stored in ring.keys:
            key = ring.public_key(stored.kid, "code")
            if key is not None:
                self._keys[stored.kid] = key

    def __getitem__(self, kid: str) -> Ed25519PublicKey:
        return self._keys[kid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def _kid_of(payload: str) -> str | None:
    """The ``kid`` of a payload's header, without verifying anything (for a key reload)."""
    try:
        header = json.loads(b64url_decode(payload[len(PREFIX) :].split(".", 1)[0]))
    except (ValueError, UnicodeDecodeError):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) and 0 < len(kid) <= 64 else None


class OnlineVerifier:
    """Verifies codes for partners and logs every verification.

    Args:
        keys: The process's key manager (its ``code`` keys verify).
        live: Redis state.
        scan_log: The group-committed scan log.
        holders: Pseudonym → account and account facts (cache misses).
        status: Current statuses from stored data (cache misses).
        repository: Venue look-ups (cache misses).
        skew_s: Clock tolerance on ``iat``/``exp``.
        per_second: Verifications per partner and second, per process.
    """

    def __init__(
        self,
        *,
        keys: KeyManager,
        live: LiveCodes,
        scan_log: ScanLog,
        holders: Holders,
        status: StatusResolver,
        repository: CodesRepository,
        skew_s: int,
        per_second: int,
    ) -> None:
        self._keys = keys
        self._live = live
        self._scan_log = scan_log
        self._holders = holders
        self._status = status
        self._repository = repository
        self._skew = skew_s
        self._per_second = per_second
        self._code_keys = CodeKeys(keys.ring)
        self._windows: dict[str, tuple[int, int]] = {}

    def code_keys(self) -> CodeKeys:
        """The current ``code`` keys (rebuilt when the ring was reloaded)."""
        cached = self._code_keys
        if cached.ring is not self._keys.ring or time.monotonic() - cached.built_at > _KEYS_RECHECK_S:
            cached = self._code_keys = CodeKeys(self._keys.ring)
        return cached

    def _limit(self, partner_id: str) -> None:
        # In-process fixed window: no Redis round trip on the hot path. The limit is per
        # process; with N processes behind the balancer a partner gets at most N times it.
        second = int(time.monotonic())
        start, count = self._windows.get(partner_id, (second, 0))
        if start != second:
            start, count = second, 0
        if count >= self._per_second:
            raise RateLimited(1, "Too many verifications; slow down")
        self._windows[partner_id] = (start, count + 1)

    async def _offline(self, payload: str, now: float, types: list[str] | None) -> Verification:
        result = verify_code(payload, self.code_keys(), now=now, skew_s=self._skew, expected_types=types)
        if result.reason == "unknown_key" and result.claims is None:
            # A key rotated in by another process: reload the ring (rate-limited by the manager).
            kid = _kid_of(payload)
            if kid is not None and await self._keys.public_key(kid, "code") is not None:
                result = verify_code(payload, self.code_keys(), now=now, skew_s=self._skew, expected_types=types)
        return result

    async def verify(self, partner_id: str, request: VerifyRequest) -> VerifyResult:
        """Verify one scanned code, log it durably, answer.

        Raises:
            RateLimited: the partner exceeded its rate.
            DependencyUnavailable: the scan could not be logged (no answer without a log).
        """
        self._limit(partner_id)
        now = time.time()
        result = await self._offline(request.payload, now, list(request.types) if request.types else None)
        claims = result.claims
        reason = result.reason
        holder: HolderEntry | None = None
        consumed = False
        taken: tuple[str, str, str] | None = None  # the one-time marker this request set
        try:
            if result.valid and claims is not None:
                code_type = claims["ct"]
                if request.consume and code_type == CodeType.VENUE.value:
                    reason = "wrong_type"  # a poster on a wall is not a one-time ticket
                else:
                    outcome, holder = await self._live.check(
                        code_type, claims["sub"], claims["jti"], exp=claims["exp"], consume=request.consume, now=now
                    )
                    if outcome == "ok" and request.consume:
                        taken = (code_type, claims["sub"], claims["jti"])
                    if holder is None:
                        holder = await self._load_holder(code_type, claims["sub"], claims["st"])
                    if outcome != "ok":
                        reason = outcome
                    elif holder is None or (code_type == CodeType.VENUE.value and holder.jti != claims["jti"]):
                        reason = "revoked"  # holder gone, or the venue's poster was replaced
                    else:
                        consumed = request.consume
            await self._scan_log.write(self._scan_row(partner_id, request, claims, reason, consumed, now))
        except Exception:
            # No answer (503): the code was not accepted, so the gate's retry must not find it
            # "replayed". (A cancelled caller is not released: its row may still be committed.)
            if taken is not None:
                await self._live.release(*taken)
            raise
        checked_at = datetime.fromtimestamp(now, UTC)
        code_type_name = _LETTER_TO_API.get(claims["ct"]) if claims is not None else None
        if reason is not None or holder is None:
            return VerifyResult(
                valid=False, reason=reason or "revoked", code_type=code_type_name, checked_at=checked_at
            )
        return VerifyResult(
            valid=True,
            code_type=code_type_name,
            status=holder.status,
            holder=Holder(name=holder.name),
            checked_at=checked_at,
        )

    @staticmethod
    def _scan_row(
        partner_id: str,
        request: VerifyRequest,
        claims: Mapping[str, Any] | None,
        reason: str | None,
        consumed: bool,
        now: float,
    ) -> tuple[Any, ...]:
        # Claims are only set once the signature checked out: nothing forged reaches the log.
        return (
            now,
            partner_id,
            request.venue_id,
            claims["ct"] if claims else None,
            claims["sub"] if claims else None,
            claims["jti"] if claims else None,
            claims["iat"] if claims else None,
            reason or "valid",
            consumed,
        )

    async def _load_holder(self, code_type: str, subject: str, code_status: str) -> HolderEntry | None:
        """Build (and cache) the holder entry after a cache miss."""
        if code_type == CodeType.VENUE.value:
            venue = await self._repository.get_venue(subject)
            if venue is None:
                return None
            entry = HolderEntry(account_id=None, name=venue.name, status=venue.status, jti=venue.code_jti)
        else:
            account_id = await self._holders.account_of(code_type, subject)
            account = await self._holders.get(account_id) if account_id is not None else None
            if account is None:
                return None
            decision = await self._status.current(account.account_id, CodeType(code_type))
            entry = HolderEntry(
                account_id=account.account_id,
                name=account.masked_name,
                status=decision.status if decision is not None else code_status,
            )
        await self._live.put_holder(code_type, subject, entry)
        return entry
