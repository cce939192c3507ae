"""Health department simulator (``aud: health``): tests, vaccinations, risk; cases."""

from __future__ import annotations

from litestar import Litestar, get
from litestar.di import NamedDependency

from services.simulators import demo
from services.simulators.base import SimulatorState, build_simulator
from services.simulators.cases import with_cases
from services.simulators.citizens import citizen_of
from services.tokens import JwksSource, VerifiedServiceToken

__all__ = ["create_app"]


def create_app(jwks: JwksSource, *, dev_mode: bool = True) -> Litestar:
    """Build the health simulator.

    Args:
        jwks: The BFF's service-token keys.
        dev_mode: Unused here; every simulator factory takes it.
    """

    @get("/v1/me/tests", sync_to_thread=False)
    def tests(token: NamedDependency[VerifiedServiceToken]) -> demo.Tests:
        return demo.health_tests(citizen_of(token))

    @get("/v1/me/vaccinations", sync_to_thread=False)
    def vaccinations(token: NamedDependency[VerifiedServiceToken]) -> demo.Doses:
        return demo.vaccinations(citizen_of(token))

    @get("/v1/me/risk", sync_to_thread=False)
    def risk(token: NamedDependency[VerifiedServiceToken]) -> demo.Risk:
        return demo.health_risk(citizen_of(token))

    state = SimulatorState("health", jwks, dev_mode=dev_mode)
    return build_simulator(state, [tests, vaccinations, risk, *with_cases(state)])
