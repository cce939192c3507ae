"""Offline transit ride codes (``OC1R:``): device certificates, ride codes, replay detection.

A bus or gate validator is often offline, and the phone showing the code may be too. So the
phone itself makes the ride codes:

1. The app generates an Ed25519 *device key* and registers its public half.
2. OneCity issues a short-lived *device certificate* (24 h by default) binding that public key to
   the holder's transit pseudonym, signed by a ``code`` key (named by ``kid``).
3. Offline, the app makes a ride code per scan: certificate + counter + time, signed by the
   device key.
4. The validator checks the chain with OneCity's code-key JWKS alone: the code key vouches for
   the device key, the device key vouches for this ride.
5. A copied code can be shown twice; validators log ``(device id, counter)`` and
   :func:`find_replays` flags duplicates once the logs are merged.

The binary layout (documented in ``docs/offline-ride-codes.md``) keeps a ride code at about 293
characters, within the 320 of every OneCity code. Signatures are over a domain-separated
message (``OC1R/cert/v1\\0`` / ``OC1R/ride/v1\\0`` + the bytes before the signature) so neither
can be mistaken for a JWS signing input or for each other.

This module is the pure, copyable half: no database, no network, no server state. Like
:mod:`codes.verifier`, it imports only the standard library and ``cryptography``, so a validator
vendor can copy it. What the server adds (device registration, validator log uploads) is
:mod:`codes.ride_devices`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
import time
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "CERT_VERSION",
    "DEFAULT_CERT_LIFETIME_S",
    "DEFAULT_MAX_AGE_S",
    "MAX_CERT_BYTES",
    "MAX_CODE_CHARS",
    "RIDE_FORMAT",
    "RIDE_PREFIX",
    "CodeKeySigner",
    "DeviceCertificate",
    "Replay",
    "RideRecord",
    "RideVerification",
    "device_id_of",
    "find_replays",
    "issue_device_certificate",
    "make_ride_code",
    "parse_device_certificate",
    "verify_ride_code",
]

RIDE_PREFIX = "OC1R:"
MAX_CODE_CHARS = 320
CERT_VERSION = 0x01
RIDE_FORMAT = 0x01
DEFAULT_CERT_LIFETIME_S = 24 * 3600
#: How old a ride code may be when scanned; the app makes a new one for every scan.
DEFAULT_MAX_AGE_S = 60
DEFAULT_SKEW_S = 30

_CERT_CONTEXT = b"OC1R/cert/v1\x00"
_RIDE_CONTEXT = b"OC1R/ride/v1\x00"
_KEY_BYTES = 32
_SIG_BYTES = 64
_U32 = struct.Struct(">I")
_TIMES = struct.Struct(">II")
_MAX_FIELD = 64  # issuer, kid and subject are short ASCII strings
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
# Bytes a ride code may hold: 315 base64url characters after the 5-character prefix.
_MAX_CODE_BYTES = (MAX_CODE_CHARS - len(RIDE_PREFIX)) * 3 // 4
_RIDE_OVERHEAD = 1 + _TIMES.size + _SIG_BYTES  # format byte, counter + time, device signature
MAX_CERT_BYTES = _MAX_CODE_BYTES - _RIDE_OVERHEAD


class CodeKeySigner(Protocol):
    """What signs a certificate: a ``code`` key and its id (``core.signing.Ed25519Signer`` fits)."""

    @property
    def kid(self) -> str: ...

    @property
    def private_key(self) -> Ed25519PrivateKey: ...


@dataclass(frozen=True, slots=True)
class DeviceCertificate:
    """A parsed device certificate (see :func:`parse_device_certificate`).

    Attributes:
        issuer: City id, as the ``iss`` claim of codes.
        kid: The code key that signed it.
        subject: The holder's transit pseudonym (the ``sub`` of transit codes).
        device_public_key: Raw 32-byte Ed25519 public key of the device.
        not_before: Unix seconds.
        not_after: Unix seconds.
        signed: The bytes the code key signed (without the context prefix).
        signature: The code key's signature.
    """

    issuer: str
    kid: str
    subject: str
    device_public_key: bytes
    not_before: int
    not_after: int
    signed: bytes
    signature: bytes

    @property
    def raw(self) -> bytes:
        """The certificate as issued: the signed bytes followed by the signature."""
        return self.signed + self.signature

    @property
    def device_id(self) -> str:
        """Stable id of the device key (see :func:`device_id_of`)."""
        return device_id_of(self.device_public_key)


@dataclass(frozen=True, slots=True)
class RideVerification:
    """The outcome of :func:`verify_ride_code`.

    The identifying fields are set whenever both signatures checked out, even if the code is
    refused for its time (so the refusal can be logged); act on them only when ``valid``.
    """

    valid: bool
    reason: str | None
    issuer: str | None = None
    subject: str | None = None
    device_id: str | None = None
    counter: int | None = None
    at: int | None = None

    def record(self, *, validator_id: str, scanned_at: float, partner_id: str = "") -> RideRecord:
        """The log line a validator keeps for replay detection.

        Raises:
            ValueError: if the signatures did not check out (nothing trustworthy to log).
        """
        if self.device_id is None or self.counter is None or self.at is None:
            raise ValueError("no authenticated ride to record")
        return RideRecord(
            device_id=self.device_id,
            counter=self.counter,
            at=self.at,
            validator_id=validator_id,
            scanned_at=scanned_at,
            subject=self.subject,
            partner_id=partner_id,
        )


@dataclass(frozen=True, slots=True)
class RideRecord:
    """One accepted scan in a validator's log.

    ``validator_id`` is the partner's own name for its validator, so ``partner_id`` (empty on a
    single operator's validators) is part of the validator's identity: partner A's ``V1`` and
    partner B's ``V1`` are two validators.
    """

    device_id: str
    counter: int
    at: int
    validator_id: str
    scanned_at: float
    subject: str | None = None
    partner_id: str = ""


@dataclass(frozen=True, slots=True)
class Replay:
    """A ride code (device, counter) that was scanned more than once."""

    device_id: str
    counter: int
    records: tuple[RideRecord, ...]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    # Strict and canonical, for the same reason as in codes.verifier: one code, one spelling.
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc
    if _b64url(raw) != text:
        raise ValueError("non-canonical base64url")
    return raw


def _raw_public(key: Ed25519PublicKey | bytes) -> bytes:
    raw = key if isinstance(key, bytes) else key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    if len(raw) != _KEY_BYTES:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return raw


def device_id_of(device_public_key: Ed25519PublicKey | bytes) -> str:
    """A device's stable id: base64url of the first 12 bytes of SHA-256 of its public key.

    It stays the same across certificate renewals (same key), which is what lets replays be
    matched on ``(device id, counter)`` whatever certificate a ride code carried.
    """
    return _b64url(hashlib.sha256(_raw_public(device_public_key)).digest()[:12])


def _field(value: str, name: str) -> bytes:
    raw = value.encode("ascii")
    if not 1 <= len(raw) <= _MAX_FIELD:
        raise ValueError(f"{name} must be 1..{_MAX_FIELD} ASCII characters")
    return bytes([len(raw)]) + raw


class _Reader:
    """Cursor over a byte string; every read past the end raises ``ValueError``."""

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data = data
        self.offset = offset

    def take(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise ValueError("truncated")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def text(self) -> str:
        size = self.take(1)[0]
        if size == 0:
            raise ValueError("empty field")
        return self.take(size).decode("ascii")


def issue_device_certificate(
    signer: CodeKeySigner,
    *,
    device_public_key: Ed25519PublicKey | bytes,
    subject: str,
    issuer: str,
    now: float | None = None,
    lifetime_s: int = DEFAULT_CERT_LIFETIME_S,
) -> bytes:
    """Certify a device key for offline ride codes.

    Args:
        signer: The active ``code`` key (its ``kid`` goes into the certificate).
        device_public_key: The key the app registered (the caller checks proof of possession).
        subject: The holder's transit pseudonym.
        issuer: The city id.
        now: Unix time of issue (``not_before``); the system clock if omitted.
        lifetime_s: Validity; short, because a lost phone's certificate is only "revoked" by
            expiry for an offline validator.

    Returns:
        The certificate bytes (hand them to the app, e.g. base64url in a JSON response).

    Raises:
        ValueError: for bad arguments or a certificate too large to fit a ride code.
    """
    if not 0 < lifetime_s <= 7 * 24 * 3600:
        raise ValueError("certificate lifetime must be 1 s .. 7 days")
    not_before = int(time.time() if now is None else now)
    signed = (
        bytes([CERT_VERSION])
        + _field(issuer, "issuer")
        + _field(signer.kid, "kid")
        + _field(subject, "subject")
        + _raw_public(device_public_key)
        + _TIMES.pack(not_before, not_before + lifetime_s)
    )
    certificate = signed + signer.private_key.sign(_CERT_CONTEXT + signed)
    if len(certificate) > MAX_CERT_BYTES:
        raise ValueError(f"certificate is {len(certificate)} bytes; ride codes allow {MAX_CERT_BYTES}")
    return certificate


def _read_certificate(reader: _Reader) -> DeviceCertificate:
    start = reader.offset
    if reader.take(1)[0] != CERT_VERSION:
        raise ValueError("unknown certificate version")
    issuer, kid, subject = reader.text(), reader.text(), reader.text()
    device_key = reader.take(_KEY_BYTES)
    not_before, not_after = _TIMES.unpack(reader.take(_TIMES.size))
    signed = reader.data[start : reader.offset]
    signature = reader.take(_SIG_BYTES)
    if not_after <= not_before:
        raise ValueError("certificate ends before it starts")
    return DeviceCertificate(
        issuer=issuer,
        kid=kid,
        subject=subject,
        device_public_key=device_key,
        not_before=not_before,
        not_after=not_after,
        signed=signed,
        signature=signature,
    )


def parse_device_certificate(data: bytes) -> DeviceCertificate:
    """Parse certificate bytes (no signature check: that needs the code key).

    Raises:
        ValueError: if the bytes are not exactly one version-1 certificate.
    """
    reader = _Reader(data)
    try:
        certificate = _read_certificate(reader)
    except (UnicodeDecodeError, struct.error) as exc:
        raise ValueError("malformed certificate") from exc
    if reader.offset != len(data):
        raise ValueError("trailing bytes after certificate")
    return certificate


def make_ride_code(
    device_private_key: Ed25519PrivateKey,
    certificate: bytes,
    *,
    counter: int,
    now: float | None = None,
) -> str:
    """Make one ride code on the device, offline.

    Args:
        device_private_key: The device key the certificate names.
        certificate: From :func:`issue_device_certificate`.
        counter: Strictly increasing per device key (the app persists it); 0 .. 2**32-1.
        now: Unix time of the ride; the system clock if omitted.

    Returns:
        ``OC1R:`` + base64url of the ride code bytes (<= 320 characters).

    Raises:
        ValueError: if the certificate is malformed or names another key, or ``counter`` is
            out of range.
    """
    parsed = parse_device_certificate(certificate)
    if parsed.device_public_key != _raw_public(device_private_key.public_key()):
        raise ValueError("the certificate was issued for another device key")
    if not 0 <= counter <= 0xFFFFFFFF:
        raise ValueError("counter must fit in 32 bits")
    at = int(time.time() if now is None else now)
    body = bytes([RIDE_FORMAT]) + certificate + _TIMES.pack(counter, at)
    code = RIDE_PREFIX + _b64url(body + device_private_key.sign(_RIDE_CONTEXT + body))
    if len(code) > MAX_CODE_CHARS:  # pragma: no cover - issue_device_certificate bounds the size
        raise ValueError("ride code over budget")
    return code


def verify_ride_code(
    code: str,
    keys: Mapping[str, Ed25519PublicKey],
    *,
    now: float | None = None,
    skew_s: int = DEFAULT_SKEW_S,
    max_age_s: int = DEFAULT_MAX_AGE_S,
    trusted_issuers: Collection[str] | None = None,
) -> RideVerification:
    """Verify a ride code offline: certificate by the code key, ride by the device key, times.

    Args:
        code: The scanned ``OC1R:...`` text.
        keys: ``kid -> public key`` of OneCity's code keys (``codes.verifier.load_jwks``).
        now: Unix time of the scan; the system clock if omitted.
        skew_s: Clock tolerance for the certificate window and the ride time.
        max_age_s: How old the ride time may be.
        trusted_issuers: Accepted ``issuer`` values; any if omitted.

    Returns:
        A :class:`RideVerification` with reason ``malformed``, ``unknown_key``,
        ``bad_signature``, ``expired`` or ``not_yet_valid`` when invalid. Never raises for bad
        input. Replays are not detected here: see :func:`find_replays`.
    """
    if not isinstance(code, str) or len(code) > MAX_CODE_CHARS or not code.startswith(RIDE_PREFIX):
        return RideVerification(valid=False, reason="malformed")
    try:
        data = _b64url_decode(code[len(RIDE_PREFIX) :])
        reader = _Reader(data)
        if reader.take(1)[0] != RIDE_FORMAT:
            raise ValueError("unknown ride format")
        certificate = _read_certificate(reader)
        counter, at = _TIMES.unpack(reader.take(_TIMES.size))
        ride_signed = data[: reader.offset]
        ride_signature = reader.take(_SIG_BYTES)
        if reader.offset != len(data):
            raise ValueError("trailing bytes")
        device_key = Ed25519PublicKey.from_public_bytes(certificate.device_public_key)
    except (ValueError, UnicodeDecodeError, struct.error):
        return RideVerification(valid=False, reason="malformed")
    code_key = keys.get(certificate.kid)
    if code_key is None or (trusted_issuers is not None and certificate.issuer not in trusted_issuers):
        return RideVerification(valid=False, reason="unknown_key")
    try:
        code_key.verify(certificate.signature, _CERT_CONTEXT + certificate.signed)
        device_key.verify(ride_signature, _RIDE_CONTEXT + ride_signed)
    except InvalidSignature:
        return RideVerification(valid=False, reason="bad_signature")

    def result(reason: str | None) -> RideVerification:
        return RideVerification(
            valid=reason is None,
            reason=reason,
            issuer=certificate.issuer,
            subject=certificate.subject,
            device_id=certificate.device_id,
            counter=counter,
            at=at,
        )

    moment = time.time() if now is None else now
    # The certificate must cover both the scan and the ride, and the ride must be recent.
    if moment < certificate.not_before - skew_s or at < certificate.not_before - skew_s or at > moment + skew_s:
        return result("not_yet_valid")
    if (
        moment >= certificate.not_after + skew_s
        or at >= certificate.not_after + skew_s
        or moment - at > max_age_s + skew_s
    ):
        return result("expired")
    return result(None)


def find_replays(records: Iterable[RideRecord]) -> list[Replay]:
    """Ride codes (same device id and counter) scanned more than once, across validators.

    Identical records (the same log line uploaded twice) count once; two scans of one code at
    one validator at different times are a replay (passback). Validators are told apart by
    ``(partner_id, validator_id)``.

    Returns:
        One :class:`Replay` per duplicated ``(device_id, counter)``, sorted by that pair; each
        lists its records by scan time.
    """
    groups: defaultdict[tuple[str, int], set[RideRecord]] = defaultdict(set)
    for record in records:
        groups[(record.device_id, record.counter)].add(record)
    return [
        Replay(
            device_id=device_id,
            counter=counter,
            records=tuple(sorted(group, key=lambda r: (r.scanned_at, r.partner_id, r.validator_id))),
        )
        for (device_id, counter), group in sorted(groups.items())
        if len(group) > 1
    ]
