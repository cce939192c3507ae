"""``onecity verify``: check a scanned code offline against a code-key JWKS.

Usage::

    onecity verify 'OC1:eyJ...' --keys codes-keys.json [--type health] [--issuer cs]
    onecity verify 'OC1R:AQ...' --keys https://city.example/v1/codes/keys

Prints one JSON line (``valid``, ``reason``, ``code_type`` and what the code carries) and exits
0 for a valid code, 1 for an invalid one, 2 for a usage error or keys that cannot be loaded.
Both ``OC1:`` codes and ``OC1R:`` offline ride codes are understood.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.error import URLError

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from codes.ride import RIDE_PREFIX, verify_ride_code
from codes.verifier import API_NAMES, DEFAULT_SKEW_S, load_jwks, normalize_code_types, verify_code

__all__ = ["EXIT_INVALID", "EXIT_USAGE", "EXIT_VALID", "build_parser", "load_keys", "main"]

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_USAGE = 2

_MAX_JWKS_BYTES = 1 << 20  # a JWKS is a few hundred bytes; refuse to buffer anything huge
_FETCH_TIMEOUT_S = 10.0


class _UsageError(Exception):
    """Bad arguments or unusable keys: exit status 2."""


class _Parser(argparse.ArgumentParser):
    # argparse exits the process on errors; a main() that returns its status must not.
    def error(self, message: str) -> Any:
        raise _UsageError(message)


def build_parser(prog: str = "onecity verify") -> argparse.ArgumentParser:
    """The argument parser of :func:`main` (errors raise instead of exiting the process)."""
    parser = _Parser(prog=prog, description="Verify a OneCity code offline against the code-signing JWKS.")
    parser.add_argument("payload", help="the scanned text (OC1:... or OC1R:...), or - to read it from stdin")
    parser.add_argument("--keys", required=True, help="JWKS file path or http(s) URL (GET /v1/codes/keys)")
    parser.add_argument(
        "--type",
        action="append",
        dest="types",
        metavar="TYPE",
        choices=[*API_NAMES, *API_NAMES.values()],
        help="accepted code type (health, transit, socsec, citizen, venue); repeatable; any if omitted",
    )
    parser.add_argument("--issuer", action="append", dest="issuers", help="trusted issuer (iss); repeatable")
    parser.add_argument("--now", type=float, default=None, help="Unix time to verify at (default: now)")
    parser.add_argument("--skew", type=int, default=DEFAULT_SKEW_S, help="clock tolerance in seconds")
    parser.add_argument("--max-age", type=int, default=60, help="ride codes: maximum age in seconds")
    return parser


def load_keys(source: str) -> dict[str, Ed25519PublicKey]:
    """Load a JWKS from a file path or an ``http(s)://`` URL into ``kid -> key``.

    Raises:
        ValueError: if it cannot be read, is not JSON, or is not a JWKS with Ed25519 keys.
    """
    try:
        if source.startswith(("http://", "https://")):
            request = urllib.request.Request(source, headers={"Accept": "application/json"})  # noqa: S310 - scheme checked
            with urllib.request.urlopen(request, timeout=_FETCH_TIMEOUT_S) as response:  # noqa: S310 - scheme checked
                raw = response.read(_MAX_JWKS_BYTES + 1)
        else:
            raw = Path(source).read_bytes()
    except (OSError, URLError) as exc:
        raise ValueError(f"cannot read keys from {source}: {exc}") from exc
    if len(raw) > _MAX_JWKS_BYTES:
        raise ValueError("keys document is too large")
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"keys document is not JSON: {exc}") from exc
    keys = load_jwks(document)
    if not keys:
        raise ValueError("keys document holds no Ed25519 signing key")
    return keys


def _verify(payload: str, keys: Mapping[str, Ed25519PublicKey], args: argparse.Namespace) -> dict[str, Any]:
    types = normalize_code_types(args.types) if args.types else None
    if payload.startswith(RIDE_PREFIX):
        ride = verify_ride_code(
            payload, keys, now=args.now, skew_s=args.skew, max_age_s=args.max_age, trusted_issuers=args.issuers
        )
        valid, reason = ride.valid, ride.reason
        if valid and types is not None and "T" not in types:
            valid, reason = False, "wrong_type"  # ride codes are transit codes
        return {
            "valid": valid,
            "reason": reason,
            "code_type": "transit",
            "format": "ride",
            "issuer": ride.issuer,
            "subject": ride.subject,
            "device_id": ride.device_id,
            "counter": ride.counter,
            "at": ride.at,
        }
    result = verify_code(
        payload, keys, now=args.now, skew_s=args.skew, expected_types=types, trusted_issuers=args.issuers
    )
    return {
        "valid": result.valid,
        "reason": result.reason,
        "code_type": result.code_type,
        "format": "code",
        "claims": result.claims,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``onecity verify``; returns the exit status (0 valid, 1 invalid, 2 usage/keys)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        payload = sys.stdin.readline().strip() if args.payload == "-" else args.payload.strip()
        keys = load_keys(args.keys)
    except SystemExit as exc:  # --help
        return EXIT_VALID if exc.code in (0, None) else EXIT_USAGE
    except (_UsageError, ValueError) as exc:
        print(json.dumps({"error": str(exc)}, ensure_ascii=False), file=sys.stderr)
        return EXIT_USAGE
    outcome = _verify(payload, keys, args)
    print(json.dumps(outcome, ensure_ascii=False, separators=(",", ":")))
    return EXIT_VALID if outcome["valid"] else EXIT_INVALID


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
