"""City-service codes: payloads, verification, health rules, rendering and offline ride codes.

The pure core (:mod:`codes.payload`, :mod:`codes.verifier`, :mod:`codes.rules`,
:mod:`codes.render`, :mod:`codes.ride`, :mod:`codes.pseudonym`) has no database and no HTTP;
:mod:`codes.verifier` and :mod:`codes.ride` import only the standard library and
``cryptography`` so partners can copy them into their scanners. The rest is the domain as the
BFF runs it: storage (:mod:`codes.repository`), Redis state (:mod:`codes.live`), one module per
job (issuing, status, verification, scan log, overrides, venues, rides, rule book, retention),
assembled by :class:`codes.service.CodesService` and exposed by :mod:`codes.controllers`.

The async ``codes.render.render`` is deliberately not re-exported: a package attribute named
``render`` would shadow the ``codes.render`` submodule.
"""

from codes.controllers import (
    CODES_DEPENDENCIES,
    CodesAdminController,
    CodesPartnerController,
    MyCodesController,
    PartnerVenuesController,
)
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
from codes.service import CodesService
from codes.settings import CodesSettings
from codes.verifier import REASONS, Verification, load_jwks, verify_code

__all__ = [
    "CODES_DEPENDENCIES",
    "DEFAULT_RULESET",
    "LIFETIMES",
    "REASONS",
    "CodeClaims",
    "CodeType",
    "CodesAdminController",
    "CodesPartnerController",
    "CodesService",
    "CodesSettings",
    "Decision",
    "DeviceCertificate",
    "HealthFacts",
    "MyCodesController",
    "PartnerVenuesController",
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
