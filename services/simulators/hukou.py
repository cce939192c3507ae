"""Household-registration department simulator (``aud: hukou``): cases only."""

from __future__ import annotations

from litestar import Litestar

from services.simulators.base import SimulatorState, build_simulator
from services.simulators.cases import with_cases
from services.tokens import JwksSource

__all__ = ["create_app"]


def create_app(jwks: JwksSource, *, dev_mode: bool = True) -> Litestar:
    """Build the hukou simulator.

    Args:
        jwks: The BFF's service-token keys.
        dev_mode: Unused here; every simulator factory takes it.
    """
    state = SimulatorState("hukou", jwks, dev_mode=dev_mode)
    return build_simulator(state, with_cases(state))
