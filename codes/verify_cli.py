"""``onecity verify``: check a scanned code offline against a code-key JWKS.

Usage::

    onecity verify 'OC1:eyJ...' --keys codes-keys.json [--type health] [--issuer cs]
    onecity verify 'OC1R:AQ...' --keys https://city.example/v1/codes/keys

Prints one JSON line (``valid``, ``reason``, ``code_type`` and what the code carries) and exits
0 for a valid code, 1 for an invalid one, 2 for a usage error or keys that cannot be loaded.
Both ``OC1:`` codes and ``OC1R:`` offline ride codes are understood.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.error import URLError

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from codes.ride import RIDE_PREFIX, verify_ride_code
from codes.verifier import API_NAMES, DEFAULT_SKEW_S, load_jwks, normalize_code_types, verify_code
from core.cli import invoke

__all__ = ["EXIT_INVALID", "EXIT_USAGE", "EXIT_VALID", "load_keys", "main", "verify"]

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_USAGE = 2

_MAX_JWKS_BYTES = 1 << 20  # a JWKS is a few hundred bytes; refuse to buffer anything huge
_FETCH_TIMEOUT_S = 10.0


class _UsageError(click.ClickException):
    """Bad arguments or unusable keys: one JSON line on stderr, exit status 2."""

    exit_code = EXIT_USAGE

    def show(self, file: Any = None) -> None:
        click.echo(json.dumps({"error": self.message}, ensure_ascii=False), file=file, err=file is None)


class _JsonUsageErrors(click.Command):
    # A verifier's caller reads stderr as JSON whatever went wrong, usage included.
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _UsageError(exc.format_message()) from None


@click.command(
    cls=_JsonUsageErrors,
    short_help="verify a scanned code offline against the code keys (JWKS file or URL)",
    help="Verify a OneCity code offline against the code-signing JWKS. PAYLOAD is the scanned text "
    "(OC1:... or OC1R:...), or - to read it from stdin.",
)
@click.argument("payload")
@click.option("--keys", required=True, help="JWKS file path or http(s) URL (GET /v1/codes/keys)")
@click.option(
    "--type",
    "types",
    multiple=True,
    metavar="TYPE",
    type=click.Choice([*API_NAMES, *API_NAMES.values()]),
    help="accepted code type (health, transit, socsec, citizen, venue); repeatable; any if omitted",
)
@click.option("--issuer", "issuers", multiple=True, help="trusted issuer (iss); repeatable")
@click.option("--now", type=float, default=None, help="Unix time to verify at (default: now)")
@click.option("--skew", type=int, default=DEFAULT_SKEW_S, help="clock tolerance in seconds")
@click.option("--max-age", type=int, default=60, help="ride codes: maximum age in seconds")
def verify(
    payload: str,
    keys: str,
    types: tuple[str, ...],
    issuers: tuple[str, ...],
    now: float | None,
    skew: int,
    max_age: int,
) -> int:
    """Print one JSON line; exit 0 for a valid code, 1 for an invalid one."""
    scanned = sys.stdin.readline().strip() if payload == "-" else payload.strip()
    try:
        loaded = load_keys(keys)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    outcome = _verify(
        scanned, loaded, types=types, issuers=list(issuers) or None, now=now, skew_s=skew, max_age_s=max_age
    )
    click.echo(json.dumps(outcome, ensure_ascii=False, separators=(",", ":")))
    return EXIT_VALID if outcome["valid"] else EXIT_INVALID


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


def _verify(
    payload: str,
    keys: Mapping[str, Ed25519PublicKey],
    *,
    types: Sequence[str],
    issuers: list[str] | None,
    now: float | None,
    skew_s: int,
    max_age_s: int,
) -> dict[str, Any]:
    expected = normalize_code_types(types) if types else None
    if payload.startswith(RIDE_PREFIX):
        ride = verify_ride_code(
            payload,
            keys,
            now=now,
            skew_s=skew_s,
            max_age_s=max_age_s,
            trusted_issuers=issuers,
        )
        valid, reason = ride.valid, ride.reason
        if valid and expected is not None and "T" not in expected:
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
    result = verify_code(payload, keys, now=now, skew_s=skew_s, expected_types=expected, trusted_issuers=issuers)
    return {
        "valid": result.valid,
        "reason": result.reason,
        "code_type": result.code_type,
        "format": "code",
        "claims": result.claims,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``onecity verify``; returns the exit status (0 valid, 1 invalid, 2 usage/keys)."""
    return invoke(verify, argv, prog_name="onecity verify")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
