"""City-service codes: payloads, verification, health rules, rendering and offline ride codes.

This package is the pure core (no database, no HTTP): the BFF wires it to storage, Redis and
endpoints. :mod:`codes.verifier` and :mod:`codes.ride` import only the standard library and
``cryptography`` so partners can copy them into their scanners.

The async ``codes.render.render`` is deliberately not re-exported: a package attribute named
``render`` would shadow the ``codes.render`` submodule.
"""

from codes.payload import (
    LIFETIMES,
    CodeClaims,
    CodeType,
    PayloadTooLongError,
    build_claims,
    issue_code,
    new_jti,
    refresh_after,
)
from codes.pseudonym import Pseudonymizer
from codes.render import qr_version, render_png, render_svg, render_venue_poster_png
from codes.ride import (
    DeviceCertificate,
    Replay,
    RideRecord,
    RideVerification,
    device_id_of,
    find_replays,
    issue_device_certificate,
    make_ride_code,
    parse_device_certificate,
    verify_ride_code,
)
from codes.rules import (
    DEFAULT_RULESET,
    Decision,
    HealthFacts,
    Rule,
    RuleSet,
    RuleSetError,
    StatusOverride,
    encode_ruleset,
    evaluate,
    facts_from_department,
    validate_ruleset,
)
from codes.verifier import REASONS, Verification, load_jwks, verify_code

__all__ = [
    "DEFAULT_RULESET",
    "LIFETIMES",
    "REASONS",
    "CodeClaims",
    "CodeType",
    "Decision",
    "DeviceCertificate",
    "HealthFacts",
    "PayloadTooLongError",
    "Pseudonymizer",
    "Replay",
    "RideRecord",
    "RideVerification",
    "Rule",
    "RuleSet",
    "RuleSetError",
    "StatusOverride",
    "Verification",
    "build_claims",
    "device_id_of",
    "encode_ruleset",
    "evaluate",
    "facts_from_department",
    "find_replays",
    "issue_code",
    "issue_device_certificate",
    "load_jwks",
    "make_ride_code",
    "new_jti",
    "parse_device_certificate",
    "qr_version",
    "refresh_after",
    "render_png",
    "render_svg",
    "render_venue_poster_png",
    "validate_ruleset",
    "verify_code",
    "verify_ride_code",
]
