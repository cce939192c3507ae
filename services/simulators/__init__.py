"""Department simulators: one small Litestar app per department contract, for dev and tests.

Each implements its department's fixed contract (DESIGN, "Department contracts"), enforces the
service token, and can be told to misbehave through ``/_sim/faults``. This is the only part of
:mod:`services` that imports Litestar, and it serves them with uvicorn (the optional extra
``embedded``); the BFF imports it only to run the simulators.
"""

from services.simulators.base import FaultState, FaultUpdate, SimulatorState, Stats, build_simulator
from services.simulators.demo import DEMO_CITIZENS, DemoCitizen, registry_name, valid_id_number
from services.simulators.server import (
    DEFAULT_PORTS,
    SIMULATORS,
    RunningServer,
    SimulatorFactory,
    serve,
    start_in_process,
    start_simulators,
)

__all__ = [
    "DEFAULT_PORTS",
    "DEMO_CITIZENS",
    "SIMULATORS",
    "DemoCitizen",
    "FaultState",
    "FaultUpdate",
    "RunningServer",
    "SimulatorFactory",
    "SimulatorState",
    "Stats",
    "build_simulator",
    "registry_name",
    "serve",
    "start_in_process",
    "start_simulators",
    "valid_id_number",
]
