"""Transport department simulator (``aud: transport``): transit card and trips."""

from __future__ import annotations

import datetime as dt

from litestar import Litestar, get
from litestar.di import NamedDependency
from litestar.params import FromQuery

from services.simulators import demo
from services.simulators.base import SimulatorState, build_simulator
from services.simulators.citizens import citizen_of
from services.tokens import JwksSource, VerifiedServiceToken

__all__ = ["create_app"]

_DEFAULT_WINDOW = dt.timedelta(days=30)


def create_app(jwks: JwksSource, *, dev_mode: bool = True) -> Litestar:
    """Build the transport simulator.

    Args:
        jwks: The BFF's service-token keys.
        dev_mode: Unused here; every simulator factory takes it.
    """

    @get("/v1/me/card", sync_to_thread=False)
    def card(token: NamedDependency[VerifiedServiceToken]) -> demo.Card:
        return demo.transport_card(citizen_of(token))

    @get("/v1/me/trips", sync_to_thread=False)
    def trips(token: NamedDependency[VerifiedServiceToken], since: FromQuery[dt.datetime | None] = None) -> demo.Trips:
        id_number = citizen_of(token)
        now = dt.datetime.now(dt.UTC)
        return demo.trips(id_number, since or now - _DEFAULT_WINDOW, now)

    return build_simulator(SimulatorState("transport", jwks, dev_mode=dev_mode), [card, trips])
