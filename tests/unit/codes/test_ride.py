"""Offline ride codes: device certificates, the chain check, and replay detection."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import codes.ride
from codes.pseudonym import SUBJECT_BYTES
from codes.ride import (
    MAX_CERT_BYTES,
    RIDE_PREFIX,
    RideRecord,
    device_id_of,
    find_replays,
    issue_device_certificate,
    make_ride_code,
    parse_device_certificate,
    verify_ride_code,
)
from core.signing import Ed25519Signer, b64url_decode, b64url_encode

from .conftest import CODE_KID, NOW

Keys = dict[str, Ed25519PublicKey]
SUBJECT = "Zk9vQmFyQmF"  # an 11-character transit pseudonym, as codes.pseudonym makes
DAY = 86_400


@pytest.fixture
def device() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def certificate(signer: Ed25519Signer, device: Ed25519PrivateKey) -> bytes:
    return issue_device_certificate(
        signer, device_public_key=device.public_key(), subject=SUBJECT, issuer="cs", now=NOW, lifetime_s=DAY
    )


def test_round_trip(device: Ed25519PrivateKey, certificate: bytes, keys: Keys) -> None:
    code = make_ride_code(device, certificate, counter=41, now=NOW + 3600)
    assert code.startswith(RIDE_PREFIX)
    assert len(code) <= 320
    result = verify_ride_code(code, keys, now=NOW + 3605, trusted_issuers={"cs"})
    assert (result.valid, result.reason) == (True, None)
    assert (result.issuer, result.subject, result.counter, result.at) == ("cs", SUBJECT, 41, NOW + 3600)
    assert result.device_id == device_id_of(device.public_key())


def test_size_and_layout(device: Ed25519PrivateKey, certificate: bytes) -> None:
    assert len(SUBJECT) == len(b64url_encode(bytes(SUBJECT_BYTES)))
    parsed = parse_device_certificate(certificate)
    assert (parsed.issuer, parsed.kid, parsed.subject) == ("cs", CODE_KID, SUBJECT)
    assert (parsed.not_before, parsed.not_after) == (NOW, NOW + DAY)
    assert parsed.device_public_key == device.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert parsed.raw == certificate
    # 1 version + (1+2) iss + (1+22) kid + (1+11) sub + 32 key + 8 times + 64 signature
    assert len(certificate) == 143
    code = make_ride_code(device, certificate, counter=2**32 - 1, now=NOW)
    raw = b64url_decode(code.removeprefix(RIDE_PREFIX))
    assert len(raw) == 1 + 143 + 8 + 64
    assert raw[0] == 0x01
    assert raw[1 : 1 + len(certificate)] == certificate
    assert len(code) == 293


def test_device_id_is_stable_across_certificates(signer: Ed25519Signer, device: Ed25519PrivateKey) -> None:
    certs = [
        issue_device_certificate(signer, device_public_key=device.public_key(), subject=SUBJECT, issuer="cs", now=t)
        for t in (NOW, NOW + DAY)
    ]
    ids = {parse_device_certificate(c).device_id for c in certs}
    assert ids == {device_id_of(device.public_key())}
    assert len(next(iter(ids))) == 16


@pytest.mark.parametrize("position", [3, 40, 100, 150, 170, 215])
def test_tampered_byte_is_refused(device: Ed25519PrivateKey, certificate: bytes, keys: Keys, position: int) -> None:
    raw = bytearray(b64url_decode(make_ride_code(device, certificate, counter=1, now=NOW).removeprefix(RIDE_PREFIX)))
    raw[position] ^= 0x01
    result = verify_ride_code(RIDE_PREFIX + b64url_encode(bytes(raw)), keys, now=NOW)
    assert not result.valid
    # Flipping a length or kid byte may break the parse or the key look-up; never accepted.
    assert result.reason in {"bad_signature", "malformed", "unknown_key"}
    assert result.subject is None


def test_tampered_counter_or_time(device: Ed25519PrivateKey, certificate: bytes, keys: Keys) -> None:
    raw = bytearray(b64url_decode(make_ride_code(device, certificate, counter=7, now=NOW).removeprefix(RIDE_PREFIX)))
    offset = 1 + len(certificate)
    raw[offset + 3] = 8  # counter 7 -> 8: a "fresh" code from a copied one
    assert verify_ride_code(RIDE_PREFIX + b64url_encode(bytes(raw)), keys, now=NOW).reason == "bad_signature"


def test_certificate_forged_by_the_device(device: Ed25519PrivateKey, keys: Keys) -> None:
    # The device signs its own certificate, naming the real code kid: refused.
    self_signed = issue_device_certificate(
        Ed25519Signer(CODE_KID, device), device_public_key=device.public_key(), subject="someone-else", issuer="cs"
    )
    code = make_ride_code(device, self_signed, counter=1, now=NOW)
    assert verify_ride_code(code, keys, now=NOW).reason == "bad_signature"


def test_another_devices_key(certificate: bytes, keys: Keys) -> None:
    thief = Ed25519PrivateKey.generate()
    with pytest.raises(ValueError, match="another device key"):
        make_ride_code(thief, certificate, counter=1, now=NOW)
    # Forging the layout by hand: certificate of the victim, signature of the thief.
    import codes.ride as ride

    body = bytes([ride.RIDE_FORMAT]) + certificate + ride._TIMES.pack(1, NOW)
    forged = RIDE_PREFIX + b64url_encode(body + thief.sign(ride._RIDE_CONTEXT + body))
    assert verify_ride_code(forged, keys, now=NOW).reason == "bad_signature"


def test_unknown_code_key(device: Ed25519PrivateKey) -> None:
    other = Ed25519Signer("code-20990101-ffffffff", Ed25519PrivateKey.generate())
    cert = issue_device_certificate(other, device_public_key=device.public_key(), subject=SUBJECT, issuer="cs", now=NOW)
    code = make_ride_code(device, cert, counter=1, now=NOW)
    assert verify_ride_code(code, {}, now=NOW).reason == "unknown_key"


def test_wrong_key_under_the_right_kid(device: Ed25519PrivateKey, keys: Keys) -> None:
    impostor = Ed25519Signer(CODE_KID, Ed25519PrivateKey.generate())
    cert = issue_device_certificate(
        impostor, device_public_key=device.public_key(), subject=SUBJECT, issuer="cs", now=NOW
    )
    assert verify_ride_code(make_ride_code(device, cert, counter=1, now=NOW), keys, now=NOW).reason == "bad_signature"


def test_untrusted_issuer(device: Ed25519PrivateKey, certificate: bytes, keys: Keys) -> None:
    code = make_ride_code(device, certificate, counter=1, now=NOW)
    assert verify_ride_code(code, keys, now=NOW, trusted_issuers={"sz"}).reason == "unknown_key"


@pytest.mark.parametrize(
    ("ride_at", "scan_at", "reason"),
    [
        (NOW + 100, NOW + 100, None),
        (NOW + DAY - 10, NOW + DAY + 10, None),  # certificate just ended, within skew
        (NOW + DAY - 10, NOW + DAY + 30, "expired"),  # expired certificate
        (NOW + DAY + 40, NOW + DAY + 40, "expired"),  # ride made after the certificate ended
        (NOW + 100, NOW + 100 + 60 + 31, "expired"),  # stale ride code (max age 60 + skew 30)
        (NOW + 100, NOW + 100 + 60 + 30, None),
        (NOW + 200, NOW + 100, "not_yet_valid"),  # ride dated in the scanner's future
        (NOW - 100, NOW - 100, "not_yet_valid"),  # before the certificate began
    ],
)
def test_time_checks(
    device: Ed25519PrivateKey, certificate: bytes, keys: Keys, ride_at: int, scan_at: int, reason: str | None
) -> None:
    code = make_ride_code(device, certificate, counter=1, now=ride_at)
    result = verify_ride_code(code, keys, now=scan_at)
    assert result.reason == reason
    assert result.valid is (reason is None)
    assert result.subject == SUBJECT  # authentic, so the refusal can be logged


@pytest.mark.parametrize(
    "code",
    ["", "OC1:abc", "OC1R:", "OC1R:!!!", "OC1R:AQ", "OC1R:" + "A" * 300, "OC1R:" + "A" * 316],
)
def test_malformed(code: str, keys: Keys) -> None:
    assert verify_ride_code(code, keys, now=NOW).reason == "malformed"


def test_trailing_bytes_are_malformed(device: Ed25519PrivateKey, certificate: bytes, keys: Keys) -> None:
    raw = b64url_decode(make_ride_code(device, certificate, counter=1, now=NOW).removeprefix(RIDE_PREFIX))
    assert verify_ride_code(RIDE_PREFIX + b64url_encode(raw + b"\x00"), keys, now=NOW).reason == "malformed"
    with pytest.raises(ValueError, match="trailing"):
        parse_device_certificate(certificate + b"\x00")
    with pytest.raises(ValueError, match="truncated"):
        parse_device_certificate(certificate[:-1])


def test_issue_arguments_are_checked(signer: Ed25519Signer, device: Ed25519PrivateKey, certificate: bytes) -> None:
    public = device.public_key()
    with pytest.raises(ValueError, match="lifetime"):
        issue_device_certificate(signer, device_public_key=public, subject=SUBJECT, issuer="cs", lifetime_s=0)
    with pytest.raises(ValueError, match="subject"):
        issue_device_certificate(signer, device_public_key=public, subject="", issuer="cs")
    with pytest.raises(ValueError, match="32 bytes"):
        issue_device_certificate(signer, device_public_key=b"short", subject=SUBJECT, issuer="cs")
    with pytest.raises(ValueError, match="ride codes allow"):
        issue_device_certificate(signer, device_public_key=public, subject="s" * 64, issuer="c" * 30)
    with pytest.raises(ValueError, match="32 bits"):
        make_ride_code(device, certificate, counter=2**32, now=NOW)
    assert MAX_CERT_BYTES == 236 - 73


def _record(device_id: str, counter: int, validator: str, scanned_at: float) -> RideRecord:
    return RideRecord(
        device_id=device_id, counter=counter, at=int(scanned_at), validator_id=validator, scanned_at=scanned_at
    )


def test_find_replays_across_validators(device: Ed25519PrivateKey, certificate: bytes, keys: Keys) -> None:
    code = make_ride_code(device, certificate, counter=5, now=NOW)
    # The same code shown at two buses (a screenshot shared with a friend).
    bus_1 = verify_ride_code(code, keys, now=NOW + 5).record(validator_id="bus-1", scanned_at=NOW + 5)
    bus_2 = verify_ride_code(code, keys, now=NOW + 9).record(validator_id="bus-2", scanned_at=NOW + 9)
    fresh = verify_ride_code(make_ride_code(device, certificate, counter=6, now=NOW + 20), keys, now=NOW + 21)
    honest = fresh.record(validator_id="bus-1", scanned_at=NOW + 21)
    other = _record("other-device", 5, "bus-1", NOW + 5)  # same counter, different device: fine

    replays = find_replays([bus_1, honest, other, bus_2, bus_1])  # bus_1's log uploaded twice
    assert len(replays) == 1
    replay = replays[0]
    assert (replay.device_id, replay.counter) == (device_id_of(device.public_key()), 5)
    assert replay.records == (bus_1, bus_2)
    assert replay.records[0].subject == SUBJECT


def test_find_replays_same_validator_twice_is_passback() -> None:
    first, second = _record("d", 1, "gate-3", NOW), _record("d", 1, "gate-3", NOW + 40)
    assert [r.records for r in find_replays([second, first])] == [(first, second)]
    assert find_replays([first, first]) == []
    assert find_replays([]) == []


def test_record_requires_an_authentic_ride(keys: Keys) -> None:
    with pytest.raises(ValueError, match="no authenticated ride"):
        verify_ride_code("OC1R:AQ", keys, now=NOW).record(validator_id="v", scanned_at=NOW)


def test_ride_module_stands_alone() -> None:
    tree = ast.parse(Path(codes.ride.__file__).read_text())
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            assert node.module is not None
            roots.add(node.module.split(".")[0])
    assert {r for r in roots if r not in sys.stdlib_module_names} == {"cryptography"}


def test_find_replays_tells_validators_of_different_partners_apart() -> None:
    # Partner A's "V1" and partner B's "V1" logged the same code at the same second: two scans.
    a = RideRecord(device_id="d", counter=1, at=NOW, validator_id="V1", scanned_at=NOW + 1, partner_id="a")
    b = RideRecord(device_id="d", counter=1, at=NOW, validator_id="V1", scanned_at=NOW + 1, partner_id="b")
    assert [r.records for r in find_replays([b, a, a])] == [(a, b)]
    # Without partners (one operator's merged logs) they are one line, as before.
    same = RideRecord(device_id="d", counter=1, at=NOW, validator_id="V1", scanned_at=NOW + 1)
    assert find_replays([same, same]) == []
