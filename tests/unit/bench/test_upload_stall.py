"""The upload-stall benchmark's log: 1 MiB of valid, distinct ride codes."""

from __future__ import annotations

import json
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.upload_stall import _log, _summary
from codes.ride import issue_device_certificate, verify_ride_code
from codes.verifier import load_jwks
from core.signing import Ed25519Signer


def test_the_log_fills_one_mebibyte_with_valid_distinct_rides() -> None:
    signer = Ed25519Signer("code-20250301-9f1c2ab4", Ed25519PrivateKey.generate())
    device = Ed25519PrivateKey.generate()
    certificate = issue_device_certificate(
        signer, device_public_key=device.public_key(), subject="Zk9vQmFyQmF", issuer="cs", now=time.time() - 60
    )
    body, lines = _log(device, certificate, 10_000, "bench-1")
    assert 1024 * 1024 - 1024 < len(body) <= 1024 * 1024
    decoded = json.loads(body)
    assert decoded["validator_id"] == "bench-1" and len(decoded["rides"]) == lines > 2500
    keys = load_jwks({"keys": [signer.jwk()]})
    results = [verify_ride_code(r["code"], keys, now=r["scanned_at"]) for r in decoded["rides"][:: lines // 10]]
    assert all(r.valid for r in results)
    assert len({r.counter for r in results}) == len(results)


def test_the_summary_reports_max_p99_and_median_in_milliseconds() -> None:
    assert _summary([0.001] * 99 + [0.020]) == {"probes": 100, "max_ms": 20.0, "p99_ms": 20.0, "p50_ms": 1.0}
