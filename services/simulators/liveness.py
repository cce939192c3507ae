"""Face/liveness service simulator (``aud: liveness``).

There is no face here: in dev mode a ``session_token`` starting with ``live-`` passes and any
other fails; with dev mode off nothing passes, so a misconfigured production can never grant L4.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Litestar, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from services.simulators.base import SimulatorState, build_simulator
from services.tokens import JwksSource, VerifiedServiceToken

__all__ = ["create_app"]

_PASS_SCORE = 0.97
_FAIL_SCORE = 0.12


class LivenessBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``POST /v1/liveness`` request."""

    session_token: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]


class LivenessAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /v1/liveness`` answer."""

    passed: bool
    score: float


def create_app(jwks: JwksSource, *, dev_mode: bool = True) -> Litestar:
    """Build the liveness simulator.

    Args:
        jwks: The BFF's service-token keys.
        dev_mode: Whether ``live-`` session tokens pass.
    """

    @post("/v1/liveness", status_code=200, sync_to_thread=False)
    def liveness(token: NamedDependency[VerifiedServiceToken], data: JSONBody[LivenessBody]) -> LivenessAnswer:
        passed = dev_mode and data.session_token.startswith("live-")
        return LivenessAnswer(passed=passed, score=_PASS_SCORE if passed else _FAIL_SCORE)

    return build_simulator(SimulatorState("liveness", jwks, dev_mode=dev_mode), [liveness])
