"""Offline ride codes: device certificates with proof of possession, log uploads, replays."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bff.cli import main as onecity
from bff.settings import Settings
from codes.ride import (
    device_id_of,
    issue_device_certificate,
    make_ride_code,
    parse_device_certificate,
    verify_ride_code,
)
from codes.ride_devices import POP_CONTEXT
from codes.schemas import RIDE_LOG_MAX_BYTES, RIDE_LOG_MAX_LINES
from core.db import Pool
from core.signing import Ed25519Signer, b64url_encode
from services.departments.sms import SmsGateway
from tests.integration.codes.conftest import LI_SI, ZHANG_SAN, App, Demo, PartnerHeaders, code_keys, issue
from tests.support.citizens import bearer, login


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


async def _register(app: App, headers: dict[str, str], key: Ed25519PrivateKey) -> Any:
    challenge = await app.client.post("/v1/me/ride-devices/challenge", headers=headers)
    assert challenge.status_code == 200, challenge.text
    nonce = challenge.json()["nonce"]
    signature = key.sign(POP_CONTEXT + nonce.encode() + _raw(key))
    return await app.client.post(
        "/v1/me/ride-devices",
        json={"public_key": b64url_encode(_raw(key)), "nonce": nonce, "signature": b64url_encode(signature)},
        headers=headers,
    )


def _certificate(body: dict[str, Any]) -> bytes:
    text: str = body["certificate"]
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def test_device_certificate_makes_offline_ride_codes(app: App, demo: Demo) -> None:
    key = Ed25519PrivateKey.generate()
    response = await _register(app, demo[ZHANG_SAN], key)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["device_id"] == device_id_of(_raw(key))
    certificate = parse_device_certificate(_certificate(body))
    # The certificate names the holder by the transit pseudonym, the sub of transit codes.
    transit = await issue(app.client, demo[ZHANG_SAN], "transit")
    claims_part = transit["payload"][4:].split(".")[1]
    sub = json.loads(base64.urlsafe_b64decode(claims_part + "=" * (-len(claims_part) % 4)))["sub"]
    assert certificate.subject == sub and certificate.issuer == "cs"
    ride = make_ride_code(key, _certificate(body), counter=1)
    assert len(ride) <= 320
    result = verify_ride_code(ride, await code_keys(app.client), trusted_issuers={"cs"})
    assert result.valid, result.reason
    # Renewal with the same key works (a new nonce each time).
    assert (await _register(app, demo[ZHANG_SAN], key)).status_code == 200


async def test_proof_of_possession_is_required(app: App, demo: Demo) -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    challenge = (await app.client.post("/v1/me/ride-devices/challenge", headers=demo[ZHANG_SAN])).json()
    nonce = challenge["nonce"]
    forged = other.sign(POP_CONTEXT + nonce.encode() + _raw(key))  # signed by a key we do not claim
    body = {"public_key": b64url_encode(_raw(key)), "nonce": nonce, "signature": b64url_encode(forged)}
    response = await app.client.post("/v1/me/ride-devices", json=body, headers=demo[ZHANG_SAN])
    assert response.status_code == 422
    # The nonce was spent by that attempt.
    good = key.sign(POP_CONTEXT + nonce.encode() + _raw(key))
    body["signature"] = b64url_encode(good)
    assert (await app.client.post("/v1/me/ride-devices", json=body, headers=demo[ZHANG_SAN])).status_code == 401
    # Someone else's nonce is not ours.
    theirs = (await app.client.post("/v1/me/ride-devices/challenge", headers=demo[LI_SI])).json()["nonce"]
    body = {
        "public_key": b64url_encode(_raw(key)),
        "nonce": theirs,
        "signature": b64url_encode(key.sign(POP_CONTEXT + theirs.encode() + _raw(key))),
    }
    assert (await app.client.post("/v1/me/ride-devices", json=body, headers=demo[ZHANG_SAN])).status_code == 401
    bad = {"public_key": "AAAA", "nonce": "x" * 20, "signature": "AAAA"}
    assert (await app.client.post("/v1/me/ride-devices", json=bad, headers=demo[ZHANG_SAN])).status_code in (401, 422)


async def test_device_rules(app: App, demo: Demo, sms: SmsGateway) -> None:
    key = Ed25519PrivateKey.generate()
    assert (await _register(app, demo[ZHANG_SAN], key)).status_code == 200
    assert (await _register(app, demo[LI_SI], key)).status_code == 409  # one key, one account
    device_id = device_id_of(_raw(key))
    assert (await app.client.delete(f"/v1/me/ride-devices/{device_id}", headers=demo[LI_SI])).status_code == 404
    assert (await app.client.delete(f"/v1/me/ride-devices/{device_id}", headers=demo[ZHANG_SAN])).status_code == 204
    assert (await _register(app, demo[ZHANG_SAN], key)).status_code == 403  # revoked: a new key is needed
    l2 = bearer((await login(app.client, sms, "13900000066"))["access_token"])
    assert (await app.client.post("/v1/me/ride-devices/challenge", headers=l2)).status_code == 401


async def test_uploaded_logs_reveal_replays_across_validators(
    app: App, demo: Demo, partner: PartnerHeaders, pool: Pool
) -> None:
    key = Ed25519PrivateKey.generate()
    certificate = _certificate((await _register(app, demo[ZHANG_SAN], key)).json())
    now = time.time()
    shared = make_ride_code(key, certificate, counter=7, now=now - 20)  # a screenshot shown twice
    honest = make_ride_code(key, certificate, counter=8, now=now - 10)
    bus = partner("bus-operator")
    first = await app.client.post(
        "/v1/codes/ride-logs",
        json={"validator_id": "bus-12", "rides": [{"code": shared, "scanned_at": now - 15}]},
        headers=bus,
    )
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 1, "duplicates": 0, "rejected": [], "replays": []}
    metro = partner("metro-operator")
    second = await app.client.post(
        "/v1/codes/ride-logs",
        json={
            "validator_id": "gate-3",
            "rides": [{"code": shared, "scanned_at": now - 5}, {"code": honest, "scanned_at": now - 4}],
        },
        headers=metro,
    )
    assert second.status_code == 200, second.text
    result = second.json()
    assert result["accepted"] == 2 and len(result["replays"]) == 1
    replay = result["replays"][0]
    assert replay["device_id"] == device_id_of(_raw(key)) and replay["counter"] == 7
    assert [(s["validator_id"], s["partner_id"]) for s in replay["scans"]] == [
        ("bus-12", "bus-operator"),
        ("gate-3", "metro-operator"),
    ]
    # The device is flagged: no renewed certificate.
    assert await pool.fetchval("SELECT flagged_at IS NOT NULL FROM transit_devices") is True
    assert (await _register(app, demo[ZHANG_SAN], key)).status_code == 403
    # The same log uploaded again changes nothing.
    again = await app.client.post(
        "/v1/codes/ride-logs",
        json={"validator_id": "bus-12", "rides": [{"code": shared, "scanned_at": now - 15}]},
        headers=bus,
    )
    assert again.json()["accepted"] == 0 and again.json()["duplicates"] == 1
    assert await pool.fetchval("SELECT count(*) FROM ride_records") == 3


async def test_uploads_are_verified(app: App, demo: Demo, partner: PartnerHeaders) -> None:
    key = Ed25519PrivateKey.generate()
    certificate = _certificate((await _register(app, demo[ZHANG_SAN], key)).json())
    now = time.time()
    ride = make_ride_code(key, certificate, counter=1, now=now)
    tampered = ride[:-4] + ("AAAA" if not ride.endswith("AAAA") else "BBBB")
    rides = [
        {"code": tampered, "scanned_at": now},
        {"code": ride, "scanned_at": now + 3600},  # "scanned" an hour from now
        {"code": "OC1R:xyz", "scanned_at": now},
        {"code": ride, "scanned_at": now + 1},
    ]
    response = await app.client.post(
        "/v1/codes/ride-logs", json={"validator_id": "gate-1", "rides": rides}, headers=partner()
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 1
    assert [(r["index"], r["reason"]) for r in body["rejected"]] == [
        (0, "bad_signature"),
        (1, "scanned_in_future"),
        (2, "malformed"),
    ]
    assert (await app.client.post("/v1/codes/ride-logs", json={"validator_id": "g", "rides": rides})).status_code == 401
    no_scope = partner(scope="venues:write")
    response = await app.client.post(
        "/v1/codes/ride-logs", json={"validator_id": "g", "rides": rides}, headers=no_scope
    )
    assert response.status_code == 403
    empty = await app.client.post("/v1/codes/ride-logs", json={"validator_id": "g", "rides": []}, headers=partner())
    assert empty.status_code == 400


async def test_scan_times_are_bounded_by_the_server_clock_per_line(
    app: App, demo: Demo, partner: PartnerHeaders, code_signer: Ed25519Signer
) -> None:
    key = Ed25519PrivateKey.generate()
    body = (await _register(app, demo[ZHANG_SAN], key)).json()
    now = time.time()
    # A certificate (genuinely signed by the city's code key) from five days ago: its rides
    # verify on their own, but a log line that old is past the upload window (24 h + 72 h).
    old_certificate = issue_device_certificate(
        code_signer,
        device_public_key=_raw(key),
        subject=parse_device_certificate(_certificate(body)).subject,
        issuer="cs",
        now=now - 5 * 86400,
    )
    stale = make_ride_code(key, old_certificate, counter=1, now=now - 5 * 86400 + 60)
    future = make_ride_code(key, _certificate(body), counter=2, now=now + 600)
    good = make_ride_code(key, _certificate(body), counter=3, now=now - 2)
    rides = [
        {"code": stale, "scanned_at": now - 5 * 86400 + 70},
        {"code": future, "scanned_at": now + 610},  # the validator's clock runs 10 minutes ahead
        {"code": good, "scanned_at": now},
    ]
    response = await app.client.post(
        "/v1/codes/ride-logs", json={"validator_id": "bus-1", "rides": rides}, headers=partner()
    )
    assert response.status_code == 200, response.text
    result = response.json()
    # The good line of the batch is kept; each bad one is named with its reason.
    assert result["accepted"] == 1
    assert [(r["index"], r["reason"]) for r in result["rejected"]] == [(0, "upload_too_late"), (1, "scanned_in_future")]


async def test_validators_are_named_per_partner(app: App, demo: Demo, partner: PartnerHeaders, pool: Pool) -> None:
    key = Ed25519PrivateKey.generate()
    certificate = _certificate((await _register(app, demo[ZHANG_SAN], key)).json())
    now = time.time()
    shared = make_ride_code(key, certificate, counter=5, now=now - 10)
    line = {"validator_id": "V1", "rides": [{"code": shared, "scanned_at": now - 5}]}
    first = await app.client.post("/v1/codes/ride-logs", json=line, headers=partner("bus-a"))
    assert first.json()["accepted"] == 1
    # Partner B's own "V1" scanned the same code at the same second: another validator, so the
    # line is stored (not a duplicate of A's) and the cross-partner replay is seen.
    second = await app.client.post("/v1/codes/ride-logs", json=line, headers=partner("bus-b"))
    assert second.status_code == 200, second.text
    result = second.json()
    assert result["accepted"] == 1 and result["duplicates"] == 0
    assert len(result["replays"]) == 1 and result["replays"][0]["cross_partner"] is True
    assert [(s["partner_id"], s["validator_id"]) for s in result["replays"][0]["scans"]] == [
        ("bus-a", "V1"),
        ("bus-b", "V1"),
    ]
    assert await pool.fetchval("SELECT count(*) FROM ride_records") == 2
    assert await pool.fetchval("SELECT flagged_at IS NOT NULL FROM transit_devices") is True


async def test_one_partner_alone_cannot_get_a_device_flagged(
    app: App, demo: Demo, partner: PartnerHeaders, pool: Pool, settings: Settings
) -> None:
    key = Ed25519PrivateKey.generate()
    certificate = _certificate((await _register(app, demo[ZHANG_SAN], key)).json())
    now = time.time()
    ride = make_ride_code(key, certificate, counter=9, now=now - 30)
    rogue = partner("rogue-operator")
    for validator, scanned in (("gate-1", now - 25), ("gate-2", now - 20)):
        response = await app.client.post(
            "/v1/codes/ride-logs",
            json={"validator_id": validator, "rides": [{"code": ride, "scanned_at": scanned}]},
            headers=rogue,
        )
        assert response.status_code == 200, response.text
    replays = response.json()["replays"]
    # The partner is told about the replay on its own validators, but the citizen's device is
    # not flagged: a certificate is still issued.
    assert len(replays) == 1 and replays[0]["cross_partner"] is False
    assert await pool.fetchval("SELECT flagged_at FROM transit_devices") is None
    assert (await _register(app, demo[ZHANG_SAN], key)).status_code == 200

    # After review, an operator flags the device by hand.
    def flag(device_id: str) -> int:
        return onecity(["codes", "device", "flag", device_id], settings=settings)

    assert await asyncio.to_thread(flag, replays[0]["device_id"]) == 0
    assert await asyncio.to_thread(flag, "no-such-device") == 1
    assert (await _register(app, demo[ZHANG_SAN], key)).status_code == 403
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'codes.device.flag'") == 1


async def test_a_one_mebibyte_upload_is_checked_line_by_line(
    app: App, demo: Demo, partner: PartnerHeaders, pool: Pool
) -> None:
    key = Ed25519PrivateKey.generate()
    certificate = _certificate((await _register(app, demo[ZHANG_SAN], key)).json())
    now = time.time()
    good = make_ride_code(key, certificate, counter=0, now=now - 20)
    tampered = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    # A few bad lines spread through a log of good ones, filled up to (not over) 1 MiB.
    bad = {
        7: ({"code": tampered, "scanned_at": now - 10}, "bad_signature"),
        1000: ({"code": good, "scanned_at": now + 3600}, "scanned_in_future"),
        2000: ({"code": "OC1R:xyz", "scanned_at": now - 10}, "malformed"),
        2500: ({"code": good, "scanned_at": now - 30 * 86400}, "upload_too_late"),
    }
    rides: list[dict[str, Any]] = []
    size = len(json.dumps({"validator_id": "gate-9", "rides": []}))
    counter = 1
    while True:
        line = bad[len(rides)][0] if len(rides) in bad else None
        if line is None:
            line = {"code": make_ride_code(key, certificate, counter=counter, now=now - 20), "scanned_at": now - 10}
            counter += 1
        added = len(json.dumps(line)) + 2  # ", " between lines
        if size + added > 1024 * 1024:
            break
        rides.append(line)
        size += added
    body = json.dumps({"validator_id": "gate-9", "rides": rides}).encode()
    assert 1024 * 1024 - 1024 < len(body) <= 1024 * 1024 and len(rides) > 2500
    headers = {**partner(), "content-type": "application/json"}

    response = await app.client.post("/v1/codes/ride-logs", content=body, headers=headers)

    assert response.status_code == 200, response.text
    result = response.json()
    assert [(r["index"], r["reason"]) for r in result["rejected"]] == [(i, reason) for i, (_, reason) in bad.items()]
    assert result["accepted"] == len(rides) - len(bad) and result["duplicates"] == 0 and result["replays"] == []
    assert await pool.fetchval("SELECT count(*) FROM ride_records WHERE validator_id = 'gate-9'") == len(rides) - len(
        bad
    )


async def test_the_size_of_an_upload_is_bounded(app: App, partner: PartnerHeaders) -> None:
    line = {"code": "OC1R:xyz", "scanned_at": time.time()}
    too_many = await app.client.post(
        "/v1/codes/ride-logs",
        json={"validator_id": "gate-9", "rides": [line] * (RIDE_LOG_MAX_LINES + 1)},
        headers=partner(),
    )
    assert too_many.status_code == 400
    assert too_many.json()["type"].endswith("/validation-error")
    # The most lines allowed are answered line by line.
    most = await app.client.post(
        "/v1/codes/ride-logs", json={"validator_id": "gate-9", "rides": [line] * RIDE_LOG_MAX_LINES}, headers=partner()
    )
    assert most.status_code == 200, most.text
    assert len(most.json()["rejected"]) == RIDE_LOG_MAX_LINES
    too_large = await app.client.post(
        "/v1/codes/ride-logs",
        content=b'{"validator_id": "gate-9", "rides": [' + b" " * RIDE_LOG_MAX_BYTES + b"]}",
        headers={**partner(), "content-type": "application/json"},
    )
    assert too_large.status_code == 413
    assert too_large.json()["type"].endswith("/payload-too-large")
