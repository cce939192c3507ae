"""Health department simulator (``aud: health``): tests, vaccinations, risk; cases.

``PUT /_sim/health/{id_number}`` ``{tests?, risk?}`` replaces what the simulator answers for
one citizen (a new test result, a quarantine order: what changes a health code's status while
the app is closed); ``DELETE /_sim/health`` returns everyone to their derived records.
"""

from __future__ import annotations

import msgspec
from litestar import Litestar, delete, get, put
from litestar.di import NamedDependency
from litestar.params import JSONBody

from services.simulators import demo
from services.simulators.base import SimulatorState, build_simulator
from services.simulators.cases import with_cases
from services.simulators.citizens import citizen_of
from services.tokens import JwksSource, VerifiedServiceToken

__all__ = ["HealthRecords", "create_app"]


class HealthRecords(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What ``PUT /_sim/health/{id_number}`` sets for one citizen; an absent part stays derived."""

    tests: demo.Tests | None = None
    risk: demo.Risk | None = None


def create_app(jwks: JwksSource, *, dev_mode: bool = True) -> Litestar:
    """Build the health simulator.

    Args:
        jwks: The BFF's service-token keys.
        dev_mode: Unused here; every simulator factory takes it.
    """

    changed: dict[str, HealthRecords] = {}

    @get("/v1/me/tests", sync_to_thread=False)
    def tests(token: NamedDependency[VerifiedServiceToken]) -> demo.Tests:
        id_number = citizen_of(token)
        records = changed.get(id_number)
        return records.tests if records is not None and records.tests is not None else demo.health_tests(id_number)

    @get("/v1/me/vaccinations", sync_to_thread=False)
    def vaccinations(token: NamedDependency[VerifiedServiceToken]) -> demo.Doses:
        return demo.vaccinations(citizen_of(token))

    @get("/v1/me/risk", sync_to_thread=False)
    def risk(token: NamedDependency[VerifiedServiceToken]) -> demo.Risk:
        id_number = citizen_of(token)
        records = changed.get(id_number)
        return records.risk if records is not None and records.risk is not None else demo.health_risk(id_number)

    @put("/_sim/health/{id_number:str}", status_code=200, sync_to_thread=False)
    def change(id_number: str, data: JSONBody[HealthRecords]) -> HealthRecords:
        changed[id_number] = data
        return data

    @delete("/_sim/health", status_code=200, sync_to_thread=False)
    def restore() -> dict[str, int]:
        restored = len(changed)
        changed.clear()
        return {"restored": restored}

    state = SimulatorState("health", jwks, dev_mode=dev_mode)
    return build_simulator(state, [tests, vaccinations, risk, *with_cases(state)], [change, restore])
