"""Checking ride-log lines off the event loop: in worker processes, in a thread, after a crash."""

from __future__ import annotations

import os
import signal

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from codes.ride import device_id_of, issue_device_certificate, make_ride_code
from codes.ride_check import RideLogChecker, check_lines, raw_keys
from core.signing import Ed25519Signer

from .conftest import NOW

SUBJECT = "Zk9vQmFyQmF"
DAY = 86_400


@pytest.fixture
def device() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def lines(signer: Ed25519Signer, device: Ed25519PrivateKey) -> list[tuple[str, float]]:
    certificate = issue_device_certificate(
        signer, device_public_key=device.public_key(), subject=SUBJECT, issuer="cs", now=NOW - 600, lifetime_s=DAY
    )
    good = [(make_ride_code(device, certificate, counter=n, now=NOW - 20), NOW - 10.0) for n in range(600)]
    good[3] = (good[3][0], NOW + 3600.0)  # scanned an hour ahead of the server's clock
    good[400] = (good[400][0], NOW - 30 * DAY)  # far older than any certificate
    good[599] = ("OC1R:xyz", NOW - 10.0)
    return good


def _expected(lines: list[tuple[str, float]], device: Ed25519PrivateKey) -> list[object]:
    """Accepted lines as ``(device id, counter, ride time, subject)``, refused ones as reasons."""
    reasons = {3: "scanned_in_future", 400: "upload_too_late", 599: "malformed"}
    device_id = device_id_of(device.public_key())
    return [reasons.get(i, (device_id, i, NOW - 20, SUBJECT)) for i in range(len(lines))]


def test_each_line_is_judged_on_its_own(
    lines: list[tuple[str, float]], keys: dict[str, Ed25519PublicKey], device: Ed25519PrivateKey
) -> None:
    out = check_lines(lines, raw_keys(keys), now=NOW, skew_s=30, oldest=NOW - 4 * DAY)
    assert out == _expected(lines, device)


@pytest.mark.parametrize("processes", [0, 2])
async def test_the_checker_keeps_the_order_of_the_lines(
    lines: list[tuple[str, float]], keys: dict[str, Ed25519PublicKey], device: Ed25519PrivateKey, processes: int
) -> None:
    checker = RideLogChecker(processes)
    try:
        out = await checker.check(lines, raw_keys(keys), now=NOW, skew_s=30, oldest=NOW - 4 * DAY)
    finally:
        await checker.close()
    assert out == _expected(lines, device)


async def test_a_killed_worker_process_is_replaced(
    lines: list[tuple[str, float]], keys: dict[str, Ed25519PublicKey], device: Ed25519PrivateKey
) -> None:
    checker = RideLogChecker(1)
    expected = _expected(lines, device)
    try:
        assert await checker.check(lines, raw_keys(keys), now=NOW, skew_s=30, oldest=NOW - 4 * DAY) == expected
        executor = checker._executor
        assert executor is not None
        for pid in list(executor._processes):  # type: ignore[attr-defined]  # what an OOM kill does
            os.kill(pid, signal.SIGKILL)
        # The next upload finds the pool broken, starts a new one and is answered in full.
        assert await checker.check(lines, raw_keys(keys), now=NOW, skew_s=30, oldest=NOW - 4 * DAY) == expected
        assert checker._executor is not executor
    finally:
        await checker.close()
