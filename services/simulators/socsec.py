"""Social-security department simulator (``aud: socsec``): card and contributions; cases."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from litestar import Litestar, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from services.simulators import demo
from services.simulators.base import SimulatorState, build_simulator
from services.simulators.cases import with_cases
from services.simulators.citizens import citizen_of
from services.tokens import JwksSource, VerifiedServiceToken

__all__ = ["create_app"]


def create_app(jwks: JwksSource, *, dev_mode: bool = True) -> Litestar:
    """Build the social-security simulator.

    Args:
        jwks: The BFF's service-token keys.
        dev_mode: Unused here; every simulator factory takes it.
    """

    @get("/v1/me/card", sync_to_thread=False)
    def card(token: NamedDependency[VerifiedServiceToken]) -> demo.SocsecCard:
        return demo.socsec_card(citizen_of(token))

    @get("/v1/me/contributions", sync_to_thread=False)
    def contributions(
        token: NamedDependency[VerifiedServiceToken],
        year: Annotated[int | None, QueryParameter(ge=1950, le=2100)] = None,
    ) -> demo.Contributions:
        id_number = citizen_of(token)
        now = dt.datetime.now(dt.UTC)
        return demo.contributions(id_number, year or now.year, now)

    state = SimulatorState("socsec", jwks, dev_mode=dev_mode)
    return build_simulator(state, [card, contributions, *with_cases(state)])
