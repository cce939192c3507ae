"""City-service codes: payloads, verification, health rules, rendering and offline ride codes.

The pure core (:mod:`codes.payload`, :mod:`codes.verifier`, :mod:`codes.rules`,
:mod:`codes.render`, :mod:`codes.ride`, :mod:`codes.pseudonym`) has no database and no HTTP;
:mod:`codes.verifier` and :mod:`codes.ride` import only the standard library and
``cryptography`` so partners can copy them into their scanners. The rest is the domain as the
BFF runs it: storage (:mod:`codes.repository`), Redis state (:mod:`codes.live`), one module per
job (:mod:`codes.issuing`, :mod:`codes.status`, :mod:`codes.online_verification`,
:mod:`codes.scanlog`, :mod:`codes.overrides`, :mod:`codes.venues`, :mod:`codes.ride_devices`,
:mod:`codes.rule_versions`, :mod:`codes.jobs`), assembled by :class:`codes.service.CodesService`,
provided to handlers by :mod:`codes.dependencies` and exposed by :mod:`codes.controllers`.
Each pure module has its service counterpart: ``verifier`` (offline) / ``online_verification``,
``ride`` (the offline format) / ``ride_devices``, ``rules`` (evaluation) / ``rule_versions``
(stored versions).

The async ``codes.render.render`` is deliberately not re-exported: a package attribute named
``render`` would shadow the ``codes.render`` submodule.

The package imports its submodules lazily (PEP 562): ``import codes.verifier`` must load only
the standard library and ``cryptography`` (the verifier is copied into partners' scanners and
imported by ``onecity verify``), so naming a public attribute here imports its submodule on
first use instead of the whole domain with Litestar and asyncpg.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from codes.controllers import (
        CodesAdminController,
        CodesPartnerController,
        MyCodesController,
        PartnerVenuesController,
    )
    from codes.dependencies import CODES_DEPENDENCIES
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

_SOURCES: dict[str, str] = {
    "CODES_DEPENDENCIES": "codes.dependencies",
    "CodesAdminController": "codes.controllers",
    "CodesPartnerController": "codes.controllers",
    "MyCodesController": "codes.controllers",
    "PartnerVenuesController": "codes.controllers",
    "LIFETIMES": "codes.payload",
    "CodeClaims": "codes.payload",
    "CodeType": "codes.payload",
    "PayloadTooLongError": "codes.payload",
    "build_claims": "codes.payload",
    "issue_code": "codes.payload",
    "new_jti": "codes.payload",
    "refresh_after": "codes.payload",
    "Pseudonymizer": "codes.pseudonym",
    "qr_version": "codes.render",
    "render_png": "codes.render",
    "render_svg": "codes.render",
    "render_venue_poster_png": "codes.render",
    "DeviceCertificate": "codes.ride",
    "Replay": "codes.ride",
    "RideRecord": "codes.ride",
    "RideVerification": "codes.ride",
    "device_id_of": "codes.ride",
    "find_replays": "codes.ride",
    "issue_device_certificate": "codes.ride",
    "make_ride_code": "codes.ride",
    "parse_device_certificate": "codes.ride",
    "verify_ride_code": "codes.ride",
    "DEFAULT_RULESET": "codes.rules",
    "Decision": "codes.rules",
    "HealthFacts": "codes.rules",
    "Rule": "codes.rules",
    "RuleSet": "codes.rules",
    "RuleSetError": "codes.rules",
    "StatusOverride": "codes.rules",
    "encode_ruleset": "codes.rules",
    "evaluate": "codes.rules",
    "facts_from_department": "codes.rules",
    "validate_ruleset": "codes.rules",
    "CodesService": "codes.service",
    "CodesSettings": "codes.settings",
    "REASONS": "codes.verifier",
    "Verification": "codes.verifier",
    "load_jwks": "codes.verifier",
    "verify_code": "codes.verifier",
}


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first access.

    ``core.lazy.lazy_exports`` does the same for other packages; codes keeps its own copy so
    that ``import codes.verifier`` loads nothing of OneCity but ``codes`` itself.
    """
    module = _SOURCES.get(name)
    if module is None:
        raise AttributeError(f"module 'codes' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
